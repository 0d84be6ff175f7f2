"""A run's training text: windows of the standard library's token shards mixed with windows of generated simple
Python (trainer.tinypython), as training and validation batches and as token pools, and its fingerprint.

Each batch takes round(tinypython * rows) windows of generated text and the rest from the shards. The generated
windows of a batch come from documents of their own, keyed by (split, seed, step): a run never sees a generated
document twice, a resumed run sees the same ones, and validation documents are never training documents.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from trainer import data, tinypython
from trainer.config import DataConfig
from trainer.tokenizer import eot_id

FINGERPRINT_BYTES = 1 << 20  # generated training text hashed into the corpus fingerprint
ENCODE_DOCS = 16  # generated documents per tokenizer call


@dataclass(frozen=True, eq=False)
class TrainingText:
    """Where a run's windows come from: the stdlib corpus and its shards (None when every window is generated),
    and the generated share."""

    cfg: DataConfig
    tok: Tokenizer
    corpus: data.Corpus | None
    shards: data.Shards | None

    def batch(self, split: str, n_ctx: int, rows: int, seed: int, step: int) -> torch.Tensor:
        """Windows [rows, n_ctx + 1] (int64) of one split, a function of (seed, step) only: stdlib rows first."""
        n_gen = round(self.cfg.tinypython * rows)
        parts = []
        if n_gen < rows:
            parts.append(data.sample_batch(getattr(self.shards, split), n_ctx, rows - n_gen, seed, step))
        if n_gen:
            key = f"{split}/{self.cfg.tinypython_seed}/{seed}/{step}"
            parts.append(torch.from_numpy(self.generated(key, n_gen * (n_ctx + 1)).astype(np.int64))
                         .view(n_gen, n_ctx + 1))
        return torch.cat(parts)

    def pool(self, split: str, n_tokens: int, seed: int) -> np.ndarray:
        """About n_tokens token ids (uint16) of a split in the mixture's proportions: a sample of stdlib files (each
        preceded by EOT), then generated documents; for means and activation tables."""
        n_gen = round(self.cfg.tinypython * n_tokens)
        parts = []
        if n_gen < n_tokens:
            parts.append(data.sample_tokens(self.corpus, self.tok, split, n_tokens - n_gen, seed))
        if n_gen:
            parts.append(self.generated(f"{split}/{self.cfg.tinypython_seed}/pool/{seed}", n_gen))
        return np.concatenate(parts)

    def chars(self) -> str:
        """Every distinct character of the training text, sorted."""
        seen = data.split_chars(self.corpus, "train") if self.corpus is not None else set()
        if self.cfg.tinypython:
            seen.update(self.sample)
        return "".join(sorted(seen))

    def record(self) -> dict[str, Any]:
        """What the run records of its text: each component's fingerprint and share, and one sha256 over them (the
        stdlib corpus's own sha256 when the run reads nothing else, as before mixtures existed)."""
        parts: dict[str, Any] = {}
        if self.corpus is not None:
            parts["stdlib"] = {"sha256": self.corpus.sha256, "strip_comments": self.cfg.strip_comments,
                               "share": 1 - self.cfg.tinypython}
        if self.cfg.tinypython:
            sample = self.sample.encode("utf-8")
            parts["tinypython"] = {"version": tinypython.GENERATOR_VERSION, "seed": self.cfg.tinypython_seed,
                                   "share": self.cfg.tinypython, "sample_sha256": hashlib.sha256(sample).hexdigest()}
            for key, share in zip(("coined", "repeat"), self.variety):  # recorded only when used: runs without
                if share:  # them keep their sha256
                    parts["tinypython"][key] = share
        if set(parts) == {"stdlib"}:
            sha = self.corpus.sha256
        else:
            sha = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()
        return {"sha256": sha, "components": parts}

    @cached_property
    def sample(self) -> str:
        """The first FINGERPRINT_BYTES of generated text (its fingerprint and its characters), made once."""
        return tinypython.text(self.cfg.tinypython_seed, FINGERPRINT_BYTES, *self.variety)

    def generated(self, key: str, n: int) -> np.ndarray:
        """The first n token ids (uint16) of the generated documents of a stream key, each preceded by EOT."""
        return generated_tokens(self.tok, key, n, *self.variety)

    @property
    def variety(self) -> tuple[float, float]:
        """The generator's coined and repeat shares."""
        return self.cfg.tinypython_coined, self.cfg.tinypython_repeat


def load_text(cfg: DataConfig, tok: Tokenizer, cache_dir: Path | None, shards: bool = True) -> TrainingText:
    """The run's training text; the stdlib's shards are built (or reused from cache_dir) when a batch needs them."""
    if cfg.tinypython >= 1:
        return TrainingText(cfg, tok, None, None)
    corpus = data.load_corpus(cfg)
    built = data.build_shards(corpus, tok, cache_dir or data.default_cache_dir()) if shards else None
    return TrainingText(cfg, tok, corpus, built)


def generated_tokens(tok: Tokenizer, key: str, n: int, coined: float = 0.0, repeat: float = 0.0) -> np.ndarray:
    """The first n token ids (uint16) of the generated documents of a stream key, each preceded by EOT."""
    eot = eot_id(tok)
    out, held = [], 0
    docs = tinypython.documents(stream_seed(key), coined, repeat)
    while held < n:
        for enc in tok.encode_batch([next(docs) for _ in range(ENCODE_DOCS)], add_special_tokens=False):
            out.append(np.array([eot, *enc.ids], dtype=np.uint16))
            held += out[-1].size
    return np.concatenate(out)[:n]


def stream_seed(key: str) -> int:
    """A generator seed from a stream key (sha256: the same on every machine)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")

