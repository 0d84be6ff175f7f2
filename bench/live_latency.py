"""The live panel against its targets: ONNX Runtime Web start-up and update latency in headless Chromium, next to
Python onnxruntime on the same model files.

Usage: python bench/live_latency.py [RUN_DIR ...] [--site DIR] [--tasks a,b,c] [--toggles N] [--keep DIR]
With no RUN_DIR it builds the demo runs shipped in trainer/zoo/; while the zoo is empty it says so and builds a
stand-in of the demo model's shapes instead (tests/fixture_runs.py: 2 training steps, hand-picked circuits).
`--site` measures an already built site. Prints per circuit page, from file:// and over http: runtime load, session
start (circuit, then both models), the longest main-thread task and event-loop delay while loading (is the page
responsive?), and the median and p90 time of one update after a node toggle (target <= 50 ms median) on the
default prompt and on a prompt filling the context; then Python onnxruntime (1 thread): session start and one
circuit-model run on the same token ids.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fixture_runs for the stand-in runs

from exporter.build import BuildOptions, build  # noqa: E402
from exporter.inputs import demo_runs  # noqa: E402
from exporter.serve import serve_in_thread  # noqa: E402
from trainer.errors import UserError  # noqa: E402

TARGET_UPDATE_MS = 50.0
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
STANDIN_TASKS = ("bracket_counting", "lambda_func", "set_or_string")

# In the page: from the click until the first result, record long tasks and the event loop's delay (is the page
# responsive?); then time toggles of nodes, each until the update is drawn and a frame has passed.
OPEN_JS = """async () => {
  const tasks = [];
  const seen = new PerformanceObserver((l) => l.getEntries().forEach((e) => tasks.push(e.duration)));
  seen.observe({type: 'longtask'});
  let last = performance.now(), lag = 0, done = false;
  const beat = () => { const now = performance.now(); lag = Math.max(lag, now - last - 10); last = now; if (!done) setTimeout(beat, 10); };
  setTimeout(beat, 10);
  const t0 = performance.now();
  document.getElementById('live-open').click();
  while (!(window.cxLive && window.cxLive.version > 0)) await new Promise((r) => setTimeout(r, 5));
  await cxLive.idle();
  done = true;
  await new Promise((r) => setTimeout(r, 50));
  seen.disconnect();
  return {first_ms: performance.now() - t0, longest_task_ms: Math.max(0, ...tasks), lag_ms: lag,
          load_ms: cx.runtime.timings.load_ms, circuit_ms: cxLive.circuit_ms, session_ms: cxLive.session_ms,
          error: cxLive.session_ms === undefined ? document.getElementById('live-message').textContent : null};
}"""
TOGGLE_JS = """async ([prompt, n, fill]) => {
  if (fill) { // repeat the line while the prompt fits the context
    const live = cx.get(document.getElementById('live').dataset.key);
    let text = prompt;
    while (cxLive.tok.encode(text + prompt).length <= live.n_ctx) text += prompt;
    prompt = text;
  }
  cx.setState({prompt, off: null});
  await cxLive.idle();
  if (!cxLive.result) return {times: [], ids: [], T: 0, error: document.getElementById('live-message').textContent};
  const nodes = Array.from(new Set(document.querySelectorAll('circle.node'))).map((c) => c.dataset.id);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    cxLive.toggle(nodes[(i * 7) % nodes.length]);
    await cxLive.idle();
    await new Promise((r) => requestAnimationFrame(() => r()));
    times.push(performance.now() - t0);
  }
  return {times, ids: cxLive.shown.ids, T: cxLive.shown.ids.length,
          error: cxLive.result ? null : document.getElementById('live-message').textContent};
}"""


def site_to_measure(args: argparse.Namespace, scratch: Path) -> Path:
    """The site given, else one built from the runs given, the shipped demo runs, or a demo-sized stand-in."""
    if args.site:
        return Path(args.site)
    runs = [Path(r) for r in args.runs]
    if not runs:
        try:
            runs = demo_runs()
        except UserError as e:
            print(f"note: {e}")
            print("note: measuring a stand-in of the demo model's shapes instead (tests/fixture_runs.py)")
            runs = [standin(scratch, args.tasks.split(",") if args.tasks else list(STANDIN_TASKS))]
    out = args.keep or scratch / "site"
    t0 = time.perf_counter()
    report = build(runs, out, BuildOptions(quiet=True))
    print(f"{report.summary()} ({time.perf_counter() - t0:.1f} s)")
    return out


def standin(scratch: Path, tasks: list[str]) -> Path:
    """The demo config's model after 2 steps, with hand-picked circuits for a few tasks of the suite."""
    from tests.fixture_runs import make_demo_standin

    run = make_demo_standin(scratch / "runs", Path(os.environ.get("CIRCEXPORT_CACHE", scratch / "cache")))
    for path in (run / "circuits").glob("*.json"):
        if path.stem not in tasks:
            path.unlink()
    return run


LONG_LINE = "value = compute(items[index], key=lambda x: x.name) if ready else None\n"  # repeated to fill the context


def read_shard(path: Path) -> dict:
    """The data of a JSONP shard."""
    return json.loads(path.read_text().split(",", 1)[1].rsplit(")", 1)[0])


def browser_rows(site: Path, pages: list[Path], toggles: int) -> list[dict]:
    """Per page and origin (file://, http): start-up and toggle timings in headless Chromium."""
    from playwright.sync_api import sync_playwright

    server, url = serve_in_thread(site)
    rows = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for page_path in pages:
                rel = page_path.relative_to(site).as_posix()
                live = read_shard(site / "data" / page_path.parent.relative_to(site) / "live.js")
                for origin, base in (("file", site.resolve().as_uri() + "/"), ("http", url)):
                    ctx = browser.new_context()
                    page = ctx.new_page()
                    page.goto(base + rel, wait_until="load")
                    opened = page.evaluate(OPEN_JS)
                    row = {"page": page_path.parent.relative_to(site).as_posix(), "origin": origin, **opened}
                    default = live["ready"][0]["prompt"] if live["ready"] else "def f(x):\n    return x"
                    for name, prompt, fill in (("default", default, False), ("long", LONG_LINE, True)):
                        if not opened["error"]:
                            row[name] = page.evaluate(TOGGLE_JS, [prompt, toggles, fill])
                    rows.append(row)
                    ctx.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return rows


def python_row(site: Path, page_path: Path, ids: dict[str, list[int]], runs: int = 30) -> dict:
    """Python onnxruntime (1 thread) on the same circuit model and token ids: session start and median run."""
    import numpy as np
    import onnxruntime as ort

    live = read_shard(site / "data" / page_path.parent.relative_to(site) / "live.js")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(str(site / live["models"]["circuit"]["onnx"]), opts, providers=["CPUExecutionProvider"])
    out = {"session_ms": 1000 * (time.perf_counter() - t0)}
    for name, row in ids.items():
        feeds = {"tokens": np.array([row]), "mask": np.ones(len(live["nodes"]), dtype=np.float32),
                 "answers": np.array([live["answers"]])}
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append(1000 * (time.perf_counter() - t0))
        out[name] = {"median_ms": statistics.median(times), "T": len(row)}
    return out


def stats(times: list[float]) -> tuple[float, float]:
    """Median and 90th percentile."""
    s = sorted(times)
    return statistics.median(s), s[min(len(s) - 1, int(0.9 * len(s)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--site", help="measure this built site instead of building one")
    parser.add_argument("--tasks", help=f"stand-in circuits (default {','.join(STANDIN_TASKS)})")
    parser.add_argument("--toggles", type=int, default=30, help="toggles timed per prompt")
    parser.add_argument("--pages", type=int, default=3, help="circuit pages measured at most")
    parser.add_argument("--keep", type=Path, help="build into this folder and keep it")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        sys.exit(f"no {CHROMIUM}: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        site = site_to_measure(args, Path(tmp))
        pages = sorted(p for p in site.glob("*/*/index.html") if (site / "data" / p.parent.relative_to(site) / "live.js").is_file())
        pages = pages[:args.pages]
        rows = browser_rows(site, pages, args.toggles)
        medians = []
        print(f"\nheadless Chromium, ONNX Runtime Web (wasm, 1 thread); {os.cpu_count()} cores; {args.toggles} toggles per prompt")
        for r in rows:
            if r["error"]:
                print(f"{r['page']} [{r['origin']}]: the panel did not start: {r['error']}")
                continue
            print(f"{r['page']} [{r['origin']}]: runtime load {r['load_ms']:.0f} ms; session start: circuit "
                  f"{r['circuit_ms']:.0f} ms, both models {r['session_ms']:.0f} ms; everything shown {r['first_ms']:.0f} ms "
                  f"after the click; while loading: longest main-thread task {r['longest_task_ms']:.0f} ms, longest "
                  f"event-loop delay {r['lag_ms']:.0f} ms")
            for name in ("default", "long"):
                if r[name]["error"]:
                    print(f"  {name} prompt: {r[name]['error']}")
                    continue
                med, p90 = stats(r[name]["times"])
                medians.append(med)
                print(f"  update after a toggle, {name} prompt ({r[name]['T']} tokens): median {med:.1f} ms, p90 {p90:.1f} ms")
        for page_path in pages:
            first = next((r for r in rows if r["page"] == page_path.parent.relative_to(site).as_posix() and not r["error"]), None)
            if first is None or first["default"]["error"] or first["long"]["error"]:
                continue
            py = python_row(site, page_path, {name: first[name]["ids"] for name in ("default", "long")})
            print(f"python onnxruntime {first['page']}: session start {py['session_ms']:.0f} ms (circuit model); "
                  f"one circuit run: default ({py['default']['T']} tokens) {py['default']['median_ms']:.2f} ms, "
                  f"long ({py['long']['T']} tokens) {py['long']['median_ms']:.2f} ms")
        if medians:
            worst = max(medians)
            print(f"update after a toggle: worst median {worst:.1f} ms (target <= {TARGET_UPDATE_MS:.0f} ms) "
                  f"{'ok' if worst <= TARGET_UPDATE_MS else 'OVER'}")


if __name__ == "__main__":
    main()
