"""Mean activation of every node location over pretraining tokens (the values of mean ablation)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from tqdm import tqdm

from trainer import data
from trainer.fileio import file_sha256
from trainer.model import GPT
from trainer.run import MODEL, TOKENIZER, Run, load_tensors, save_tensors
from trainer.tokenizer import load_tokenizer

log = logging.getLogger(__name__)
MEANS = "means.safetensors"
MEANS_SEED = 7  # windows for means are drawn with this seed, apart from the training batches


@torch.no_grad()
def compute_means(model: GPT, tokens: np.ndarray, n_tokens: int, batch_size: int = 16, quiet: bool = True) -> dict[str, torch.Tensor]:
    """Average every node location over about n_tokens tokens of random windows of `tokens`."""
    n_ctx = model.cfg.n_ctx
    n_batches = max(1, -(-n_tokens // (batch_size * n_ctx)))
    sums: dict[str, torch.Tensor] = {}
    for i in tqdm(range(n_batches), desc="means", disable=quiet, unit="batch"):
        idx = data.sample_batch(tokens, n_ctx, batch_size, MEANS_SEED, i)[:, :-1]  # [B, T]
        _, cache = model.run_with_cache(idx)
        for loc, act in cache.items():
            total = act.double().sum(dim=(0, 1))  # [dim]
            sums[loc] = sums[loc] + total if loc in sums else total
    count = n_batches * batch_size * n_ctx
    return {loc: (s / count).float() for loc, s in sums.items()}


def means_for_run(run: Run, n_tokens: int, cache_dir: Path | None = None, quiet: bool = True) -> dict[str, torch.Tensor]:
    """The run's means.safetensors when it matches the model and token count, else compute and write it."""
    path = run.path / MEANS
    model_sha = file_sha256(run.path / MODEL)
    if path.is_file() and _meta(path) == {"model_sha256": model_sha, "tokens": str(n_tokens)}:
        means = load_tensors(path)
        if set(means) == set(run.model.node_locations()):
            return means
    log.info("computing mean activations over %d tokens", n_tokens)
    corpus = data.load_corpus(run.cfg.data)
    shards = data.build_shards(corpus, load_tokenizer(str(run.path / TOKENIZER)), cache_dir or data.default_cache_dir())
    means = compute_means(run.model, shards.train, n_tokens, quiet=quiet)
    save_tensors(path, means, {"model_sha256": model_sha, "tokens": str(n_tokens)})
    return means


def _meta(path: Path) -> dict[str, str]:
    """The provenance fields of a means file (empty when unreadable)."""
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - an unreadable cache is recomputed
        return {}
    return {k: meta[k] for k in ("model_sha256", "tokens") if k in meta}
