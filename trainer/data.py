"""The standard-library corpus: file selection, train/val split, cached token shards and batches.
With `strip_comments` the files' text loses its comments and docstrings (trainer.pysource).

Corpus rule. The corpus is every `.py` file under the running Python's stdlib folder
(`sysconfig.get_paths()["stdlib"]`), ordered by POSIX relative path, except:
- anything under a directory named site-packages, dist-packages or __pycache__, and machine
  build metadata (`config-*` directories, `_sysconfigdata_*.py`) whose text varies per install;
- test suites, unless `include_tests`: a file is a test file if any directory on its relative
  path is named `test`, `tests` or `idle_test` (this covers test/, unittest/test/, ctypes/test/,
  idlelib/idle_test/, lib2to3/tests/, ...) or its own name is `test_*.py` or `*_test.py`;
- files that are not valid UTF-8 (skipped, so the rule is deterministic).
With `max_bytes > 0`, whole files are kept in corpus order while the total stays <= max_bytes.

Split. A file is in val if the first 8 bytes of sha256(relative path), read as a fraction of 2**64,
are below `val_frac`. Small corpora (e.g. a `max_bytes` cap) can leave a split empty: then val takes
the files of smallest hash until it holds val_frac of the bytes (train, symmetrically, the files of
largest hash up to 1 - val_frac of the bytes), at least one file each; one file is an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from trainer.config import DataConfig
from trainer.errors import UserError
from trainer.fileio import atomic_write_bytes
from trainer.pysource import STRIP_VERSION, strip_comments
from trainer.tokenizer import eot_id, tokenizer_sha256

log = logging.getLogger(__name__)

SHARD_FORMAT = 1  # bump when the shard layout or the way texts become tokens changes
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
TEST_DIRS = frozenset({"test", "tests", "idle_test"})
SPLITS = ("train", "val")
ENCODE_BATCH = 64  # files per tokenizer.encode_batch call
SAMPLE_BATCH = 8  # files per call when sampling a few files (sample_tokens)


@dataclass(frozen=True)
class Corpus:
    """The selected files of one corpus, their split and fingerprint."""

    root: Path  # the stdlib folder
    files: tuple[str, ...]  # POSIX paths relative to root, in corpus order
    val: frozenset[str]  # the files held out for validation
    sha256: str  # over (relpath, bytes) of every file in order (and the stripper's version when stripped)
    nbytes: int  # total size of the files
    strip: bool = False  # the files' text without comments and docstrings (trainer.pysource)

    def text(self, rel: str) -> str:
        """One file's text as the corpus holds it."""
        return self.from_raw(self.raw(rel))

    def raw(self, rel: str) -> str:
        """One file's text as it lies on disk."""
        return (self.root / rel).read_bytes().decode("utf-8")

    def from_raw(self, raw: str) -> str:
        """A file's text on disk as the corpus holds it (without comments and docstrings when stripped)."""
        return strip_comments(raw) if self.strip else raw

    def split_files(self, split: str) -> list[str]:
        """Files of one split ("train" or "val"), in corpus order."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return [f for f in self.files if (f in self.val) == (split == "val")]


@dataclass(frozen=True, eq=False)
class Shards:
    """Token ids of both splits (uint16, documents preceded by EOT) and their cache key."""

    train: np.ndarray  # [n_train_tokens] uint16
    val: np.ndarray  # [n_val_tokens] uint16
    key: str


def stdlib_root() -> Path:
    """The running Python's standard-library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def default_cache_dir() -> Path:
    """Where shards are cached: $CIRCEXPORT_CACHE, else ~/.cache/circexport."""
    env = os.environ.get("CIRCEXPORT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "circexport"


def load_corpus(cfg: DataConfig, root: Path | None = None) -> Corpus:
    """Select, fingerprint and split the corpus files (root defaults to the stdlib folder)."""
    root = stdlib_root() if root is None else Path(root)
    candidates = _candidate_files(root, cfg.include_tests)
    if not candidates:
        raise UserError(f"no .py files found under {root}: is this Python's standard library installed?")
    sizes, digest = _select(root, candidates, cfg.max_bytes)
    if not sizes:
        raise UserError(f"data.max_bytes = {cfg.max_bytes} is smaller than the first corpus file: raise it")
    val = _val_files(sizes, cfg.val_frac)
    nbytes = sum(sizes.values())
    if cfg.strip_comments:
        digest = hashlib.sha256(f"{digest}\nstrip_comments={STRIP_VERSION}".encode()).hexdigest()
    log.debug("corpus %s: %d files (%d val), %d bytes", root, len(sizes), len(val), nbytes)
    return Corpus(root=root, files=tuple(sizes), val=val, sha256=digest, nbytes=nbytes, strip=cfg.strip_comments)


def _candidate_files(root: Path, include_tests: bool) -> list[str]:
    """Relative POSIX paths of the .py files that the corpus rule admits, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinked directories
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not _is_build_dir(rel_dir, d)]
        if not include_tests:
            dirnames[:] = [d for d in dirnames if d not in TEST_DIRS]
        for name in filenames:
            if name.endswith(".py") and not name.startswith("_sysconfigdata_"):
                if include_tests or not _is_test_file(name):
                    found.append((rel_dir / name).as_posix())
    return sorted(found)


def _is_build_dir(rel_dir: Path, name: str) -> bool:
    """Whether a directory holds per-install build files (the top-level config-X.Y-<platform>)."""
    return rel_dir == Path(".") and name.startswith("config-")


def _is_test_file(name: str) -> bool:
    """Whether a file name outside test directories still names a test module."""
    return name.startswith("test_") or name.endswith("_test.py")


def _select(root: Path, candidates: list[str], max_bytes: int) -> tuple[dict[str, int], str]:
    """Keep the UTF-8 files in order up to max_bytes; return their sizes (in order) and sha256."""
    h = hashlib.sha256()
    sizes: dict[str, int] = {}
    total = 0
    for rel in candidates:
        data = (root / rel).read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            log.debug("skipping %s: not UTF-8", rel)
            continue
        if max_bytes and total + len(data) > max_bytes:
            break
        name = rel.encode("utf-8")
        h.update(len(name).to_bytes(8, "little") + name + len(data).to_bytes(8, "little") + data)
        sizes[rel] = len(data)
        total += len(data)
    return sizes, h.hexdigest()


def _path_fraction(rel: str) -> float:
    """A stable number in [0, 1) from the sha256 of a relative path."""
    return int.from_bytes(hashlib.sha256(rel.encode("utf-8")).digest()[:8], "big") / 2**64


def _val_files(sizes: dict[str, int], val_frac: float) -> frozenset[str]:
    """The files whose path hash falls below val_frac, corrected so both splits are non-empty."""
    if len(sizes) < 2:
        raise UserError(
            f"the corpus has {len(sizes)} file(s), too few to split into train and val: raise data.max_bytes"
        )
    ranked = sorted(sizes, key=_path_fraction)
    total = sum(sizes.values())
    val = {f for f in ranked if _path_fraction(f) < val_frac}
    if not val:
        val = set(_take_bytes(ranked, sizes, val_frac * total))
    if len(val) == len(ranked):
        val -= set(_take_bytes(ranked[::-1], sizes, (1 - val_frac) * total))
    return frozenset(val)


def _take_bytes(order: list[str], sizes: dict[str, int], target: float) -> list[str]:
    """The first files of order holding at least target bytes: at least one file, never all."""
    taken, held = [], 0
    for rel in order[:-1]:
        taken.append(rel)
        held += sizes[rel]
        if held >= target:
            break
    return taken


def iter_texts(corpus: Corpus, split: str) -> Iterator[str]:
    """The text of every file of a split, in corpus order."""
    for rel in corpus.split_files(split):
        yield corpus.text(rel)


def split_chars(corpus: Corpus, split: str) -> set[str]:
    """Every distinct character of a split's text. Without comments, a file is stripped only when its raw text holds
    a character not yet seen (the stripped text's characters are a subset of the raw's): the same set, with about 1
    file in 15 of the stdlib stripped instead of all."""
    seen: set[str] = set()
    for rel in corpus.split_files(split):
        raw = corpus.raw(rel)  # each file read once
        new = set(raw) - seen
        if new:
            seen |= set(corpus.from_raw(raw)) if corpus.strip else new
    return seen


def shard_key(corpus: Corpus, tok: Tokenizer) -> str:
    """Cache key of the shards: changes with the corpus, its split, the tokenizer or the format."""
    parts = [f"format={SHARD_FORMAT}", corpus.sha256, tokenizer_sha256(tok), *sorted(corpus.val)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:20]


def build_shards(corpus: Corpus, tok: Tokenizer, cache_dir: Path) -> Shards:
    """Tokenize both splits into <cache_dir>/<key>/{train,val}.bin, or reuse them when present."""
    key = shard_key(corpus, tok)
    folder = Path(cache_dir) / key
    cached = _load_shards(folder)
    if cached is not None:
        log.info("reusing token shards %s", folder)
        return Shards(train=cached["train"], val=cached["val"], key=key)
    if tok.get_vocab_size() > 2**16:
        raise UserError(f"the tokenizer has {tok.get_vocab_size()} tokens: shards store uint16, at most 65536")
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": SHARD_FORMAT, "corpus_sha256": corpus.sha256,
            "tokenizer_sha256": tokenizer_sha256(tok), "dtype": "uint16"}
    for split in SPLITS:
        tokens = _encode_split(corpus, tok, split)
        atomic_write_bytes(folder / f"{split}.bin", tokens.tobytes())
        meta[f"{split}_tokens"] = int(tokens.size)
        meta[f"{split}_files"] = len(corpus.split_files(split))
    atomic_write_bytes(folder / "meta.json", (json.dumps(meta, sort_keys=True, indent=1) + "\n").encode())
    log.info("built token shards %s: %d train, %d val tokens", folder, meta["train_tokens"], meta["val_tokens"])
    cached = _load_shards(folder)
    assert cached is not None, f"shards just written to {folder} do not load"
    return Shards(train=cached["train"], val=cached["val"], key=key)


def _encode_split(corpus: Corpus, tok: Tokenizer, split: str) -> np.ndarray:
    """All files of a split as one uint16 array, each file preceded by the EOT id."""
    pieces = list(_encode_files(corpus, tok, corpus.split_files(split), ENCODE_BATCH))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)


def _encode_files(corpus: Corpus, tok: Tokenizer, files: list[str], batch: int) -> Iterator[np.ndarray]:
    """Each file as uint16 token ids preceded by the EOT id, in order, `batch` files per tokenizer call."""
    eot = eot_id(tok)
    for start in range(0, len(files), batch):
        texts = [corpus.text(f) for f in files[start:start + batch]]
        for enc in tok.encode_batch(texts, add_special_tokens=False):
            yield np.array([eot, *enc.ids], dtype=np.uint16)


def sample_tokens(corpus: Corpus, tok: Tokenizer, split: str, min_tokens: int, seed: int) -> np.ndarray:
    """Token ids (uint16, each file preceded by EOT) of a seeded random sample of a split's files, at least
    min_tokens of them when the split holds that many: a small sample without tokenizing the whole corpus."""
    files = corpus.split_files(split)
    order = np.random.Generator(np.random.PCG64(seed)).permutation(len(files))  # [n_files]
    pieces, total = [], 0
    for piece in _encode_files(corpus, tok, [files[i] for i in order], SAMPLE_BATCH):
        pieces.append(piece)
        total += piece.size
        if total >= min_tokens:
            break
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)


def _load_shards(folder: Path) -> dict[str, np.ndarray] | None:
    """Memory-map complete shards (meta.json is written last and lists their sizes), else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format_version") != SHARD_FORMAT:
            return None
        out = {}
        for split in SPLITS:
            path = folder / f"{split}.bin"
            if path.stat().st_size != 2 * meta[f"{split}_tokens"]:
                return None
            out[split] = np.memmap(path, dtype=np.uint16, mode="r")
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sample_batch(tokens: np.ndarray, n_ctx: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Random windows [batch_size, n_ctx + 1] (int64), a function of (seed, step) only."""
    n_windows = len(tokens) - n_ctx  # window starts 0 .. len - (n_ctx + 1)
    if n_windows < 1:
        raise UserError(
            f"only {len(tokens)} tokens, fewer than n_ctx + 1 = {n_ctx + 1}: "
            "raise data.max_bytes or lower model.n_ctx"
        )
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, step])))
    starts = rng.integers(0, n_windows, size=batch_size)  # [B]
    index = starts[:, None] + np.arange(n_ctx + 1)  # [B, T+1]
    return torch.from_numpy(np.asarray(tokens[index], dtype=np.int64))  # [B, T+1]
