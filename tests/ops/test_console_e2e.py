"""The web console end to end: uvicorn on a free loopback port, a fake twin feeding packets over TCP,
the page in headless Debian Chromium driven by Playwright (rover on the map, a plot that moves, an
alarm, a command through the form to COMPLETED, a refused one, a sequence upload, a screenshot)."""

import os
import threading

import pytest

from tests.ops.test_server import FakeTwin, running_ground, site_lat_lon, write_test_dem

CHROMIUM = "/usr/bin/chromium"
# Flags of the machine notes (python.md, "Known to work"): no sandbox as root, and no background
# connections, which a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
TIMEOUT_MS = 10_000


def feed(twin, dem_path, stop, period_s=0.1):
    """Housekeeping and navigation every ``period_s``: the rover drives east across the map and its
    battery drains below the 30 % warning limit after a few seconds of packets."""
    for i in range(100_000):
        if stop.wait(period_s):
            return
        t = twin.t_tai_s + i
        lat, lon = site_lat_lon(dem_path, 10 + (i % 100), 40)
        twin.send(twin.navigation(t, lat, lon), twin.housekeeping(t, battery_soc_pct=max(10.0, 40.0 - i)))


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM} (apt install chromium)")
def test_the_console_in_headless_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    dem_path = str(write_test_dem(tmp_path / "site.tif"))
    with running_ground(f"sqlite:///{tmp_path / 'ops.db'}", dem_path) as (http, twin_address):
        twin = FakeTwin(twin_address)
        stop = threading.Event()
        feeder = threading.Thread(target=feed, args=(twin, dem_path, stop), daemon=True)
        feeder.start()
        try:
            with sync_api.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"http://{http}/?poll_ms=250")
                # the rover on the map, and a telemetry plot that keeps moving
                page.wait_for_selector("#rover[visibility=visible]", state="attached")
                assert page.get_attribute("#map-image", "src") == "/map.png"
                plot = "#plot-battery_soc_pct"
                page.wait_for_function(f"document.querySelector('{plot}').dataset.points > 0")
                before = int(page.get_attribute(plot, "data-points"))
                page.wait_for_function(f"document.querySelector('{plot}').dataset.points > {before}")
                # the battery alarm
                alarm = page.wait_for_selector("#alarms tr[data-parameter=battery_soc_pct]")
                assert "WARNING" in alarm.inner_text() or "CRITICAL" in alarm.inner_text()
                # a command through the form, to its last stage
                page.fill("#command-line", "SET_MODE mode=DRIVE")
                page.click("#command-form button")
                page.wait_for_selector("#commands tr:has-text('SET_MODE mode=DRIVE') td.stage-COMPLETED")
                page.fill("#command-line", "TURN angle_deg=500")
                page.click("#command-form button")
                page.wait_for_selector("#command-result.error")
                assert "out of range" in page.inner_text("#command-result")
                # a sequence file
                sequence = b"2099-06-01T02:00:00Z SET_MODE mode=DRIVE\n+60 DRIVE_TO lat=-89.45 lon=222.7\n+30 STOP\n"
                page.set_input_files("#sequence-file", files=[{"name": "day1.txt", "mimeType": "text/plain",
                                                              "buffer": sequence}])
                page.click("#sequence-form button")
                page.wait_for_selector("#sequence-result.ok:has-text('3 commands queued')")
                page.wait_for_function("document.querySelectorAll('#commands td.stage-QUEUED').length == 3")
                page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
                browser.close()
        finally:
            stop.set()
            feeder.join(5.0)
            twin.close()
    assert (tmp_path / "console.png").stat().st_size > 10_000
