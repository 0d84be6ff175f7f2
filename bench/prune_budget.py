"""Does the pruner's budget converge? Each task pruned with a budget, with the same budget under another seed, and
with a larger budget, side by side: nodes, edges, test loss, seconds, and how much the circuits share (Jaccard over
node ids). A budget has converged when the larger one changes the circuit no more than another seed does.

Usage: python bench/prune_budget.py RUN [--tasks a,b] [--scale 4] [--target-loss 0.15] [--steps N] [--lr X]
                                        [--k-coefs a,b] [--seed S]
The larger budget multiplies the mask-training steps by --scale; --steps, --lr, --k-coefs (the sweep) and --seed set
the base budget (default: the pruner's defaults). Tasks the run has not learned at the target are skipped. The last
line is the geometric mean over tasks of each circuit's node count against the base budget's.
"""

from __future__ import annotations

import argparse
import math
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


def jaccard(a: set[str], b: set[str]) -> float:
    """Shared nodes over all nodes of two circuits."""
    return len(a & b) / max(1, len(a | b))


def main() -> None:
    """Print one row per learned task, then the geometric means."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--target-loss", type=float, default=0.15)
    ap.add_argument("--steps", type=int, default=PruneConfig.steps)
    ap.add_argument("--lr", type=float, default=PruneConfig.lrs[0])
    ap.add_argument("--k-coefs", default=",".join(map(str, PruneConfig.k_coefs)))
    ap.add_argument("--seed", type=int, default=PruneConfig.seed, help="mask initialisation and pair draws")
    args = ap.parse_args()
    run = load_run(args.run)
    jobs = JobConfig()
    means = means_for_run(run, jobs.mean_tokens)
    base = PruneConfig(target_loss=args.target_loss, steps=args.steps, lrs=(args.lr,),
                       k_coefs=tuple(float(c) for c in args.k_coefs.split(",")), seed=args.seed)
    big = f"x{args.scale}"
    configs = {"base": base, "seed": replace(base, seed=base.seed + 1),
               big: replace(base, steps=base.steps * args.scale)}
    print(f"base: {base.steps} steps at lr {args.lr:g}, k_coef sweep {base.k_coefs}, seed {base.seed}; "
          f"seed: the same under seed {base.seed + 1}; {big}: {base.steps * args.scale} steps")
    print(f"{'task':<24}{'nodes: base':>12}{'seed':>6}{big:>6}{'edges: base':>12}{'seed':>6}{big:>6}"
          f"{'loss: base':>11}{big:>7}{'s: base':>8}{big:>6}{'shared: seed':>13}{big:>6}")
    ratios: dict[str, list[float]] = {"seed": [], big: []}
    names = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    for name in names:
        task = get_task(name)
        splits = task_splits(task, run, jobs)
        if not evaluate_task(run, task, splits, args.target_loss)["learned"]:
            continue
        recs, seconds = {}, {}
        for key, cfg in configs.items():
            t0 = time.perf_counter()
            recs[key] = prune_task(run.model, means, splits, cfg)
            seconds[key] = time.perf_counter() - t0
        ids = {key: {n["id"] for n in r["nodes"]} for key, r in recs.items()}
        nodes = [len(ids[key]) for key in configs]
        edges = [recs[key]["counts"]["edges"] for key in configs]
        for key in ratios:
            ratios[key].append(len(ids[key]) / max(1, len(ids["base"])))
        print(f"{name:<24}{nodes[0]:>12}{nodes[1]:>6}{nodes[2]:>6}{edges[0]:>12}{edges[1]:>6}{edges[2]:>6}"
              f"{recs['base']['metrics']['loss_circuit']:>11.3f}{recs[big]['metrics']['loss_circuit']:>7.3f}"
              f"{seconds['base']:>8.0f}{seconds[big]:>6.0f}"
              f"{jaccard(ids['base'], ids['seed']):>13.2f}{jaccard(ids['base'], ids[big]):>6.2f}", flush=True)
    for key, values in ratios.items():
        if values:
            mean = math.exp(sum(math.log(v) for v in values) / len(values))
            print(f"nodes {key} / base, geometric mean over {len(values)} tasks: {mean:.2f}")


if __name__ == "__main__":
    main()
