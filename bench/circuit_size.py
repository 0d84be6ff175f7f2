"""Circuit size, sparse vs dense: nodes and edges of each task's circuit in both models at the same target loss.

Usage: python bench/circuit_size.py [SPARSE_RUN DENSE_RUN]
With no runs it compares the shipped demo runs (trainer/zoo/demo and trainer/zoo/demo-dense).
Both runs must have been pruned (`circexport prune RUN --task all`) with the same target loss.
Prints one row per task whose circuit meets the target in both models and three ratios of geometric means,
dense / sparse: nodes; edges as the circuit files count them (every nonzero weight between two kept nodes: a dense
matrix has them all); and edges at matched density (in each dense matrix only its largest |w| at the sparse model's
density of that matrix count, so the ratio no longer credits the sparse model with its own edge definition).
Targets: all-edges ratio >= 16x, matched-density ratio >= 4x.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree, not an older installed copy

import torch  # noqa: E402

from exporter.inputs import zoo_dir  # noqa: E402
from trainer.circuit import weight_edges  # noqa: E402
from trainer.masks import kept_from_ids  # noqa: E402
from trainer.model import GPT  # noqa: E402
from trainer.run import load_run  # noqa: E402
from trainer.snapshot import final_val_loss  # noqa: E402


def circuits(run_dir: Path) -> dict[str, dict]:
    """The run's circuit files that meet their target, by task name."""
    out = {}
    for path in sorted((run_dir / "circuits").glob("*.json")):
        rec = json.loads(path.read_text())
        if rec["metrics"]["loss_circuit"] <= rec["task"]["target_loss"]:
            out[rec["task"]["name"]] = rec
    return out


def matched_density(dense: GPT, sparse: GPT) -> GPT:
    """A copy of the dense model whose every block matrix keeps only its largest |w| at the density of the sparse
    model's same matrix (the rest zeroed)."""
    out = copy.deepcopy(dense)
    sparse_params = dict(sparse.named_parameters())
    with torch.no_grad():
        for name, w in out.named_parameters():
            if w.dim() != 2 or not name.startswith("blocks."):
                continue
            k = int(torch.count_nonzero(sparse_params[name]))
            if k < w.numel():
                cut = w.abs().flatten().kthvalue(w.numel() - k).values  # the (numel - k)-th smallest |w|
                w.mul_((w.abs() > cut).to(w.dtype))
    return out


def weight_edge_count(model: GPT, rec: dict) -> int:
    """Nonzero weights between the circuit's kept nodes in the model's block matrices."""
    return len(weight_edges(model, kept_from_ids(model, [n["id"] for n in rec["nodes"]])))


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
    sparse_model, dense_model = load_run(sparse).model, load_run(dense).model
    matched = matched_density(dense_model, sparse_model)
    print(f"{'task':<28}{'sparse nodes':>13}{'edges':>7}{'dense nodes':>12}{'edges':>7}{'matched':>9}")
    rows = []
    for t in both:
        ca, cb = a[t]["counts"], b[t]["counts"]
        rows.append((ca["nodes"], weight_edge_count(sparse_model, a[t]), cb["nodes"], weight_edge_count(dense_model, b[t]),
                     weight_edge_count(matched, b[t])))
        print(f"{t:<28}{rows[-1][0]:>13}{rows[-1][1]:>7}{rows[-1][2]:>12}{rows[-1][3]:>7}{rows[-1][4]:>9}")
    g = [geomean([r[i] for r in rows]) for i in range(5)]
    print(f"geometric means over {len(both)} tasks, dense / sparse: nodes {g[2] / g[0]:.1f}x; "
          f"all edges {g[3] / g[1]:.1f}x (target >= 16x); edges at matched density {g[4] / g[1]:.1f}x (target >= 4x)")


if __name__ == "__main__":
    main()
