"""The report page in a real browser: headless Chromium through Selenium (the dev extra; Debian's `chromium` and
`chromium-driver`, which .ci/run installs). Used by tests/test_report.py and scripts/screenshot_report.py."""

from __future__ import annotations

import base64
import shutil
from contextlib import contextmanager
from pathlib import Path

from ladder.errors import require


@contextmanager
def chromium(width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    require(binary and driver_path, "needs chromium and chromedriver on PATH (Debian: apt-get install chromium "
                                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def load(driver, page: Path) -> tuple[list[dict], list[tuple[int, int]]]:
    """Open a page: (the console's errors, each image's decoded width and height; 0 for one that did not load)."""
    driver.get(Path(page).resolve().as_uri())
    sizes = driver.execute_script("return Array.from(document.images).map(i => [i.complete ? i.naturalWidth : 0, "
                                  "i.naturalHeight]);")
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return errors, [tuple(size) for size in sizes]


def screenshot(driver, page: Path, out: Path, height: int | None = None) -> Path:
    """A PNG of the page from its top, `height` CSS pixels tall (default: all of it)."""
    load(driver, page)
    full = driver.execute_script("return document.documentElement.scrollHeight;")
    width = driver.execute_script("return document.documentElement.clientWidth;")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height or full, full), "scale": 1}})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    return out
