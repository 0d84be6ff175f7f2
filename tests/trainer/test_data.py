"""Tests of trainer/data.py: corpus selection and split, token shards and their cache, batches."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from trainer import data
from trainer.config import DataConfig
from trainer.data import (
    build_shards, default_cache_dir, iter_texts, load_corpus, sample_batch, shard_key, split_chars,
)
from trainer.errors import UserError
from trainer.tokenizer import eot_id, load_tokenizer, train_tokenizer

SMALL = DataConfig(max_bytes=150_000, val_frac=0.2)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    """The shipped tokenizer."""
    return load_tokenizer("stdlib-2k")


@pytest.fixture
def fake_stdlib(tmp_path: Path) -> Path:
    """A small tree that exercises every rule of the corpus selection."""
    files = {
        "a.py": "A = 1\n",
        "pkg/__init__.py": "from . import b\n",
        "pkg/b.py": "def b():\n    return 'b'\n",
        "pkg/tests/c.py": "C = 3\n",
        "test/test_x.py": "X = 1\n",
        "idlelib/idle_test/t.py": "T = 1\n",
        "test_top.py": "TOP = 1\n",
        "util_test.py": "U = 1\n",
        "site-packages/d.py": "D = 1\n",
        "__pycache__/e.py": "E = 1\n",
        "config-3.11-x86_64-linux-gnu/python-config.py": "CFG = 1\n",
        "_sysconfigdata__linux.py": "BUILD = '/tmp'\n",
        "notes.txt": "not python\n",
        "z.py": "Z = 'ü'\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    (tmp_path / "latin1.py").write_bytes("S = 'caf\xe9'\n".encode("latin-1"))
    return tmp_path


def test_corpus_rule_on_a_fake_stdlib(fake_stdlib: Path) -> None:
    plain = load_corpus(DataConfig(), root=fake_stdlib)
    assert plain.files == ("a.py", "pkg/__init__.py", "pkg/b.py", "z.py")
    full = load_corpus(DataConfig(include_tests=True), root=fake_stdlib)
    assert full.files == ("a.py", "idlelib/idle_test/t.py", "pkg/__init__.py", "pkg/b.py",
                          "pkg/tests/c.py", "test/test_x.py", "test_top.py", "util_test.py", "z.py")
    assert plain.nbytes == sum((fake_stdlib / f).stat().st_size for f in plain.files)


def test_split_chars_are_those_of_the_text_the_model_reads(tmp_path: Path) -> None:
    """Stripped, a character that only a comment or docstring holds is not the text's; one in code is, in any file."""
    files = {"a.py": 'X = 1  # ü\n', "b.py": '"""é"""\nY = "é"  # ß\n', "c.py": 'def f():\n    """ø"""\n'}
    for rel, text in files.items():
        (tmp_path / rel).write_text(text, encoding="utf-8")
    for strip in (False, True):
        corpus = load_corpus(DataConfig(strip_comments=strip, val_frac=0.01), root=tmp_path)
        both = set()
        for split in ("train", "val"):
            want = set().union(*map(set, iter_texts(corpus, split)))
            assert split_chars(corpus, split) == want
            both |= want
        assert ("ü" in both, "ß" in both, "é" in both, "ø" in both) == (not strip, not strip, True, not strip)


def test_corpus_sha_follows_content(fake_stdlib: Path) -> None:
    before = load_corpus(DataConfig(), root=fake_stdlib).sha256
    assert load_corpus(DataConfig(), root=fake_stdlib).sha256 == before
    (fake_stdlib / "pkg" / "b.py").write_text("def b():\n    return 'B'\n")
    assert load_corpus(DataConfig(), root=fake_stdlib).sha256 != before


def test_empty_folder_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no python here")
    with pytest.raises(UserError, match=re.escape(f"no .py files found under {tmp_path}")):
        load_corpus(DataConfig(), root=tmp_path)


def test_stdlib_order_and_sha_are_deterministic() -> None:
    a, b = load_corpus(SMALL), load_corpus(SMALL)
    assert a == b
    assert list(a.files) == sorted(a.files)
    assert len(a.files) >= 3 and len(a.sha256) == 64


def test_max_bytes_keeps_a_prefix_of_whole_files() -> None:
    full = load_corpus(DataConfig())
    small = load_corpus(SMALL)
    assert small.nbytes <= SMALL.max_bytes
    assert full.files[: len(small.files)] == small.files
    next_file = full.root / full.files[len(small.files)]
    assert small.nbytes + next_file.stat().st_size > SMALL.max_bytes  # it stopped at the cap
    assert sum((small.root / f).stat().st_size for f in small.files) == small.nbytes
    assert small.sha256 != full.sha256


def test_default_corpus_has_no_tests_and_the_switch_adds_them() -> None:
    test_dir = re.compile(r"(^|/)(test|tests|idle_test)/")
    plain = load_corpus(DataConfig())
    with_tests = load_corpus(DataConfig(include_tests=True))
    assert not any(test_dir.search(f) for f in plain.files)
    assert set(plain.files) < set(with_tests.files)
    assert any(f.startswith("test/") for f in with_tests.files)
    assert not any("site-packages/" in f for f in with_tests.files)


def test_split_is_by_file_disjoint_and_hash_based() -> None:
    corpus = load_corpus(DataConfig(val_frac=0.3))
    train, val = corpus.split_files("train"), corpus.split_files("val")
    assert train and val and not set(train) & set(val)
    assert sorted(train + val) == sorted(corpus.files)
    assert set(val) == {f for f in corpus.files if data._path_fraction(f) < 0.3}
    assert 0.2 < len(val) / len(corpus.files) < 0.4
    texts = list(iter_texts(corpus, "val"))
    assert texts == [(corpus.root / f).read_text(encoding="utf-8") for f in val]


def test_split_is_never_empty(fake_stdlib: Path) -> None:
    for frac in (1e-9, 1 - 1e-9):
        corpus = load_corpus(DataConfig(val_frac=frac), root=fake_stdlib)
        assert corpus.split_files("train") and corpus.split_files("val")
    with pytest.raises(UserError, match="too few to split"):
        load_corpus(DataConfig(max_bytes=8), root=fake_stdlib)  # only a.py fits


def test_a_small_capped_corpus_gets_a_usable_val_split() -> None:
    corpus = load_corpus(DataConfig(max_bytes=400_000, val_frac=0.05))  # the tiny config's data
    val_bytes = sum((corpus.root / f).stat().st_size for f in corpus.val)
    assert 0.05 * corpus.nbytes <= val_bytes < 0.5 * corpus.nbytes
    assert corpus.split_files("train")


def test_shards_hold_every_file_after_an_eot(tok: Tokenizer, tmp_path: Path) -> None:
    corpus = load_corpus(SMALL)
    shards = build_shards(corpus, tok, tmp_path)
    folder = tmp_path / shards.key
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "train.bin", "val.bin"]
    assert shards.train.dtype == np.uint16 and shards.val.dtype == np.uint16
    eot = eot_id(tok)
    for split, tokens in (("train", shards.train), ("val", shards.val)):
        docs = np.split(tokens, np.flatnonzero(tokens == eot))[1:]  # each starts with EOT
        texts = list(iter_texts(corpus, split))
        assert len(docs) == len(texts) and tokens[0] == eot
        assert [tok.decode(d[1:].tolist()) for d in docs] == texts


def test_shards_are_reused_and_keyed_by_tokenizer_and_split(tok: Tokenizer, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = load_corpus(SMALL)
    first = build_shards(corpus, tok, tmp_path)
    train_bytes = (tmp_path / first.key / "train.bin").read_bytes()

    def no_encoding(*args: object) -> None:
        raise AssertionError("shards were re-encoded instead of reused")

    with monkeypatch.context() as m:
        m.setattr(data, "_encode_split", no_encoding)
        again = build_shards(corpus, tok, tmp_path)
    assert again.key == first.key
    assert np.array_equal(again.train, first.train) and np.array_equal(again.val, first.val)
    assert (tmp_path / first.key / "train.bin").read_bytes() == train_bytes

    other_tok = train_tokenizer(iter_texts(corpus, "train"), vocab_size=400)
    assert shard_key(corpus, other_tok) != first.key
    other = build_shards(corpus, other_tok, tmp_path)
    assert other.key != first.key and not np.array_equal(other.train, first.train)
    resplit = load_corpus(DataConfig(max_bytes=SMALL.max_bytes, val_frac=0.5))
    assert resplit.sha256 == corpus.sha256 and shard_key(resplit, tok) != first.key


def test_interrupted_write_leaves_nothing_to_reuse(tok: Tokenizer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = load_corpus(SMALL)

    def crash(fd: int) -> None:
        raise OSError("disk full (simulated)")

    with monkeypatch.context() as m:
        m.setattr(data.os, "fsync", crash)  # the payload is written, then the write fails
        with pytest.raises(OSError, match="simulated"):
            build_shards(corpus, tok, tmp_path)
    folder = tmp_path / shard_key(corpus, tok)
    assert list(folder.iterdir()) == []
    shards = build_shards(corpus, tok, tmp_path)
    assert shards.train.size > 0


def test_truncated_shard_is_rebuilt(tok: Tokenizer, tmp_path: Path) -> None:
    corpus = load_corpus(SMALL)
    good = np.array(build_shards(corpus, tok, tmp_path).train)
    path = tmp_path / shard_key(corpus, tok) / "train.bin"
    path.write_bytes(path.read_bytes()[:100])
    assert np.array_equal(build_shards(corpus, tok, tmp_path).train, good)
    assert path.stat().st_size == 2 * good.size


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIRCEXPORT_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("CIRCEXPORT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "circexport"


def test_sample_batch_is_a_function_of_seed_and_step() -> None:
    tokens = np.arange(1000, dtype=np.uint16)
    np.random.seed(1)
    torch.manual_seed(1)
    a = sample_batch(tokens, n_ctx=16, batch_size=8, seed=3, step=7)
    np.random.seed(2)
    torch.manual_seed(2)
    np.random.random(10)
    b = sample_batch(tokens, n_ctx=16, batch_size=8, seed=3, step=7)
    assert a.shape == (8, 17) and a.dtype == torch.int64
    assert torch.equal(a, b)
    assert not torch.equal(a, sample_batch(tokens, 16, 8, seed=3, step=8))
    assert not torch.equal(a, sample_batch(tokens, 16, 8, seed=4, step=7))


def test_sample_batch_rows_are_windows_of_the_tokens(tok: Tokenizer, tmp_path: Path) -> None:
    tokens = build_shards(load_corpus(SMALL), tok, tmp_path).val  # a memmap
    batch = sample_batch(tokens, n_ctx=32, batch_size=16, seed=0, step=0)
    starts = sample_batch(np.arange(len(tokens), dtype=np.int64), 32, 16, seed=0, step=0)[:, 0]
    for row, start in zip(batch, starts.tolist()):
        assert np.array_equal(row.numpy(), tokens[start:start + 33].astype(np.int64))
    assert sample_batch(np.arange(33), 32, 4, 0, 0).tolist() == [list(range(33))] * 4  # one window


def test_sample_batch_rejects_too_few_tokens() -> None:
    with pytest.raises(UserError, match="fewer than n_ctx"):
        sample_batch(np.arange(10, dtype=np.uint16), n_ctx=10, batch_size=2, seed=0, step=0)


def test_cache_files_are_plain_and_nothing_temporary_remains(tok: Tokenizer, tmp_path: Path) -> None:
    shards = build_shards(load_corpus(SMALL), tok, tmp_path)
    names = os.listdir(tmp_path / shards.key)
    assert not [n for n in names if n.endswith(".tmp")]


def test_sample_tokens_are_whole_train_files_seeded_and_enough(tok: Tokenizer) -> None:
    corpus = load_corpus(DataConfig(max_bytes=2_000_000))
    a = data.sample_tokens(corpus, tok, "train", 20_000, seed=3)
    assert np.array_equal(a, data.sample_tokens(corpus, tok, "train", 20_000, seed=3))  # deterministic
    assert not np.array_equal(a[:500], data.sample_tokens(corpus, tok, "train", 20_000, seed=4)[:500])
    assert a.size >= 20_000 and a.dtype == np.uint16
    docs = np.split(a, np.flatnonzero(a == eot_id(tok)))[1:]  # each piece: EOT + one file
    texts = {(corpus.root / f).read_text(encoding="utf-8") for f in corpus.split_files("train")}
    assert all(tok.decode(d[1:].tolist(), skip_special_tokens=False) in texts for d in docs)
    assert a.size < 20_000 + max(len(d) for d in docs) * data.SAMPLE_BATCH  # stops once it has enough
