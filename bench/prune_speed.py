"""Pruning speed and circuit size: seconds per task, learned-mask edges next to the attribution baseline's.

Usage: python bench/prune_speed.py [--run RUN_DIR ...] [--tasks a,b] [--jobs 1]
Always measures a `tiny` run trained here first; add trained runs (e.g. the demo) with --run.
Tasks a run has not learned are pruned against a relative target (unpruned loss + 0.05) so the
timing still covers the whole pipeline; those rows are marked "rel".
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree, not an older installed copy

from trainer.config import load_config  # noqa: E402
from trainer.jobs import JobConfig, evaluate_task, task_splits  # noqa: E402
from trainer.means import means_for_run  # noqa: E402
from trainer.prune import PruneConfig, prune_task  # noqa: E402
from trainer.run import Run, load_run  # noqa: E402
from trainer.tasks import get_task  # noqa: E402
from trainer.train import TrainOptions, train  # noqa: E402


def bench_run(run_dir: Path, names: list[str], mean_tokens: int) -> None:
    """Prune each task of a copy of one run (its means, computed for this token count, never replace the run's own)
    and print a row per task."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run_dir.name
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("state", "snapshots", "circuits"))
        bench_loaded(load_run(copy), names, mean_tokens)


def bench_loaded(run: Run, names: list[str], mean_tokens: int) -> None:
    """Prune each task of a loaded run and print a row per task."""
    t0 = time.perf_counter()
    means = means_for_run(run, mean_tokens)
    m = run.cfg.model
    print(f"\n{run.cfg.name}: {m.n_layer} layers, d_model {m.d_model}; means over {mean_tokens} tokens in {time.perf_counter() - t0:.1f} s")
    print(f"{'task':<28}{'target':>9}{'seconds':>9}{'nodes':>7}{'edges':>7}{'attr nodes':>11}{'attr edges':>11}{'ratio':>7}")
    jobs = JobConfig(mean_tokens=mean_tokens)
    for name in names:
        task = get_task(name)
        splits = task_splits(task, run, jobs)
        full = evaluate_task(run, task, splits, PruneConfig().target_loss)
        target, mark = (0.15, "") if full["learned"] else (full["loss"] + 0.05, "rel")
        t0 = time.perf_counter()
        rec = prune_task(run.model, means, splits, PruneConfig(target_loss=target))
        seconds = time.perf_counter() - t0
        met = rec["metrics"]
        attr_edges = met["attribution_edges_at_target"]
        edges = rec["counts"]["edges"]
        ratio = f"{attr_edges / edges:.1f}" if attr_edges is not None and edges else "-"
        print(f"{name:<28}{target:>6.3f}{mark:>3}{seconds:>9.1f}{rec['counts']['nodes']:>7}{edges:>7}"
              f"{str(met['attribution_nodes_at_target']):>11}{str(attr_edges):>11}{ratio:>7}")


def main() -> None:
    """Train tiny, then benchmark it and every --run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", type=Path, default=[])
    ap.add_argument("--tasks", default="single_double_quote,bracket_counting,set_or_string_fixedvarname,for_while")
    ap.add_argument("--mean-tokens", type=int, default=1 << 18)
    args = ap.parse_args()
    names = args.tasks.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny"
        train(load_config("tiny", ["train.steps=200"]), TrainOptions(out=tiny, quiet=True))
        bench_run(tiny, names, args.mean_tokens)
    for run_dir in args.run:
        bench_run(run_dir, names, args.mean_tokens)


if __name__ == "__main__":
    main()
