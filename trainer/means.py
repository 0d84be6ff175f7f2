"""Mean activation of every node location over pretraining tokens (the values of mean ablation)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from tqdm import tqdm

from trainer import data
from trainer.errors import UserError
from trainer.fileio import file_sha256, read_json, require_file
from trainer.masks import model_device
from trainer.mixture import load_text
from trainer.model import GPT
from trainer.run import Run, load_tensors, save_tensors
from trainer.schema import CIRCUITS, MEANS, MODEL, TOKENIZER
from trainer.tokenizer import load_tokenizer

log = logging.getLogger(__name__)
MEANS_SEED = 7  # windows for means are drawn with this seed, apart from the training batches
MIX_POOL = 2  # a mixture's means draw their windows from a pool of this many times the tokens they average
ATTENTION_BYTES = 1 << 30  # a batch's attention scores [B, H, T, T] in one layer stay under this (paper shapes: 2 windows)
SLOW_SECONDS = 600  # a means pass on CPU estimated to take longer than this is announced as a warning


@dataclass(frozen=True)
class MeanStats:
    """The mean of every node over whole windows of pretraining text, with the standard error of each mean.

    A window of n_ctx tokens is one independent draw (positions within a window are not independent), so each
    node's standard error is the sd of its per-window means over the square root of the number of windows."""

    means: dict[str, torch.Tensor]  # location -> [dim] float32, on the model's device
    sem: dict[str, torch.Tensor]  # location -> [dim] float32: standard error of each mean
    tokens: int  # tokens averaged: whole windows, at least the tokens asked for

    def sem_max(self) -> float:
        """The largest standard error over all node means (the error bar a circuit file states)."""
        return max(float(s.max()) for s in self.sem.values())


@torch.no_grad()
def compute_mean_stats(model: GPT, tokens: np.ndarray, n_tokens: int, batch_size: int = 16,
                       quiet: bool = True) -> MeanStats:
    """Means and standard errors of every node over about n_tokens tokens of random windows (at least two) of `tokens`,
    on the model's device; each location is reduced inside its hook, so no activation outlives its layer."""
    device, n_ctx = model_device(model), model.cfg.n_ctx
    n_windows = max(2, -(-n_tokens // n_ctx))
    per_window = model.cfg.n_head * n_ctx * n_ctx * 4  # bytes of one window's attention scores in one layer
    batch_size = max(1, min(batch_size, n_windows, ATTENTION_BYTES // per_window))
    n_batches = -(-n_windows // batch_size)
    locs = model.node_locations()
    sums = {loc: torch.zeros(model.location_dim(loc), dtype=torch.float64, device=device) for loc in locs}  # [dim]
    squares = {loc: torch.zeros_like(s) for loc, s in sums.items()}  # [dim]: sums of squared window means
    t0 = time.perf_counter()
    with model.hooks({loc: _accumulate(sums[loc], squares[loc]) for loc in locs}):
        for i in tqdm(range(n_batches), desc=f"means on {device.type}", disable=quiet, unit="batch"):
            idx = data.sample_batch(tokens, n_ctx, batch_size, MEANS_SEED, i)[:, :-1].to(device)  # [B, T]
            model(idx, torch.zeros(batch_size, dtype=torch.long, device=device))  # the hooks do the work; one logit row
            if i == 0:
                float(sums[locs[-1]][0])  # reading a value waits for the device to finish the batch
                _announce((time.perf_counter() - t0) * n_batches, n_batches * batch_size * n_ctx, device)
    n = n_batches * batch_size  # windows
    means = {loc: s / n for loc, s in sums.items()}  # [dim] float64
    sem = {loc: ((squares[loc] / n - m.square()).clamp(min=0) / (n - 1)).sqrt() for loc, m in means.items()}
    return MeanStats(means={loc: m.float() for loc, m in means.items()}, sem={loc: s.float() for loc, s in sem.items()},
                     tokens=n * n_ctx)


def _accumulate(sums: torch.Tensor, squares: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A hook that adds each window's mean activation [dim] (and its square) to the running sums, in float64."""

    def add(x: torch.Tensor) -> torch.Tensor:
        for window in x:  # [T, dim]: one at a time, so the float64 copy the mean makes is one window's
            mean = window.mean(dim=0, dtype=torch.float64)  # [dim]
            sums.add_(mean)
            squares.add_(mean.square())
        return x

    return add


def _announce(seconds: float, n_tokens: int, device: torch.device) -> None:
    """Log how long the whole means pass will take (from its first batch); warn when it is long on CPU."""
    if device.type == "cpu" and seconds > SLOW_SECONDS:
        log.warning("means over %d tokens on cpu will take about %.0f min; use --device cuda, or fewer --mean-tokens "
                    "(the circuit file states the error bar)", n_tokens, seconds / 60)
    else:
        log.info("means over %d tokens on %s: about %.0f s", n_tokens, device.type, seconds)


def compute_means(model: GPT, tokens: np.ndarray, n_tokens: int, batch_size: int = 16, quiet: bool = True) -> dict[str, torch.Tensor]:
    """Average every node location over about n_tokens tokens of random windows of `tokens`."""
    return compute_mean_stats(model, tokens, n_tokens, batch_size, quiet).means


def means_for_run(run: Run, n_tokens: int, cache_dir: Path | None = None, quiet: bool = True) -> dict[str, torch.Tensor]:
    """The run's means.safetensors when it matches the model and token count, else compute and write it (on the model's device)."""
    path = run.path / MEANS
    model_sha = file_sha256(run.path / MODEL)
    device = model_device(run.model)
    meta = means_metadata(path)
    if (meta.get("model_sha256"), meta.get("tokens")) == (model_sha, str(n_tokens)):
        try:
            return {loc: m.to(device) for loc, m in read_means(path, run.model, model_sha).items()}
        except UserError as e:
            log.warning("%s: computing the means again", e)
    elif meta.get("model_sha256") == model_sha and "tokens" in meta:
        check_no_circuit_relies_on(run.path, meta["tokens"], n_tokens, model_sha)
    log.info("computing mean activations over %d tokens", n_tokens)
    mixed = run.cfg.data.tinypython > 0  # a mixture's means draw from a pool; the stdlib alone, from its shards
    text = load_text(run.cfg.data, load_tokenizer(str(run.path / TOKENIZER)), cache_dir, shards=not mixed)
    tokens = text.pool("train", MIX_POOL * n_tokens, MEANS_SEED) if mixed else text.shards.train
    stats = compute_mean_stats(run.model, tokens, n_tokens, quiet=quiet)
    save_tensors(path, stats.means, {"model_sha256": model_sha, "tokens": str(n_tokens), "tokens_used": str(stats.tokens),
                                     "mean_sem_max": repr(stats.sem_max())})
    return stats.means


def check_no_circuit_relies_on(run_dir: Path, tokens: str, n_tokens: int, model_sha: str) -> None:
    """A UserError when replacing the run's means over `tokens` tokens by means over n_tokens would leave a circuit of
    its model pruned against means the file no longer holds (the build refuses such a circuit): one line naming the
    circuit file and both token counts."""
    folder = run_dir / CIRCUITS
    for circuit in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = read_json(circuit)
            ours = record["model"]["sha256"] == model_sha and str(record["ablation"]["tokens"]) == tokens
        except (UserError, KeyError, TypeError):
            continue  # a circuit file the build would refuse anyway
        if ours:
            raise UserError(f"--mean-tokens {n_tokens} would replace {run_dir / MEANS} (means over {tokens} tokens), "
                            f"against which {circuit} was pruned: prune with --mean-tokens {tokens}, or move the "
                            f"run's circuits out of {folder} first")


def read_means(path: Path, model: GPT, model_sha: str) -> dict[str, torch.Tensor]:
    """A means file, checked: of this model (its sha256), one finite float vector per node location of the model's
    width there, and readable metadata; a UserError naming the file and the location otherwise."""
    fix = "delete it and re-run circexport prune to compute it again"
    require_file(path, "the circuits need the mean activations they were pruned with (re-run circexport prune)")
    means, meta = load_tensors(path), means_metadata(path)
    if meta.get("model_sha256") != model_sha:
        raise UserError(f"{path}: computed for a different model.safetensors; {fix}")
    if not (meta.get("tokens") or "").isdigit():
        raise UserError(f"{path}: metadata tokens {meta.get('tokens')!r} is not a token count; {fix}")
    for loc in model.node_locations():
        m, dim = means.get(loc), model.location_dim(loc)
        if m is None:
            raise UserError(f"{path}: no means for {loc!r}; {fix}")
        if not m.is_floating_point() or tuple(m.shape) != (dim,):
            raise UserError(f"{path}: {loc} is {m.dtype} {tuple(m.shape)}, expected a float vector of {dim}; {fix}")
        if not bool(torch.isfinite(m).all()):
            raise UserError(f"{path}: {loc} holds a value that is not finite; {fix}")
    return means


def ablation_record(run: Run, n_tokens: int) -> dict[str, Any]:
    """A circuit file's "ablation" object: mean ablation over n_tokens asked for, the tokens the means file actually
    averaged, and mean_sem_max, the largest standard error of a node's mean (MeanStats); None for a means file
    written before these were recorded."""
    meta = means_metadata(run.path / MEANS)
    used, sem = meta.get("tokens_used", ""), meta.get("mean_sem_max", "")
    return {"kind": "mean", "tokens": n_tokens, "tokens_used": int(used) if used.isdigit() else None,
            "mean_sem_max": float(sem) if _is_number(sem) else None}


def _is_number(text: str) -> bool:
    """Whether text is a finite decimal number."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def means_metadata(path: Path) -> dict[str, str]:
    """The metadata of a means file: its provenance and error bar (empty when unreadable)."""
    try:
        with safe_open(path, "pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 - an unreadable cache is recomputed
        return {}
