"""Real run directories for exporter tests and benchmarks: a tiny trained model with hand-picked circuits.

The circuits are made without the task suite or the pruner: their nodes are the ends of each weight matrix's
largest entries, and their structure (edges, residual links, q-k pairs, unembedding edges) is computed by
trainer.circuit exactly as the pruner does; the metrics are plausible placeholders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from trainer import data
from trainer import circuit
from trainer.circuit import counts, qk_pairs, resid_links, unembed_edges, weight_edges
from trainer.config import load_config
from trainer.fileio import file_sha256, write_json
from trainer.masks import kept_from_ids, kept_ids
from trainer.schema import TASK_TABLE_FORMAT, TASKS_FILE, node_id
from trainer.means import compute_means
from trainer.run import MODEL, TOKENIZER, load_run, load_tensors, save_tensors
from trainer.tokenizer import load_tokenizer
from trainer.train import TrainOptions, train

XSS = "<img src=x onerror=alert(1)>"
MEAN_TOKENS = 4096
TARGET_LOSS = 0.69  # the fixture circuit (loss 0.62) meets it; its inverse and random controls (0.69) do not
TASKS = {  # name: (target, alternative): a suite task, a suite task whose answers are labels, a task not in the suite
    "lambda_func": (":", "(self"),
    "var_swap": ("first name", "second name"),
    "bool_literal": (" True", " False"),
}


def train_tiny(out: Path, cache: Path, steps: int = 20, config: str = "tiny", overrides: tuple[str, ...] = ()) -> Path:
    """Train a config (by default the tiny one) for a few steps (seconds on one core)."""
    cfg = load_config(config, [f"train.steps={steps}", *overrides])
    return train(cfg, TrainOptions(out=out, quiet=True, cache_dir=cache))


def picked_nodes(model, target: int, alternative: int, per_matrix: int) -> list[str]:
    """Both ends of each weight matrix's largest entries, and the final-residual channels that separate the answers."""
    d, ids = model.cfg.d_model, set()
    for L, block in enumerate(model.blocks):
        qkv = block.attn.c_attn.weight.detach()
        mats = [(qkv[p * d:(p + 1) * d], f"{L}.attn.act_in", f"{L}.attn.{n}") for p, n in enumerate("qkv")]
        mats += [(block.attn.c_proj.weight.detach(), f"{L}.attn.v", f"{L}.attn.resid_delta"),
                 (block.mlp.c_fc.weight.detach(), f"{L}.mlp.act_in", f"{L}.mlp.post_act"),
                 (block.mlp.c_proj.weight.detach(), f"{L}.mlp.post_act", f"{L}.mlp.resid_delta")]
        for w, src, dst in mats:
            for flat in w.abs().flatten().topk(per_matrix).indices.tolist():
                j, i = divmod(flat, w.size(1))
                ids |= {node_id(src, i), node_id(dst, j)}
    diff = (model.lm_head.weight[target] - model.lm_head.weight[alternative]).detach() * model.ln_f.weight.detach()
    ids |= {node_id("final_resid", c) for c in diff.abs().topk(2).indices.tolist()}
    return kept_ids(kept_from_ids(model, sorted(ids)))  # location order, then index


def write_circuit(run_dir: Path, name: str, target: str, alternative: str, per_matrix: int = 1) -> Path:
    """A circuit file in the pruner's format for a hand-picked node set."""
    run = load_run(run_dir)
    tok = load_tokenizer(str(run_dir / TOKENIZER))
    t_id, a_id = (tok.encode(s, add_special_tokens=False).ids[0] for s in (target, alternative))
    model = run.model
    ids = picked_nodes(model, t_id, a_id, per_matrix)
    kept = kept_from_ids(model, ids)
    means = load_tensors(run_dir / "means.safetensors")
    nodes = [{"id": n, "tau": 1.0 - 0.01 * k, "mean": float(means[n.rpartition(":")[0]][int(n.rpartition(":")[2])]),
              "ablation_delta": 0.02 * ((k * 7) % 11)} for k, n in enumerate(ids)]
    edges, unembed = weight_edges(model, kept), unembed_edges(model, kept, [t_id, a_id])
    links, pairs = resid_links(model, kept), qk_pairs(model, kept)
    total = sum(model.location_dim(loc) for loc in model.node_locations())
    record = {
        "model": {"run": run.cfg.name, "sha256": file_sha256(run_dir / MODEL)},
        "task": {"name": name, "description": f"Predict {target!r} rather than {alternative!r}; {XSS}",
                 "target": target, "alternative": alternative, "target_loss": TARGET_LOSS},
        "ablation": {"kind": "mean", "tokens": MEAN_TOKENS},
        "splits": {"train_pairs": 64, "eval_pairs": 32, "test_pairs": 32},
        "metrics": {"loss_full": 0.45, "acc_full": 0.8, "loss_circuit": 0.62, "acc_circuit": 0.7, "loss_inverse": 0.69,
                    "loss_inverse_refit": 0.5, "inverse_refit_offset": 1.5, "loss_empty": 0.693, "loss_random_mean": 0.69, "loss_random_sd": 0.01, "loss_attribution_same_k": 0.68,
                    "attribution_nodes_at_target": None, "attribution_edges_at_target": None,
                    "loss_circuit_frozen_norm": 0.64},
        "counts": counts(kept, edges, unembed, links, pairs),
        "nodes": nodes, "edges": edges, "unembed_edges": unembed, "resid_links": links, "qk_pairs": pairs,
        "sweep": [{"k": k, "loss": 0.693 - 0.25 * min(1.0, k / len(ids))} for k in sorted({0, 1, 2, 4, 8, 16, 32, len(ids), total})],
        "prune": {"seed": 0, "steps": 0, "seconds": 0.0, "meets_target": True, "target_loss": TARGET_LOSS},
    }
    path = run_dir / "circuits" / f"{name}.json"
    circuit.write_circuit(path, record)
    return path


def write_means(run_dir: Path, cache: Path, tokens: int = MEAN_TOKENS) -> None:
    """means.safetensors over a few pretraining tokens, tagged like the pruner's."""
    run = load_run(run_dir)
    shards = data.build_shards(data.load_corpus(run.cfg.data), load_tokenizer(str(run_dir / TOKENIZER)), cache)
    means = compute_means(run.model, shards.train, tokens, batch_size=8)
    save_tensors(run_dir / "means.safetensors", means, {"model_sha256": file_sha256(run_dir / MODEL), "tokens": str(tokens)})


def make_demo_standin(root: Path, cache: Path, per_matrix: int = 4) -> Path:
    """A run of the demo config's shapes (2 training steps on 2 MB of corpus) with one circuit per task of the suite."""
    from trainer.tasks import TASKS as SUITE

    run_dir = train_tiny(root / "demo-standin", cache, 2, "demo",
                         ("data.max_bytes=2000000", "train.log_every=1", "train.eval_every=1", "train.eval_batches=1"))
    write_means(run_dir, cache)
    for task in SUITE.values():
        write_circuit(run_dir, task.name, task.target, task.alternative, per_matrix)
    return run_dir


def make_runs(root: Path, cache: Path) -> dict[str, Path]:
    """Two runs: `tiny-a` with three circuits, means and a task table; `tiny-b` (the same model) with no circuits."""
    a = train_tiny(root / "tiny-a", cache)
    write_means(a, cache)
    for name, (target, alternative) in TASKS.items():
        write_circuit(a, name, target, alternative)
    table = {"format_version": TASK_TABLE_FORMAT, "model_sha256": file_sha256(a / MODEL), "tasks": {
        "lambda_func": {"loss": 0.45, "accuracy": 0.8, "learned": True, "target_loss": TARGET_LOSS},
        "var_swap": {"loss": 0.5, "accuracy": 0.75, "learned": True, "target_loss": TARGET_LOSS},
        "for_while": {"loss": 0.69, "accuracy": 0.5, "learned": False, "target_loss": 0.6}}}
    write_json(a / TASKS_FILE, table)
    b = root / "tiny-b"
    b.mkdir()
    for f in ("config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl"):
        shutil.copy(a / f, b / f)
    return {"a": a, "b": b}
