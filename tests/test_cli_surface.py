"""``qamar surface``: horizon, illumination, point and psr on a crop of the 240 m south-pole DEM,
and bad input that ends in one sentence with exit code 2."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from typer.testing import CliRunner

from qamar import data
from qamar.cli import app
from qamar.surface.horizon import read_horizon

runner = CliRunner()
SPAN = ["--start", "2024-01-01", "--stop", "2024-01-11", "--step-h", "6"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A 20 x 16 pixel crop near the Shackleton - de Gerlache ridge and its horizon map
    (36 azimuths, 8 km, observer 2 m), made with the CLI."""
    folder = tmp_path_factory.mktemp("surface")
    dem = folder / "crop.tif"
    with rasterio.open(data.path("dem_south_pole_240m")) as src:
        window = Window(705, 760, 20, 16)
        profile = {**src.profile, "width": 20, "height": 16, "transform": src.window_transform(window), "tiled": False}
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
        with rasterio.open(dem, "w", **profile) as dst:
            dst.write(src.read(1, window=window), 1)
    horizon = folder / "horizon.tif"
    result = runner.invoke(app, ["surface", "horizon", str(dem), "--azimuths", "36", "--max-distance-km", "8",
                                 "--observer-height-m", "2", "--out", str(horizon), "--no-progress"])
    assert result.exit_code == 0, result.output
    return dem, horizon


def test_horizon_file(site):
    dem, horizon = site
    hmap = read_horizon(horizon)
    assert hmap.elev_cdeg.shape == (16, 20, 36) and hmap.observer_height_m == 2.0
    with rasterio.open(dem) as src:
        assert hmap.transform.almost_equals(src.transform)


def test_illumination_maps_and_summary(site, tmp_path):
    dem, horizon = site
    out = tmp_path / "maps"
    result = runner.invoke(app, ["surface", "illumination", str(dem), "--horizon", str(horizon), *SPAN,
                                 "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 40 and summary["observer_height_m"] == 2.0
    for name in ("sun_fraction", "earth_fraction", "sun_and_earth_fraction", "longest_night_h"):
        assert (out / f"{name}.tif").exists() and (out / f"{name}.png").exists()
        with rasterio.open(out / f"{name}.tif") as ds, rasterio.open(dem) as src:
            assert ds.shape == src.shape and ds.transform.almost_equals(src.transform) and ds.crs == src.crs
            values = ds.read(1)
        upper = 240.0 if name == "longest_night_h" else 1.0
        assert np.all((values >= 0.0) & (values <= upper))
    assert 0.0 <= summary["sun_and_earth_fraction"]["mean"] <= min(summary["sun_fraction"]["mean"],
                                                                   summary["earth_fraction"]["mean"])


def test_point_summary_series_and_plot(site, tmp_path):
    dem, horizon = site
    common = ["surface", "point", str(dem), "--horizon", str(horizon), "--lat", "-89.58", *SPAN]
    summary, series, plot = tmp_path / "point.json", tmp_path / "point.csv", tmp_path / "point.png"
    result = runner.invoke(app, common + ["--lon", "-90.5", "--summary", str(summary), "--out", str(series),
                                          "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    doc = json.loads(summary.read_text())
    for key in ("sun_fraction", "earth_fraction", "sun_and_earth_fraction", "longest_night_h"):
        assert key in doc
    with open(series, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 40 and {"utc", "sun_el_deg", "sun_fraction", "earth_el_deg", "earth_margin_deg"} <= set(rows[0])
    assert plot.stat().st_size > 10_000
    east = tmp_path / "east.json"
    assert runner.invoke(app, common + ["--lon", "269.5", "--summary", str(east)]).exit_code == 0
    assert json.loads(east.read_text()) == doc  # 269.5 E is -90.5


def test_point_without_a_horizon_file_computes_its_own(site, tmp_path):
    dem, _ = site
    summary = tmp_path / "point.json"
    result = runner.invoke(app, ["surface", "point", str(dem), "--lat", "-89.58", "--lon", "-90.5", *SPAN,
                                 "--azimuths", "36", "--max-distance-km", "8", "--observer-height-m", "2",
                                 "--summary", str(summary), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(summary.read_text())["observer_height_m"] == 2.0


def test_psr_geojson_raster_and_summary(site, tmp_path):
    dem, horizon = site
    out, summary = tmp_path / "psr.geojson", tmp_path / "psr.json"
    result = runner.invoke(app, ["surface", "psr", str(dem), "--horizon", str(horizon), "--out", str(out),
                                 "--summary", str(summary), "--no-progress"])
    assert result.exit_code == 0, result.output
    doc = json.loads(summary.read_text())
    features = json.loads(out.read_text())["features"]
    assert doc["psr_count"] == len(features)
    assert doc["psr_area_km2"] == pytest.approx(sum(f["properties"]["area_km2"] for f in features), abs=1e-3)
    assert out.with_suffix(".tif").exists() and out.with_suffix(".png").exists()


def _fails_cleanly(args, expected, missing):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert result.output.strip().startswith("qamar: error:") and len(result.output.strip().splitlines()) == 1
    assert not missing.exists()


def test_bad_input(site, tmp_path):
    dem, horizon = site
    no_crs = tmp_path / "no_crs.tif"
    with rasterio.open(no_crs, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       transform=rasterio.Affine(240.0, 0.0, 0.0, 0.0, -240.0, 0.0)) as dst:
        dst.write(np.zeros((1, 4, 4), np.float32))
    out = tmp_path / "out"
    _fails_cleanly(["surface", "illumination", str(no_crs), *SPAN, "--out", str(out)], "no coordinate reference", out)
    _fails_cleanly(["surface", "illumination", str(dem), "--horizon", str(horizon), "--start", "2160-01-01",
                    "--stop", "2160-02-01", "--out", str(out)], "outside the DE440 kernels", out)
    _fails_cleanly(["surface", "illumination", str(dem), "--horizon", str(horizon), *SPAN,
                    "--observer-height-m", "10", "--out", str(out)], "recompute it with that observer height", out)
    point = tmp_path / "p.json"
    _fails_cleanly(["surface", "point", str(dem), "--horizon", str(horizon), "--lat", "-85", "--lon", "0", *SPAN,
                    "--summary", str(point)], "outside the DEM", point)
