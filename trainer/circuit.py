"""A circuit's structure (weight edges, unembedding edges, residual links, q-k pairs) and its JSON file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from trainer.errors import UserError
from trainer.fileio import atomic_write_bytes, dump_json, read_json, rounded
from trainer.masks import Kept
from trainer.model import GPT
from trainer.schema import (CHANCE_LOSS, CIRCUIT_FORMAT, FINAL_LOCATION, edge_rows, location, node_id, node_place,
                            parse_node_id, read_circuit_record)

READS = ("attn.act_in", "mlp.act_in")
WRITES = ("attn.resid_delta", "mlp.resid_delta")


def control_threshold(target: float) -> float:
    """The loss the inverse and random circuits must reach: halfway from the target to chance."""
    return (target + CHANCE_LOSS) / 2


def faithfulness_checks(metrics: dict[str, Any], target: float) -> dict[str, bool]:
    """Verdicts on the test split: the circuit is sufficient, necessary (also once the ablated model's answer bias is
    refit, where the file has that loss), and better than random circuits of its shape."""
    checks = {"sufficient": metrics["loss_circuit"] <= target,
              "necessary": metrics["loss_inverse"] >= control_threshold(target),
              "beats_random": metrics["loss_random_mean"] >= control_threshold(target)}
    if metrics.get("loss_inverse_refit") is not None:
        checks["necessary_refit"] = metrics["loss_inverse_refit"] >= control_threshold(target)
    return checks


def _margins(two: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Of task logits [N, 2] (correct, wrong), rows 2i and 2i+1 a pair: each row's margin and its side, +1 where the
    correct answer is the pair's first (rows 2i), -1 elsewhere; [N] each, float64."""
    d = two[:, 0].double() - two[:, 1].double()
    return d, 1.0 - 2.0 * (torch.arange(len(d), device=d.device) % 2)


def offset_loss(two: torch.Tensor, offset: float) -> float:
    """Pair loss of logits [N, 2] (correct, wrong) with `offset` added to each pair's first answer's logit."""
    d, s = _margins(two)
    return float(torch.nn.functional.softplus(-(d + s * offset)).mean())


def refit_offset(two: torch.Tensor, steps: int = 60) -> float:
    """The logit offset between a task's two answers that minimizes the pair loss of logits [N, 2] (bisection on the
    slope of a convex function of one variable, within +-100): what a model biased towards one answer needs."""
    d, s = _margins(two)
    lo, hi = -100.0, 100.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        slope = float(-(s * torch.sigmoid(-(d + s * mid))).mean())
        lo, hi = (mid, hi) if slope < 0 else (lo, mid)
    return (lo + hi) / 2


def weight_edges(model: GPT, kept: Kept) -> list[dict[str, Any]]:
    """Nonzero weights between kept nodes in c_attn, attn c_proj, mlp c_fc and mlp c_proj."""
    d = model.cfg.d_attn
    edges = []
    for L, block in enumerate(model.blocks):
        qkv = block.attn.c_attn.weight.detach()  # [3 d_attn, d_in]: rows q, then k, then v
        for part, name in enumerate(("q", "k", "v")):
            edges += _edges(qkv[part * d:(part + 1) * d], kept, location(L, "attn.act_in"), location(L, f"attn.{name}"))
        edges += _edges(block.attn.c_proj.weight.detach(), kept, location(L, "attn.v"), location(L, "attn.resid_delta"))
        edges += _edges(block.mlp.c_fc.weight.detach(), kept, location(L, "mlp.act_in"), location(L, "mlp.post_act"))
        edges += _edges(block.mlp.c_proj.weight.detach(), kept, location(L, "mlp.post_act"), location(L, "mlp.resid_delta"))
    return edges


def _edges(weight: torch.Tensor, kept: Kept, src: str, dst: str) -> list[dict[str, Any]]:
    """Edges src:i -> dst:j for every nonzero weight[j, i] with both ends kept."""
    rows, cols = kept[dst].to(weight.device), kept[src].to(weight.device)  # [out], [in] on the weight's device
    at = (weight * rows.unsqueeze(1) * cols.unsqueeze(0)).nonzero()  # [E, 2]: (j, i)
    values = weight[at[:, 0], at[:, 1]].tolist()  # [E], read back in one transfer
    return [{"src": node_id(src, i), "dst": node_id(dst, j), "weight": w} for (j, i), w in zip(at.tolist(), values)]


def unembed_edges(model: GPT, kept: Kept, tokens: Iterable[int], vocab: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Nonzero paths final_resid:c -> answer token t (lm_head weight times the final norm gain)."""
    w = model.lm_head.weight.detach() * model.ln_f.weight.detach()  # [vocab, d]
    final = kept[FINAL_LOCATION].to(w.device)  # [d]
    out = []
    for t in sorted(set(tokens)):
        row = w[t]  # [d]
        channels = (row * final).nonzero().flatten()  # [n]
        for c, value in zip(channels.tolist(), row[channels].tolist()):
            out.append({"src": node_id(FINAL_LOCATION, c), "token": t, "weight": value,
                        **({"text": vocab[t]} if vocab else {})})
    return out


def resid_links(model: GPT, kept: Kept) -> list[dict[str, Any]]:
    """A kept residual write and a later kept read of the same channel."""
    n, d = model.cfg.n_layer, model.cfg.d_model  # reads past d are the concatenated position embedding
    kept = {loc: k.cpu() for loc, k in kept.items()}  # [dim] each: many small reads, none of them on the device
    writes = [(L * 2 + part, location(L, w)) for L in range(n) for part, w in enumerate(WRITES)]
    reads = [(L * 2 + part, location(L, r)) for L in range(n) for part, r in enumerate(READS)] + [(2 * n, FINAL_LOCATION)]
    links = []
    for w_pos, w_loc in writes:
        for r_pos, r_loc in reads:
            if r_pos > w_pos:
                for c in (kept[w_loc] & kept[r_loc][:d]).nonzero().flatten().tolist():
                    links.append({"src": node_id(w_loc, c), "dst": node_id(r_loc, c)})
    return links


def qk_pairs(model: GPT, kept: Kept) -> list[dict[str, Any]]:
    """Kept q and k channels with the same index: they meet in one head's attention score."""
    kept = {loc: k.cpu() for loc, k in kept.items()}  # [dim] each
    out = []
    for L in range(model.cfg.n_layer):
        q, k = location(L, "attn.q"), location(L, "attn.k")
        for c in (kept[q] & kept[k]).nonzero().flatten().tolist():
            out.append({"q": node_id(q, c), "k": node_id(k, c), "head": node_place(node_id(q, c), model.cfg.d_head).head})
    return out


def counts(kept: Kept, edges: list, unembed: list, links: list, pairs: list) -> dict[str, Any]:
    """The headline numbers of a circuit."""
    by_loc = {loc: int(k.sum()) for loc, k in kept.items() if k.any()}
    return {"nodes": sum(by_loc.values()), "edges": len(edges), "unembed_edges": len(unembed),
            "resid_links": len(links), "qk_pairs": len(pairs), "nodes_by_location": by_loc}


def write_circuit(path: Path, record: dict[str, Any]) -> None:
    """Check a circuit record whole (trainer.schema: a NaN metric or a dangling edge is refused, naming the field), then
    write its canonical text atomically."""
    stored = edge_rows({**record, "format_version": CIRCUIT_FORMAT})
    read_circuit_record(stored, path)
    atomic_write_bytes(path, dump_json(rounded(stored), inline_rows=True).encode())


def read_circuit(path: Path, model_sha: str) -> dict[str, Any]:
    """Read a circuit file, checked whole (trainer.schema), and check it belongs to the run's current model (sha256
    of its model.safetensors)."""
    record = read_circuit_record(read_json(path), path)
    if record["model"]["sha256"] != model_sha:
        raise UserError(f"{path}: pruned from a different model (sha256 {record['model']['sha256'][:12]}…, "
                        f"the run's model.safetensors is {model_sha[:12]}…); re-run circexport prune")
    return record


def check_circuit_fits(record: dict[str, Any], model: GPT, path: Path) -> None:
    """A UserError naming the file and field unless every node, answer token and head of the circuit is the model's."""
    fix = "re-run circexport prune"
    widths = {loc: model.location_dim(loc) for loc in model.node_locations()}
    for i, n in enumerate(record["nodes"]):
        loc, index = parse_node_id(n["id"])
        if index >= widths.get(loc, 0):
            raise UserError(f"{path}: field nodes[{i}].id: {n['id']!r} is not a node of this model "
                            f"({model.cfg.n_layer} layers, {loc} {widths.get(loc, 0)} wide); {fix}")
    for i, e in enumerate(record["unembed_edges"]):
        if e["token"] >= model.cfg.vocab_size:
            raise UserError(f"{path}: field unembed_edges[{i}].token: {e['token']} is past the model's vocabulary "
                            f"of {model.cfg.vocab_size}; {fix}")
    for i, p in enumerate(record["qk_pairs"]):
        if p["head"] >= model.cfg.n_head:
            raise UserError(f"{path}: field qk_pairs[{i}].head: {p['head']} is past the model's {model.cfg.n_head} "
                            f"heads; {fix}")
