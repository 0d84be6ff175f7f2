"""A run's weights kept at one step (train.snapshot_every), taken out as a run of their own: loss-matched baselines."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from trainer.errors import UserError
from trainer.fileio import atomic_write_bytes, check_destination, overlaps, write_json
from trainer.run import (config_record, empty_model, load_model_weights, metrics_upto, read_config, read_metrics,
                         read_run_tokenizer, snapshot_name)
from trainer.schema import CONFIG, METRICS, MODEL, SNAPSHOTS, TOKENIZER


def val_losses(run_dir: Path) -> dict[int, float]:
    """Step -> validation loss, for every evaluated step in metrics.jsonl."""
    return {row["step"]: row["val_loss"] for row in read_metrics(run_dir / METRICS) if row.get("val_loss") is not None}


def final_val_loss(run_dir: Path) -> float:
    """The last validation loss a run logged."""
    losses = val_losses(run_dir)
    if not losses:
        raise UserError(f"{run_dir / METRICS}: no validation loss logged; is {run_dir} a trained run?")
    return losses[max(losses)]


def snapshot_losses(run_dir: Path) -> dict[int, float]:
    """Step -> validation loss for the steps with kept weights, ascending."""
    return {s: v for s, v in sorted(val_losses(run_dir).items()) if (run_dir / SNAPSHOTS / snapshot_name(s)).is_file()}


def matching_step(run_dir: Path, target: float) -> int:
    """The snapshot step whose validation loss is closest to `target` (the earliest on a tie)."""
    losses = snapshot_losses(run_dir)
    if not losses:
        raise UserError(f"{run_dir / SNAPSHOTS}: no snapshot with a validation loss; train with "
                        "train.snapshot_every a multiple of train.eval_every")
    return min(losses, key=lambda s: (abs(losses[s] - target), s))


def take_snapshot(run_dir: Path, step: int, out: Path) -> Path:
    """Write the run `out`: run_dir's config and tokenizer, its weights at `step` and its metrics up to `step`, each
    checked before anything is written."""
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    src = run_dir / SNAPSHOTS / snapshot_name(step)
    if not src.is_file():
        have = ", ".join(str(s) for s in snapshot_losses(run_dir)) or "none"
        raise UserError(f"{src}: no snapshot at step {step} (snapshots with a validation loss: {have})")
    if overlaps(out, run_dir):
        raise UserError(f"--out {out} overlaps the run {run_dir}; choose an --out outside it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not empty; choose another --out")
    check_destination(out, "--out")
    cfg, provenance = read_config(run_dir)
    read_run_tokenizer(run_dir, cfg, provenance)
    load_model_weights(empty_model(cfg.model, run_dir / CONFIG), src, assign=True)  # checked before they are copied
    metrics = metrics_upto(run_dir / METRICS, step)
    tmp = out.parent / f".{out.name}.snapshot-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        write_json(tmp / CONFIG, config_record(cfg, {**provenance, "snapshot_of": cfg.name, "snapshot_step": step}))
        shutil.copyfile(run_dir / TOKENIZER, tmp / TOKENIZER)
        atomic_write_bytes(tmp / METRICS, metrics)
        shutil.copyfile(src, tmp / MODEL)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
