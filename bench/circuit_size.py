"""Circuit size, sparse vs dense: edges of each task's circuit in both models at the same target loss.

Usage: python bench/circuit_size.py [SPARSE_RUN DENSE_RUN]
With no runs it compares the shipped demo runs (trainer/zoo/demo and trainer/zoo/demo-dense).
Both runs must have been pruned (`circexport prune RUN --task all`) with the same target loss.
Prints one row per task whose circuit meets the target in both models, and the ratio of the
geometric means of their edge counts (the paper reports about 16x; our target is >= 4x).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree, not an older installed copy

from exporter.inputs import zoo_dir  # noqa: E402
from trainer.snapshot import final_val_loss  # noqa: E402


def circuits(run_dir: Path) -> dict[str, dict]:
    """The run's circuit files that meet their target, by task name."""
    out = {}
    for path in sorted((run_dir / "circuits").glob("*.json")):
        rec = json.loads(path.read_text())
        if rec["metrics"]["loss_circuit"] <= rec["task"]["target_loss"]:
            out[rec["task"]["name"]] = rec
    return out


def geomean(values: list[int]) -> float:
    """Geometric mean (zeros counted as one edge)."""
    return math.exp(sum(math.log(max(1, v)) for v in values) / len(values))


def main() -> None:
    """Print the table and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path)
    args = ap.parse_args()
    sparse, dense = args.runs if len(args.runs) == 2 else (zoo_dir() / "demo", zoo_dir() / "demo-dense")
    for run in (sparse, dense):
        if not (run / "config.json").is_file():
            sys.exit(f"{run}: not a run directory (no config.json); train and prune it first, or give SPARSE_RUN DENSE_RUN")
    a, b = circuits(sparse), circuits(dense)
    both = sorted(set(a) & set(b))
    print(f"sparse {sparse} ({len(a)} circuits at target), dense {dense} ({len(b)} circuits at target)")
    print(f"validation loss: sparse {final_val_loss(sparse):.4f}, dense {final_val_loss(dense):.4f}")
    if not both:
        sys.exit("no task has a circuit that meets the target in both runs: prune both with circexport prune")
    targets = {a[t]["task"]["target_loss"] for t in both} | {b[t]["task"]["target_loss"] for t in both}
    print(f"target loss {', '.join(f'{x:g}' for x in sorted(targets))}")
    print(f"{'task':<30}{'sparse nodes':>13}{'sparse edges':>13}{'dense nodes':>12}{'dense edges':>12}{'ratio':>8}")
    for t in both:
        ca, cb = a[t]["counts"], b[t]["counts"]
        ratio = cb["edges"] / max(1, ca["edges"])
        print(f"{t:<30}{ca['nodes']:>13}{ca['edges']:>13}{cb['nodes']:>12}{cb['edges']:>12}{ratio:>8.1f}")
    ga, gb = geomean([a[t]["counts"]["edges"] for t in both]), geomean([b[t]["counts"]["edges"] for t in both])
    print(f"geometric mean edges: sparse {ga:.1f}, dense {gb:.1f}; dense / sparse = {gb / ga:.1f}x over {len(both)} tasks")


if __name__ == "__main__":
    main()
