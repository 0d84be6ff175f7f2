"""The run directory: atomic, deterministic writes and validated reads of its files."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tokenizers import Tokenizer

from trainer.config import ModelConfig, RunConfig, from_dict, to_dict
from trainer.errors import UserError
from trainer.fileio import atomic_file, atomic_write_bytes, parse_json, read_json, read_text, require_file
from trainer.model import GPT
from trainer.schema import CONFIG, MODEL, TOKENIZER, read_metrics_line
from trainer.tokenizer import load_tokenizer, tokenizer_sha256

FORMAT_VERSION = 1
META_PARAMS = 1 << 24  # models from about this many parameters are built on the meta device to be loaded


def snapshot_name(step: int) -> str:
    """File name of the weights kept at a step (train.snapshot_every)."""
    return f"step-{step:06d}.safetensors"


BITS, VALUES, SHAPE = "::nonzero_bits", "::nonzero_values", "::shape"  # a packed tensor's three parts


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                 pack: bool = False) -> None:
    """Atomically write tensors as safetensors (no pickle), contiguous and on CPU; `pack` stores sparse ones compactly."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    if pack:
        flat = pack_sparse(flat)
    meta = {"format_version": str(FORMAT_VERSION), **(metadata or {})}
    with atomic_file(path) as f:
        write_safetensors(f, flat, meta)


# safetensors' dtype names, in the order its writer lays tensors out (its Dtype enum, last first)
DTYPES = {torch.uint64: "U64", torch.int64: "I64", torch.float64: "F64", torch.float32: "F32", torch.uint32: "U32",
          torch.int32: "I32", torch.bfloat16: "BF16", torch.float16: "F16", torch.uint16: "U16", torch.int16: "I16",
          torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def write_safetensors(f: BinaryIO, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Stream tensors (contiguous, on CPU) into f as safetensors writes them, metadata in sorted key order.

    Byte for byte what safetensors.torch.save gives for at most one metadata key (its order of several varies from
    run to run), without first building the whole file in memory: each tensor is written from its own memory.
    """
    rank = {dtype: n for n, dtype in enumerate(DTYPES)}
    order = sorted(tensors, key=lambda k: (rank[tensors[k].dtype], k))
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    offset = 0
    for name in order:
        t = tensors[name]
        size = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    f.write(len(text).to_bytes(8, "little") + text)
    for name in order:
        f.write(tensors[name].reshape(-1).view(torch.uint8).numpy())  # the tensor's bytes, not a copy


def pack_sparse(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Store each float matrix that is at least half zeros as its shape, a bitmask of its nonzeros and their values."""
    out = {}
    for name, t in tensors.items():
        flat = t.flatten()  # [numel], a view of the contiguous tensor
        keep = (flat != 0).numpy() if t.is_floating_point() and t.dim() >= 2 else None  # [numel] bool
        if keep is not None and np.count_nonzero(keep) * 2 <= t.numel():
            out[name + BITS] = torch.from_numpy(np.packbits(keep))  # [ceil(numel / 8)] uint8
            out[name + VALUES] = flat[torch.from_numpy(keep)]  # [nnz]
            out[name + SHAPE] = torch.tensor(t.shape, dtype=torch.int64)  # [dim]
        else:
            out[name] = t
    return out


def _unpack_sparse(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Inverse of pack_sparse, checking that the parts agree; each dense tensor is filled straight from its bitmask."""
    for name in [k.removesuffix(SHAPE) for k in tensors if k.endswith(SHAPE)]:
        shape = tensors.pop(name + SHAPE).tolist()
        bits, values = tensors.pop(name + BITS, None), tensors.pop(name + VALUES, None)
        numel = math.prod(shape)
        if bits is None or values is None or bits.numel() != (numel + 7) // 8:
            raise UserError(f"{path}: packed tensor {name!r} is incomplete; restore the file or retrain")
        keep = np.unpackbits(bits.numpy(), count=numel)  # [numel] uint8 0/1, used as bool without a copy
        nonzero = int(np.count_nonzero(keep))
        if nonzero != values.numel():
            raise UserError(f"{path}: packed tensor {name!r} has {values.numel()} values for {nonzero} nonzeros")
        dense = torch.zeros(numel, dtype=values.dtype)  # [numel]
        tensors[name] = dense.masked_scatter_(torch.from_numpy(keep).view(torch.bool), values).view(shape)
    return tensors


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (unpacking packed tensors), or raise a UserError naming it."""
    require_file(path)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({e}); restore it or retrain") from None
    return _unpack_sparse(tensors, path)


def config_record(cfg: RunConfig, provenance: dict[str, Any]) -> dict[str, Any]:
    """The content of config.json: the config, its provenance, and the format version."""
    return {**to_dict(cfg), "format_version": FORMAT_VERSION, "provenance": provenance}


def read_config(run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """The RunConfig and provenance stored in a run's config.json."""
    raw = read_json(run_dir / CONFIG)
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{run_dir / CONFIG}: format_version must be {FORMAT_VERSION}; is this a circexport run?")
    provenance = raw.get("provenance", {})
    if not isinstance(provenance, dict):
        raise UserError(f"{run_dir / CONFIG}: field provenance: expected an object; restore the file")
    sparse = raw.get("sparsity")
    if isinstance(sparse, dict) and "split_qkv" not in sparse and sparse.get("enabled", True):
        # a sparse run written before the switch: it trained with one fused top-k
        raw = {**raw, "sparsity": {**sparse, "split_qkv": False}}
    return from_dict(raw, str(run_dir / CONFIG)), provenance


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl (empty when the file is absent, e.g. an imported run)."""
    if not path.exists():
        return []
    return [row for _, row in metrics_lines(path)]


def metrics_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Each line of metrics.jsonl with its row, checked (trainer.schema.METRICS_LINE), steps increasing."""
    out: list[tuple[str, dict[str, Any]]] = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            row = read_metrics_line(parse_json(line, f"{path}:{n}"), path, n)
            if out and row["step"] <= out[-1][1]["step"]:
                raise UserError(f"{path}:{n}: field step: {row['step']} does not follow step {out[-1][1]['step']}; "
                                "fix or delete that line")
            out.append((line, row))
    return out


def metrics_upto(path: Path, step: int) -> bytes:
    """The lines of metrics.jsonl up to `step`, each checked (they keep their bytes)."""
    return "".join(line + "\n" for line, row in metrics_lines(path) if row["step"] <= step).encode()


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the rows of metrics.jsonl past `step` (the other rows keep their bytes)."""
    if path.exists():
        atomic_write_bytes(path, metrics_upto(path, step))


@dataclass
class Run:
    """A finished run loaded from disk."""

    path: Path
    cfg: RunConfig
    provenance: dict[str, Any]
    model: GPT


def load_model_weights(model: GPT, path: Path, assign: bool = False) -> None:
    """Load model.safetensors into a model, naming any missing, extra, misshapen or non-finite tensor; `assign` makes
    the loaded tensors the model's own instead of copying them in (for a model built on the meta device)."""
    tensors = load_tensors(path)
    check_tensors(path, tensors, model.state_dict())
    model.load_state_dict(tensors, assign=assign)


def check_tensors(path: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """A UserError naming the file and the tensor unless `tensors` has exactly the names, shapes and dtypes of
    `expected` (what config.json implies) and only finite values."""
    for name in sorted(set(expected) | set(tensors)):
        if name not in tensors:
            raise UserError(f"{path}: tensor {name!r} is missing; the file does not match config.json")
        if name not in expected:
            raise UserError(f"{path}: unexpected tensor {name!r}; the file does not match config.json")
        t, want = tensors[name], expected[name]
        if t.shape != want.shape:
            raise UserError(f"{path}: tensor {name!r} has shape {tuple(t.shape)}, config.json implies {tuple(want.shape)}")
        if t.dtype != want.dtype:
            raise UserError(f"{path}: tensor {name!r} is {t.dtype}, expected {want.dtype}; restore the file or retrain")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"{path}: tensor {name!r} holds a value that is not finite; restore the file or retrain")


def empty_model(cfg: ModelConfig, source: Path | str) -> GPT:
    """A GPT of this shape to load weights into with assign=True: on the meta device when large (no memory, no random
    initialisation), on CPU when small (the meta device's first use costs ~1.5 s, which dwarfs a small model's init);
    a UserError naming source (the config it comes from) when its sizes are past what torch can hold."""
    try:
        if cfg.n_layer * 12 * cfg.d_model ** 2 + 2 * cfg.vocab_size * cfg.d_model < META_PARAMS:  # about its parameters
            return GPT(cfg)
        with torch.device("meta"):
            return GPT(cfg)
    except RuntimeError as e:  # a tensor's size overflows
        raise UserError(f"{source}: the model's sizes (d_model {cfg.d_model}, n_layer {cfg.n_layer}, n_ctx {cfg.n_ctx}, "
                        f"vocab_size {cfg.vocab_size}) are too large to build ({str(e).splitlines()[0][:80]})") from None


def load_run(run_dir: Path | str) -> Run:
    """Load config.json and model.safetensors of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    cfg, provenance = read_config(run_dir)
    require_file(run_dir / MODEL, "the run has not finished training (use circexport train --resume)")
    model = empty_model(cfg.model, run_dir / CONFIG)
    load_model_weights(model, run_dir / MODEL, assign=True)
    model.eval()
    return Run(run_dir, cfg, provenance, model)


def read_run_tokenizer(run_dir: Path, cfg: RunConfig, provenance: dict[str, Any]) -> Tokenizer:
    """A run's tokenizer.json, checked to fit the model's vocabulary and to be the tokenizer the run was trained with
    (the tokenizer_sha256 its config.json records, where it records one)."""
    path = run_dir / TOKENIZER
    tok = load_tokenizer(str(path))
    if tok.get_vocab_size() > cfg.model.vocab_size:
        raise UserError(f"{path}: {tok.get_vocab_size()} tokens, more than the model's vocab_size "
                        f"{cfg.model.vocab_size}; this tokenizer does not belong to the run")
    recorded = provenance.get("tokenizer_sha256")
    if recorded is not None and tokenizer_sha256(tok) != recorded:
        raise UserError(f"{path}: not the tokenizer the run was trained with (its sha256 differs from the "
                        f"tokenizer_sha256 {str(recorded)[:12]}… in {run_dir / CONFIG}); restore the run's tokenizer.json")
    return tok
