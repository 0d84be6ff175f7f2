"""Does the pruner's budget converge? Each task pruned with the default budget and with a larger one, side by side:
nodes, edges, test loss, seconds, and how much the two circuits share (Jaccard over node ids).

Usage: python bench/prune_budget.py RUN [--tasks a,b] [--scale 4] [--target-loss 0.15]
The larger budget multiplies the mask-training steps by --scale. Tasks the run has not learned
at the target are skipped. A budget converges when the larger one changes the circuit little (the issue's bar:
under 10 % of nodes).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree, not an older installed copy

from trainer.jobs import JobConfig, evaluate_task, task_splits  # noqa: E402
from trainer.means import means_for_run  # noqa: E402
from trainer.prune import PruneConfig, prune_task  # noqa: E402
from trainer.run import load_run  # noqa: E402
from trainer.tasks import TASKS, get_task  # noqa: E402


def main() -> None:
    """Print one row per learned task."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--target-loss", type=float, default=0.15)
    args = ap.parse_args()
    run = load_run(args.run)
    jobs = JobConfig()
    means = means_for_run(run, jobs.mean_tokens)
    base = PruneConfig(target_loss=args.target_loss)
    big = replace(base, steps=base.steps * args.scale)
    names = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    print(f"{'task':<26}{'nodes':>7}{'x' + str(args.scale):>7}{'edges':>7}{'x' + str(args.scale):>7}"
          f"{'loss':>8}{'x' + str(args.scale):>8}{'s':>7}{'x' + str(args.scale):>7}{'shared':>8}")
    for name in names:
        task = get_task(name)
        splits = task_splits(task, run, jobs)
        if not evaluate_task(run, task, splits, args.target_loss)["learned"]:
            continue
        recs, seconds = [], []
        for cfg in (base, big):
            t0 = time.perf_counter()
            recs.append(prune_task(run.model, means, splits, cfg))
            seconds.append(time.perf_counter() - t0)
        a, b = ({n["id"] for n in r["nodes"]} for r in recs)
        shared = len(a & b) / max(1, len(a | b))
        print(f"{name:<26}{len(a):>7}{len(b):>7}{recs[0]['counts']['edges']:>7}{recs[1]['counts']['edges']:>7}"
              f"{recs[0]['metrics']['loss_circuit']:>8.3f}{recs[1]['metrics']['loss_circuit']:>8.3f}"
              f"{seconds[0]:>7.0f}{seconds[1]:>7.0f}{shared:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
