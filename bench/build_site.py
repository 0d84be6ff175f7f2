"""The static site build against its targets: build seconds, site bytes, first graph paint from file://.

Usage: python bench/build_site.py [RUN_DIR ...] [--sample-tokens N] [--keep DIR] [--jobs N]
With no RUN_DIR it builds the demo runs shipped in trainer/zoo/; while the zoo is empty it says so and
benchmarks stand-in runs instead (tests/fixture_runs.py: the tiny config, three hand-picked circuits).
Prints: build seconds (target <= 15 s on 2 cores) and the build's peak memory (target <= 1.5 GB: the largest sum of the
proportional set sizes of this process and its build processes, sampled every 100 ms), site bytes in total, without vendored libraries, and
by part (target: data <= 5 MB without vendored libraries), and the time from navigation start to the
first painted graph of every circuit page in headless Chromium from file:// (target <= 1.5 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fixture_runs for the stand-in runs

from exporter.build import BuildOptions, build  # noqa: E402
from exporter.inputs import demo_runs  # noqa: E402
from exporter.tables import TableConfig  # noqa: E402
from trainer.errors import UserError  # noqa: E402

TARGETS = {"build_s": 15.0, "peak_mb": 1500.0, "data_bytes": 5e6, "paint_s": 1.5}
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def runs_to_build(args: argparse.Namespace, scratch: Path) -> list[Path]:
    """The runs given, else the shipped demo runs, else stand-in runs made here."""
    if args.runs:
        return [Path(r) for r in args.runs]
    try:
        return demo_runs()
    except UserError as e:
        print(f"note: {e}")
        print("note: benchmarking stand-in runs instead (tiny config, 3 hand-picked circuits; tests/fixture_runs.py)")
        from tests.fixture_runs import make_runs

        made = make_runs(scratch / "runs", Path(os.environ.get("CIRCEXPORT_CACHE", scratch / "cache")))
        return [made["a"], made["b"]]


def sizes(site: Path) -> dict[str, int]:
    """Bytes by part of the site."""
    parts = {"total": 0, "vendor": 0, "onnx": 0, "data": 0, "pages": 0, "assets": 0}
    for p in site.rglob("*"):
        if not p.is_file():
            continue
        n, rel = p.stat().st_size, p.relative_to(site).as_posix()
        parts["total"] += n
        if rel.startswith("assets/vendor/"):
            parts["vendor"] += n
        elif rel.startswith("onnx/"):
            parts["onnx"] += n
        elif rel.startswith("data/"):
            parts["data"] += n
        elif rel.endswith(".html"):
            parts["pages"] += n
        else:
            parts["assets"] += n
    return parts


def first_paints(site: Path) -> list[tuple[str, float]]:
    """Seconds from navigation start to the graph's first paint, per circuit page, each in a fresh browser context."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("note: no playwright; first paint not measured (pip install playwright)")
        return []
    if not Path(CHROMIUM).is_file():
        print(f"note: no {CHROMIUM}; first paint not measured (apt-get install -y chromium)")
        return []
    pages = sorted(p for p in site.glob("*/*/index.html"))
    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for page_path in pages:
            ctx = browser.new_context()
            page = ctx.new_page()
            page.goto(page_path.as_uri(), wait_until="load")
            page.wait_for_function("window.cxGraphPainted !== undefined")
            page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted, not just built
            out.append((page_path.parent.relative_to(site).as_posix(), page.evaluate("window.cxGraphPainted") / 1000))
            ctx.close()
        browser.close()
    return out


def tree_pss_mb(pid: int) -> float:
    """Proportional set size in MB of a process and its descendants (pages shared after fork counted once)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # the process ended while being read
    return total / 1024


class PeakMemory(threading.Thread):
    """Samples the process tree's PSS until stopped; `peak` is the largest sample."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.done = 0.0, threading.Event()

    def run(self) -> None:
        """Sample every 100 ms."""
        while not self.done.wait(0.1):
            self.peak = max(self.peak, tree_pss_mb(os.getpid()))


def verdict(value: float, target: float) -> str:
    """ok / OVER against a target."""
    return "ok" if value <= target else "OVER"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--sample-tokens", type=int, default=TableConfig.tokens)
    parser.add_argument("--keep", type=Path, help="build into this folder and keep it")
    parser.add_argument("--jobs", type=int, default=0, help="build processes (0: circexport build's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        runs = runs_to_build(args, scratch)
        out = args.keep or scratch / "site"
        memory = PeakMemory()
        memory.start()
        t0 = time.perf_counter()
        report = build(runs, out, BuildOptions(tables=TableConfig(tokens=args.sample_tokens), jobs=args.jobs, quiet=True))
        seconds = time.perf_counter() - t0
        memory.done.set()
        memory.join()
        print(report.summary())
        print(f"build: {seconds:.1f} s on {os.cpu_count()} cores, --jobs {args.jobs or 'auto'} "
              f"(target <= {TARGETS['build_s']:.0f} s) {verdict(seconds, TARGETS['build_s'])}")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak memory: {memory.peak:.0f} MB PSS of all build processes (target <= {TARGETS['peak_mb']:.0f} MB) "
              f"{verdict(memory.peak, TARGETS['peak_mb'])}; peak RSS {rss[0]:.0f} MB here, {rss[1]:.0f} MB in the largest "
              "build process")
        b = sizes(out)
        no_vendor = b["total"] - b["vendor"]
        data = b["data"] + b["pages"] + b["assets"]
        print(f"site: {b['total'] / 1e6:.2f} MB total, {no_vendor / 1e6:.2f} MB without vendored libraries "
              f"(vendored {b['vendor'] / 1e6:.2f} MB)")
        print(f"  by part: data shards {b['data'] / 1e6:.2f} MB, pages {b['pages'] / 1e6:.2f} MB, "
              f"own css/js {b['assets'] / 1e6:.2f} MB, ONNX models + .js twins {b['onnx'] / 1e6:.2f} MB")
        print(f"data (shards + pages + own assets, without vendored libraries and ONNX): {data / 1e6:.2f} MB "
              f"(target <= {TARGETS['data_bytes'] / 1e6:.0f} MB) {verdict(data, TARGETS['data_bytes'])}")
        paints = first_paints(out)
        if paints:
            worst = max(s for _, s in paints)
            print(f"first graph paint from file://: median {statistics.median(s for _, s in paints):.3f} s, "
                  f"worst {worst:.3f} s over {len(paints)} circuit pages (target <= {TARGETS['paint_s']} s) "
                  f"{verdict(worst, TARGETS['paint_s'])}")
            for name, s in paints:
                print(f"  {name}: {s:.3f} s")


if __name__ == "__main__":
    main()
