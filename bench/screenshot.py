"""A screenshot of a built circuit page in Debian's Chromium (for the README), opened from file://.

Usage: python bench/screenshot.py [SITE] [MODEL/TASK] [--out PNG]
Defaults: site/, the demo model's first circuit, bench/screenshots/circuit-page.png.
Prints the page's console errors and network requests (there should be none).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main() -> None:
    """Open the circuit page, wait for the graph, save a PNG of the top of the page."""
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", nargs="?", type=Path, default=Path("site"))
    ap.add_argument("circuit", nargs="?", help="MODEL/TASK (default: the first circuit of demo)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "screenshots" / "circuit-page.png")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args()
    circuit = args.circuit or next(p.parent.relative_to(args.site).as_posix()
                                   for p in sorted((args.site / "demo").glob("*/index.html")))
    page_path = (args.site / circuit / "index.html").resolve()
    if not page_path.is_file():
        sys.exit(f"{page_path}: no such circuit page; build the site first (circexport build -o {args.site})")
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height}, device_scale_factor=1)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
        page.goto(page_path.as_uri())
        page.wait_for_selector("#graph svg .node", timeout=20000)
        page.wait_for_timeout(500)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"{args.out}: {circuit}, {args.width}x{args.height}; console errors: {len(errors)}, network requests: {len(requests)}")
    for line in errors + requests:
        print("  ", line)


if __name__ == "__main__":
    main()
