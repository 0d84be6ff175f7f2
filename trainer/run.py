"""The run directory (design.md): atomic, deterministic writes and validated reads of its files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from trainer.config import RunConfig, from_dict, to_dict
from trainer.errors import UserError
from trainer.fileio import atomic_write_bytes, read_json
from trainer.model import GPT

FORMAT_VERSION = 1
CONFIG, MODEL, TOKENIZER, METRICS, STATE = "config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl", "state"
SNAPSHOTS = "snapshots"


def snapshot_name(step: int) -> str:
    """File name of the weights kept at a step (train.snapshot_every)."""
    return f"step-{step:06d}.safetensors"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write tensors as safetensors (no pickle), contiguous and on CPU, with string metadata."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in sorted(tensors.items())}
    atomic_write_bytes(path, save(flat, metadata={"format_version": str(FORMAT_VERSION), **(metadata or {})}))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, or raise a UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({e}); restore it or retrain") from None


def config_record(cfg: RunConfig, provenance: dict[str, Any]) -> dict[str, Any]:
    """The content of config.json: the config, its provenance, and the format version."""
    return {**to_dict(cfg), "format_version": FORMAT_VERSION, "provenance": provenance}


def read_config(run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """The RunConfig and provenance stored in a run's config.json."""
    raw = read_json(run_dir / CONFIG)
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{run_dir / CONFIG}: format_version must be {FORMAT_VERSION}; is this a circexport run?")
    return from_dict(raw, str(run_dir / CONFIG)), raw.get("provenance", {})


@dataclass
class Run:
    """A finished run loaded from disk."""

    path: Path
    cfg: RunConfig
    provenance: dict[str, Any]
    model: GPT


def load_model_weights(model: GPT, path: Path) -> None:
    """Load model.safetensors into a model, naming any missing, extra or misshapen tensor."""
    tensors = load_tensors(path)
    expected = model.state_dict()
    for name in sorted(set(expected) | set(tensors)):
        if name not in tensors:
            raise UserError(f"{path}: tensor {name!r} is missing; the file does not match config.json")
        if name not in expected:
            raise UserError(f"{path}: unexpected tensor {name!r}; the file does not match config.json")
        if tensors[name].shape != expected[name].shape:
            raise UserError(
                f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, config.json implies {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors)


def load_run(run_dir: Path | str) -> Run:
    """Load config.json and model.safetensors of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    cfg, provenance = read_config(run_dir)
    if not (run_dir / MODEL).is_file():
        raise UserError(f"{run_dir / MODEL}: file not found; the run has not finished training (use circexport train --resume)")
    model = GPT(cfg.model)
    load_model_weights(model, run_dir / MODEL)
    model.eval()
    return Run(run_dir, cfg, provenance, model)
