"""A screenshot of a report page in headless Chromium, as the README shows the demo's.

    python scripts/screenshot_report.py runs/tiny/report/index.html scripts/screenshots/demo_report.png [HEIGHT]

Prints the console errors (there should be none) and each image's size as the browser decoded it."""

import sys
from pathlib import Path

from ladder.report.browser import chromium, load, screenshot


def main(page: str, out: str, height: int = 2400) -> int:
    with chromium(width=1280) as driver:
        errors, sizes = load(driver, Path(page))
        print(f"{len(sizes)} images, decoded sizes {sizes}; {len(errors)} console errors {errors or ''}")
        print(f"wrote {screenshot(driver, Path(page), Path(out), height)}")
    return 1 if errors or not all(w and h for w, h in sizes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:4])))
