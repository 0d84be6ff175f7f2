"""Circuit size, sparse vs dense: nodes and edges of each task's circuit in both models at the same target loss.

Usage: python bench/circuit_size.py [SPARSE_RUN BASELINE_RUN [BASELINE_RUN ...]]
With no runs it compares the shipped sparse demo (trainer/zoo/demo) with each shipped baseline: the dense one
(trainer/zoo/demo-dense: neither weight nor activation sparsity) and the activation-only one (trainer/zoo/demo-dense-topk:
dense weights, the demo's AbsTopK), so the ratios separate what weight sparsity does from what activation sparsity does.
All runs must have been pruned (`circexport prune RUN --task all`) with the same target loss.
Prints, per baseline, one row per task whose circuit meets the target in both models and three ratios of geometric
means, baseline / sparse: nodes; edges as the circuit files count them (every nonzero weight between two kept nodes: a
dense matrix has them all); and edges at matched density (in each dense matrix only its largest |w| at the sparse
model's density of that matrix count, so the ratio no longer credits the sparse model with its own edge definition).
Targets (against the dense baseline): all-edges ratio >= 16x, matched-density ratio >= 4x.
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


def compare(sparse: Path, a: dict[str, dict], sparse_model: GPT, base: Path) -> None:
    """Print one baseline's table against the sparse run (its circuits `a` and model) and its three ratios."""
    b = circuits(base)
    both = sorted(set(a) & set(b))
    print(f"\nsparse {sparse} ({len(a)} circuits at target), baseline {base} ({len(b)} circuits at target)")
    print(f"validation loss: sparse {final_val_loss(sparse):.4f}, baseline {final_val_loss(base):.4f}")
    if not both:
        print("no task has a circuit that meets the target in both runs: prune both with circexport prune")
        return
    targets = {a[t]["task"]["target_loss"] for t in both} | {b[t]["task"]["target_loss"] for t in both}
    print(f"target loss {', '.join(f'{x:g}' for x in sorted(targets))}")
    base_model = load_run(base).model
    matched = matched_density(base_model, sparse_model)
    print(f"{'task':<28}{'sparse nodes':>13}{'edges':>7}{'base nodes':>11}{'edges':>7}{'matched':>9}")
    rows = []
    for t in both:
        rows.append((a[t]["counts"]["nodes"], weight_edge_count(sparse_model, a[t]), b[t]["counts"]["nodes"],
                     weight_edge_count(base_model, b[t]), weight_edge_count(matched, b[t])))
        print(f"{t:<28}{rows[-1][0]:>13}{rows[-1][1]:>7}{rows[-1][2]:>11}{rows[-1][3]:>7}{rows[-1][4]:>9}")
    g = [geomean([r[i] for r in rows]) for i in range(5)]
    print(f"geometric means over {len(both)} tasks, baseline / sparse: nodes {g[2] / g[0]:.1f}x; "
          f"all edges {g[3] / g[1]:.1f}x (target >= 16x against dense); edges at matched density {g[4] / g[1]:.1f}x "
          "(target >= 4x against dense)")


def main() -> None:
    """Print each baseline's table and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path)
    args = ap.parse_args()
    if len(args.runs) == 1:
        sys.exit("give SPARSE_RUN and at least one BASELINE_RUN, or no runs for the shipped demo runs")
    shipped = [zoo_dir() / "demo-dense", zoo_dir() / "demo-dense-topk"]
    sparse, *bases = args.runs or [zoo_dir() / "demo", *(b for b in shipped if b.is_dir())]
    for run in (sparse, *bases):
        if not (run / "config.json").is_file():
            sys.exit(f"{run}: not a run directory (no config.json); train and prune it first, or give SPARSE_RUN BASELINE_RUN")
    sparse_circuits, sparse_model = circuits(sparse), load_run(sparse).model
    for base in bases:
        compare(sparse, sparse_circuits, sparse_model, base)


if __name__ == "__main__":
    main()
