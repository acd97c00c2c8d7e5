"""Imaging plan: storage and downlink limits decide which images are kept (comms' FIFO backlog)."""

import numpy as np

from qamar.payload.camera import camera
from qamar.payload.opportunities import Opportunity
from qamar.payload.plan import plan_imaging, write_plan_csv

CAM = camera("c", 5.5, focal_length_mm=25, compression_ratio=4.0)  # 2,097,152 bits an image


def _opp(target, t, score):
    return Opportunity("c", target, t - 30.0, t + 30.0, t, 50.0, 200.0, 30.0, 60.0, 10.0, 50.0, 1.0, score)


def test_best_images_fill_the_storage_and_the_rest_are_skipped(tmp_path):
    opps = [_opp(f"T{i}", 7.7e8 + 1000.0 * i, score) for i, score in enumerate([0.2, 0.9, 0.5, 0.7])]
    plan = plan_imaging(opps, [CAM], [], 2.5 * CAM.image_bits, 7.7e8, 7.7e8 + 1e4, require_delivery=False)
    # Room for two images: the two best scores (T1, T3), in time order.
    assert [o.target for o in plan.images] == ["T1", "T3"]
    assert [reason for _, reason in plan.skipped] == ["on-board storage full"] * 2
    assert plan.backlog.peak_backlog_bits == 2 * CAM.image_bits
    write_plan_csv(plan, tmp_path / "plan.csv")
    assert len((tmp_path / "plan.csv").read_text().splitlines()) == 3


def test_without_a_downlink_nothing_can_be_delivered():
    opps = [_opp("T", 7.7e8 + 100.0, 0.5)]
    plan = plan_imaging(opps, [CAM], [], 1e9, 7.7e8, 7.7e8 + 1e4)
    assert plan.images == [] and plan.skipped[0][1] == "downlink cannot return it before the end"
    repeats = [_opp("T", 7.7e8 + 100.0 * k, 0.5 + 0.01 * k) for k in range(3)]
    plan = plan_imaging(repeats, [CAM], [], 1e9, 7.7e8, 7.7e8 + 1e4, require_delivery=False, images_per_target=2)
    assert len(plan.images) == 2 and np.isclose(plan.bits, 2 * CAM.image_bits)
