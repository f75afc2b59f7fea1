"""The dashboard at ``GET /`` in a real headless browser (Debian's Chromium through Selenium and
chromedriver) against a running service: detections appear within a second of being logged,
a snippet loads and plays, the level meters move, and the console stays free of errors.

``STREAMCONV_UPDATE_SCREENSHOT=1`` copies the screenshot it takes to docs/img/dashboard.png.
"""

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from service_proc import Service, poll

RATE = 8000
BLOCK = 64
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "dashboard.png"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,1000",
]


def _browser(profile):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service as DriverService
    except ImportError as exc:
        missing.append(f"selenium ({exc})")
    if missing:
        message = (
            f"BROWSER TESTS NOT RUN: {', '.join(missing)} missing (Debian: chromium "
            "chromium-driver; pip: selenium); `make test` installs them as root"
        )
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI the browser must be there: never pass by skipping
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver path is given, so Selenium Manager never looks for one on the network.
    return webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))


def _bell():
    return np.sin(2 * np.pi * 500 * np.arange(300) / RATE) * np.hanning(300)


class _Feeder(threading.Thread):
    """Stereo at real time: ch0 a 1 kHz tone whose level steps every second, ch1 quiet noise
    with a bell at each frame of `bells`."""

    def __init__(self, proc, rng, seconds, bells):
        super().__init__(daemon=True)
        n = seconds * RATE
        t = np.arange(n)
        gain = 0.05 + 0.4 * ((t // RATE) % 4) / 3
        x = np.empty((n, 2))
        x[:, 0] = gain * np.sin(2 * np.pi * 1000 * t / RATE)
        x[:, 1] = 0.02 * rng.normal(size=n)
        for s in bells:
            x[s : s + 300, 1] += _bell()
        self.x = x.astype("<f4")
        self.proc = proc
        self.stop = threading.Event()

    def run(self):
        step = RATE // 20
        t0 = time.monotonic()
        for i in range(0, len(self.x), step):
            if self.stop.is_set():
                return
            self.proc.stdin.write(self.x[i : i + step].tobytes())
            self.proc.stdin.flush()
            time.sleep(max(0.0, t0 + (i + step) / RATE - time.monotonic()))


def _wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_dashboard_in_a_real_browser(tmp_path, rng):
    from selenium.webdriver.common.by import By

    np.save(tmp_path / "bell.npy", _bell())
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[source]\nuri = "-"\nformat = "f32le"\nrate = {RATE}\nchannels = 2\n'
        '[sink]\nuri = "out.raw"\nformat = "f32le"\n'
        f"[processing]\nblock_size = {BLOCK}\n"
        '[[templates]]\nname = "bell"\npath = "bell.npy"\nthreshold = 0.8\n'
        '[detections]\npath = "det.jsonl"\n'
        'snippets = { dir = "snips", pre_s = 0.25, post_s = 0.5 }\n'
        '[control]\nlisten = "127.0.0.1:0"\n'
    )
    browser = _browser(tmp_path / "profile")
    svc = Service(cfg, stdin=subprocess.PIPE)
    bells = (3 * RATE + 1000, 6 * RATE + 4321, 9 * RATE + 77)
    feeder = _Feeder(svc.proc, rng, 20, bells)  # still streaming when the levels are checked
    try:
        url = svc.base_url()
        browser.get(url + "/")
        _wait(lambda: browser.find_element(By.ID, "connection").text == "connected", 10,
              "the event stream")  # fmt: skip
        feeder.start()
        poll(url, lambda s: s["state"] == "running", service=svc)
        for sample in bells:
            line = svc.wait_line(f'detection: {{"template": "bell", "sample": {sample},')
            logged = svc.arrived[line]
            _wait(lambda s=sample: browser.find_elements(By.CSS_SELECTOR, f'tr[data-sample="{s}"]'),
                  5, f"detection {sample} on the page")  # fmt: skip
            shown = time.monotonic()
            print(f"\ndetection {sample}: on the page {1e3 * (shown - logged):.0f} ms after "
                  "its log line")  # fmt: skip
            assert shown - logged < 1.0

        # Its snippet loads and plays to the end.
        button = browser.find_element(By.CSS_SELECTOR, f'tr[data-sample="{bells[0]}"] button.play')
        assert button.get_attribute("data-snippet").endswith(f"-bell-{bells[0]}-c1.wav")
        button.click()
        state = _wait(
            lambda: button.get_attribute("data-state") in ("playing", "ended", "error")
            and button.get_attribute("data-state"),
            10, "the snippet to play",
        )  # fmt: skip
        assert state != "error"
        _wait(lambda: button.get_attribute("data-state") == "ended", 10, "the snippet to end")
        played = browser.execute_script(
            "return performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/snippets/')).map(e => e.name)"
        )
        assert any(button.get_attribute("data-snippet") in name for name in played)

        # Levels move: the tone on channel 0 steps every second.
        seen = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(seen) < 3:
            peak = browser.execute_script("return levels && levels.input.peak_dbfs[0]")
            if peak is not None:
                seen.add(round(peak, 1))
            time.sleep(0.2)
        assert len(seen) >= 3, seen
        assert browser.find_element(By.ID, "state").text == "running"
        assert browser.find_elements(By.CSS_SELECTOR, 'canvas[data-template="bell"]')
        assert int(browser.find_element(By.ID, "detection-count").text) == len(bells)

        time.sleep(1.2)  # one more status and score point for the picture
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        if os.environ.get("STREAMCONV_UPDATE_SCREENSHOT"):
            shutil.copyfile(shot, SCREENSHOT)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        feeder.stop.set()
        browser.quit()
        svc.kill()
