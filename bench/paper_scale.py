"""Paper-scale models end to end: checkpoints shaped like the released csp_yolo1 and csp_yolo2 (openai/circuit_sparsity's
format, a planted single_double_quote circuit, random sparse weights elsewhere) are imported, pruned, built into a
site and opened in Chromium.

Per shape and density it prints: import s, prune s, build s and each one's peak RSS (its own process); site MB and the
largest file; bytes per nonzero weight (of the site without its fixed assets/, and of the ONNX weights files alone);
the live panel's session start and median update after a node toggle in headless Chromium (file://), and the tab's
memory (the renderer processes' peak RSS while the panel opens). Targets on 2 cores: csp_yolo1 site <= 100 MB with no
file over 50 MB; csp_yolo2 site <= 1 GB with no file over 100 MB; <= 12 bytes per nonzero weight plus the fixed
assets; circuit update <= 100 ms.

Pruning a 156M-parameter model on a CPU takes hours with the default budget; on CPU this bench prunes with a short one
(--prune-steps, fewer pairs and random draws, --mean-tokens) and says so; with --device cuda it is the default's.

With --no-search the pruner's search is skipped (the planted nodes are the circuit, measured by the pruner's code),
which keeps a CPU run of every shape within an hour.

Usage: python bench/paper_scale.py [--shapes csp_yolo1,csp_yolo2] [--densities 64,256] [--device auto|cpu|cuda]
                                   [--no-search] [--keep DIR] [--toggles 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other bench scripts

from live_latency import ARGS, CHROMIUM, OPEN_JS, TOGGLE_JS, read_shard  # noqa: E402
from paper_scale_models import SHAPES, TASK, write_checkpoint  # noqa: E402

TARGETS = {"csp_yolo1": (100, 50), "csp_yolo2": (1000, 100), "small": (100, 50)}  # site MB, largest file MB
TARGET_BYTES_PER_NONZERO = 12.0
TARGET_UPDATE_MS = 100.0
CIRCEXPORT = [sys.executable, "-m", "exporter.cli"]


def measured(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run a command (its output to `log`); its wall seconds and peak RSS in MB, or exit naming the log on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
        _, status, usage = os.wait4(proc.pid, 0)
    if status:
        sys.exit(f"failed ({status}): {' '.join(cmd)}; see {log}:\n{log.read_text()[-2000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def prune_job(run: str, device: str, short: bool, mean_tokens: int, steps: int) -> None:
    """The pruning step, in its own process: the planted task, with the default budget or a short one."""
    from trainer.jobs import JobConfig, prune_run, summary_table
    from trainer.prune import PruneConfig

    if short:
        cfg = JobConfig(prune=PruneConfig(steps=steps, k_coefs=(1e-3,), random_draws=4, attribution_pairs=16),
                        train_pairs=64, eval_pairs=32, test_pairs=64, mean_tokens=mean_tokens, device=device, quiet=True)
    else:
        cfg = JobConfig(mean_tokens=mean_tokens, device=device, quiet=True)
    print(summary_table(prune_run(Path(run), [TASK], cfg), cfg.prune.target_loss))


def planted_job(run: str, device: str, mean_tokens: int, nodes: list[str]) -> None:
    """Instead of pruning: the planted nodes as the circuit, described by the pruner's own code (edges, links, counts)
    and measured on 64 test pairs (full, circuit, inverse, empty); no search, so no sweep or random control."""
    from trainer.circuit import counts, qk_pairs, resid_links, unembed_edges, weight_edges, write_circuit
    from trainer.jobs import JobConfig, circuit_header, load_run_on, resolve_device, task_splits
    from trainer.masks import all_kept, kept_from_ids
    from trainer.means import means_for_run
    from trainer.prune import Evaluator
    from trainer.tasks import get_task, pair_accuracy, pair_loss

    t0 = time.perf_counter()
    cfg = JobConfig(train_pairs=8, eval_pairs=8, test_pairs=64, mean_tokens=mean_tokens, device=device)
    r = load_run_on(run, resolve_device(device))
    means, task = means_for_run(r, mean_tokens), get_task(TASK)
    test = task_splits(task, r, cfg).test
    ev, kept = Evaluator(r.model, means, test), kept_from_ids(r.model, nodes)
    full, circuit = ev.logits(), ev.logits(kept)
    metrics = {"loss_full": float(pair_loss(full, test)), "acc_full": pair_accuracy(full, test),
               "loss_circuit": float(pair_loss(circuit, test)), "acc_circuit": pair_accuracy(circuit, test),
               "loss_inverse": ev.loss({loc: ~k for loc, k in kept.items()}), "loss_empty": ev.loss(all_kept(r.model, False))}
    kept = {loc: k.cpu() for loc, k in kept.items()}
    edges, unembed = weight_edges(r.model, kept), unembed_edges(r.model, kept, [int(test.correct[0]), int(test.wrong[0])])
    links, pairs = resid_links(r.model, kept), qk_pairs(r.model, kept)
    record = {**circuit_header(r, task, cfg), "metrics": metrics,
              "counts": counts(kept, edges, unembed, links, pairs),
              "nodes": [{"id": n, "tau": 1.0, "mean": float(means[n.rpartition(":")[0]][int(n.rpartition(":")[2])])} for n in nodes],
              "edges": edges, "unembed_edges": unembed, "resid_links": links, "qk_pairs": pairs, "sweep": [],
              "prune": {"searched": False, "meets_target": metrics["loss_circuit"] <= cfg.prune.target_loss,
                        "seconds": round(time.perf_counter() - t0, 1)}}
    write_circuit(Path(run) / "circuits" / f"{TASK}.json", record)
    print(json.dumps(metrics))


def renderer_rss_mb() -> float:
    """Resident memory of Chromium's renderer processes (the tab, its worker and the wasm heap live there), in MB."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"--type=renderer" in cmd:
                status = Path(f"/proc/{pid}/status").read_text()
                total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        except (OSError, StopIteration):
            continue
    return total / 1024


def live_panel(site: Path, page_rel: str, toggles: int) -> dict:
    """Open the circuit page from file:// in headless Chromium: session start, toggle updates, the tab's peak memory."""
    from playwright.sync_api import sync_playwright

    peak, stop = [0.0], threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], renderer_rss_mb())
            time.sleep(0.05)

    live = read_shard(site / "data" / Path(page_rel).parent / "live.js")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context().new_page()
        page.goto(site.resolve().as_uri() + "/" + page_rel, wait_until="load")
        before = renderer_rss_mb()
        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        opened = page.evaluate(OPEN_JS)
        row = {**opened, "tab_before_mb": before}
        if not opened["error"]:
            prompt = live["ready"][0]["prompt"] if live["ready"] else "x = ('"
            row["toggle"] = page.evaluate(TOGGLE_JS, [prompt, toggles, False])
            row["full_row"] = page.locator('#live-probs tr[data-model="full"]').inner_text()
        stop.set()
        thread.join()
        row["tab_peak_mb"] = peak[0]
        browser.close()
    return row


def site_figures(site: Path, run: Path) -> dict:
    """Size of the site and its largest file, and bytes per nonzero weight of the model."""
    from trainer.run import load_tensors

    sizes = {p.relative_to(site).as_posix(): p.stat().st_size for p in site.rglob("*") if p.is_file()}
    tensors = load_tensors(run / "model.safetensors")
    nonzero = sum(int((t != 0).sum()) for t in tensors.values() if t.dim() >= 2)
    largest = max(sizes.items(), key=lambda kv: kv[1])
    assets = sum(n for p, n in sizes.items() if p.startswith("assets/"))
    weights = sum(n for p, n in sizes.items() if p.startswith("onnx/") and "/weights/" in p)
    return {"site_mb": sum(sizes.values()) / 1e6, "largest": largest, "nonzero": nonzero,
            "bytes_per_nonzero": (sum(sizes.values()) - assets) / nonzero, "weights_per_nonzero": weights / nonzero,
            "assets_mb": assets / 1e6}


def one(shape: str, density: int, args: argparse.Namespace, scratch: Path) -> dict:
    """Every step for one shape and density; returns its figures."""
    name = f"{shape}-d{density}"
    src, run, site, logs = scratch / f"{name}-src", scratch / name, scratch / f"{name}-site", scratch / "logs"
    logs.mkdir(exist_ok=True)
    ckpt = write_checkpoint(src, shape, 1 / density)
    print(f"{name}: wrote {ckpt['params']:,} parameters, {ckpt['nonzero']:,} nonzero, in {ckpt['seconds']:.0f} s", flush=True)
    row = {"name": name, "shape": shape, "density": density, "params": ckpt["params"], "planted": ckpt["planted"]["nodes"]}
    row["import"] = measured([*CIRCEXPORT, "import-openai", str(src), str(run)], logs / f"{name}-import.log")
    short = args.device_resolved == "cpu"
    job = ["--planted-job", ",".join(ckpt["planted"]["nodes"])] if args.no_search else ["--prune-job"]
    row["prune"] = measured([sys.executable, __file__, *job, str(run), "--device", args.device_resolved,
                             "--mean-tokens", str(args.mean_tokens), "--prune-steps", str(args.prune_steps)]
                            + (["--short"] if short else []), logs / f"{name}-prune.log")
    row["prune_short"], row["searched"] = short, not args.no_search
    circuit = json.loads((run / "circuits" / f"{TASK}.json").read_text())
    row["circuit"] = {"nodes": [n["id"] for n in circuit["nodes"]], "loss": circuit["metrics"]["loss_circuit"],
                      "loss_full": circuit["metrics"]["loss_full"], "meets_target": circuit["prune"]["meets_target"]}
    row["build"] = measured([*CIRCEXPORT, "build", str(run), "-o", str(site), "--quiet", "--device", args.device_resolved,
                             "--sample-tokens", str(args.sample_tokens)], logs / f"{name}-build.log")
    row.update(site_figures(site, run))
    row["live"] = live_panel(site, f"{name}/{TASK}/index.html", args.toggles)
    return row


def report(r: dict) -> None:
    """Print one row's figures against the targets."""
    site_target, file_target = TARGETS[r["shape"]]
    live = r["live"]
    print(f"\n== {r['name']}: {r['params'] / 1e6:.0f}M parameters, {r['nonzero']:,} nonzero weights (1/{r['density']})")
    for step in ("import", "prune", "build"):
        s, mb = r[step]
        note = " (short CPU budget)" if step == "prune" and r["prune_short"] else ""
        if step == "prune" and not r["searched"]:
            step, note = "means", " (and the planted circuit measured; no search: --no-search)"
        print(f"  {step:<7} {s:8.1f} s   peak RSS {mb:8.0f} MB{note}")
    c = r["circuit"]
    found = sorted(set(c["nodes"]) & set(r["planted"]))
    print(f"  circuit {len(c['nodes'])} nodes, test loss {c['loss']:.3f} (full {c['loss_full']:.3f}), meets target "
          f"{c['meets_target']}; planted nodes found {len(found)} of {len(r['planted'])}")
    print(f"  site {r['site_mb']:.1f} MB (target <= {site_target}; fixed assets {r['assets_mb']:.1f} MB); largest "
          f"{r['largest'][0]} {r['largest'][1] / 1e6:.1f} MB (target <= {file_target})")
    print(f"  bytes per nonzero weight: site without assets {r['bytes_per_nonzero']:.2f} (target <= "
          f"{TARGET_BYTES_PER_NONZERO:.0f}), ONNX weights files alone {r['weights_per_nonzero']:.2f}")
    if live["error"]:
        print(f"  live panel did not start: {live['error']}")
        return
    times = live["toggle"]["times"]
    med = statistics.median(times) if times else float("nan")
    print(f"  live panel (file://): runtime {live['load_ms']:.0f} ms, circuit session {live['circuit_ms']:.0f} ms, "
          f"ready {live['session_ms']:.0f} ms; update after a toggle median {med:.1f} ms at {live['toggle']['T']} tokens "
          f"(target <= {TARGET_UPDATE_MS:.0f}); tab {live['tab_before_mb']:.0f} MB before, peak {live['tab_peak_mb']:.0f} MB")
    print(f"  full-model row: {live['full_row']!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="csp_yolo1,csp_yolo2")
    parser.add_argument("--densities", default="64,256", help="keep 1 in this many weights (comma-separated)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--mean-tokens", type=int, default=16384, help="pretraining tokens behind the means")
    parser.add_argument("--prune-steps", type=int, default=40, help="mask-training steps of the short CPU budget")
    parser.add_argument("--sample-tokens", type=int, default=8192, help="tokens behind the build's activation tables")
    parser.add_argument("--toggles", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--no-search", action="store_true",
                        help="skip the pruner's search: the planted nodes are the circuit (measured, not searched)")
    parser.add_argument("--prune-job", help=argparse.SUPPRESS)
    parser.add_argument("--planted-job", help=argparse.SUPPRESS)
    parser.add_argument("--short", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("run", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prune_job:
        prune_job(args.prune_job, args.device, args.short, args.mean_tokens, args.prune_steps)
        return
    if args.planted_job:
        planted_job(args.run, args.device, args.mean_tokens, args.planted_job.split(","))
        return
    from trainer.jobs import resolve_device

    args.device_resolved = str(resolve_device(args.device))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.keep or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        for shape in args.shapes.split(","):
            if shape not in SHAPES:
                sys.exit(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
            for density in map(int, args.densities.split(",")):
                rows.append(one(shape, density, args, scratch))
                report(rows[-1])
    print(f"\ndevice {args.device_resolved}; {os.cpu_count()} cores; headless Chromium {CHROMIUM}")


if __name__ == "__main__":
    main()
