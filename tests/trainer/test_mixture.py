"""Tests of the training text: the stdlib without comments, generated simple Python mixed into batches, fingerprints."""

from __future__ import annotations

import ast
import io
import json
import os
import signal
import tokenize

import numpy as np
import pytest
import torch

from trainer import data, tinypython
from trainer.config import DataConfig, load_config
from trainer.errors import UserError
from trainer.mixture import TrainingText, generated_tokens, load_text
from trainer.pysource import strip_comments
from trainer.run import load_run, load_tensors
from trainer.tokenizer import eot_id, load_tokenizer
from trainer.train import Interrupted, TrainOptions, train

SMALL = dict(max_bytes=400_000, val_frac=0.2)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("stdlib-2k")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_strip_comments_drops_comments_and_docstrings_and_keeps_code():
    src = ('#!/usr/bin/env python\n"""Module doc."""\n\nimport os  # why\n\nclass A:\n    """Class doc\n    on two lines."""\n\n'
           '    x = 1  # the x\n\n    def f(self):\n        """Only a docstring."""\n\n    def g(self):  # note\n'
           '        s = "# not a comment"\n        return s\n')
    assert strip_comments(src) == ('import os\n\nclass A:\n    x = 1\n\n    def f(self):\n        pass\n\n'
                                   '    def g(self):\n        s = "# not a comment"\n        return s\n')
    assert strip_comments("def broken(:\n    # kept\n") == "def broken(:\n    # kept\n"  # does not parse: as it is
    assert strip_comments('x = "ü"  # ünïcode\ndef f():\n    "ü doc"; y = 1\n') == 'x = "ü"\ndef f():\n    "ü doc"; y = 1\n'


def test_stripped_stdlib_files_still_parse_and_change_the_fingerprint(tok):
    plain, stripped = load_corpus_pair()
    assert plain.files == stripped.files and plain.sha256 != stripped.sha256
    assert data.shard_key(plain, tok) != data.shard_key(stripped, tok)
    for rel in stripped.files[:40]:
        text = stripped.text(rel)
        ast.parse(text)
        assert not [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]
    assert sum(len(stripped.text(f)) for f in stripped.files) < 0.9 * sum(len(plain.text(f)) for f in plain.files)


def load_corpus_pair():
    return (data.load_corpus(DataConfig(**SMALL)), data.load_corpus(DataConfig(**SMALL, strip_comments=True)))


def test_batches_mix_generated_windows_and_depend_on_seed_and_step_only(tok, cache):
    text = load_text(DataConfig(**SMALL, tinypython=0.25), tok, cache)
    a = text.batch("train", 32, 8, seed=0, step=3)
    assert a.shape == (8, 33) and a.dtype == torch.int64 and int(a.max()) < tok.get_vocab_size()
    assert torch.equal(a[:6], data.sample_batch(text.shards.train, 32, 6, 0, 3))  # 6 stdlib rows first
    gen = a[6:].flatten().numpy()
    assert np.array_equal(gen, generated_tokens(tok, "train/0/0/3", 66))  # then 2 rows of generated text
    assert gen[0] == eot_id(tok)  # each generated document starts after an EOT
    text.batch("train", 32, 8, seed=0, step=4)
    assert torch.equal(text.batch("train", 32, 8, seed=0, step=3), a)  # no hidden state: resumable
    assert not torch.equal(text.batch("val", 32, 8, seed=0, step=3)[6:], a[6:])  # validation documents differ
    assert not torch.equal(text.batch("train", 32, 8, seed=0, step=5)[6:], a[6:])  # every step new documents


def test_all_generated_text_needs_no_stdlib(tok):
    text = load_text(DataConfig(tinypython=1.0), tok, None)
    assert text.corpus is None and text.shards is None
    batch = text.batch("train", 16, 4, seed=1, step=0)
    decoded = tok.decode(batch.flatten().tolist())
    assert "def " in decoded or "class " in decoded or " = " in decoded
    assert text.pool("train", 500, seed=0).size == 500
    assert set(text.chars()) <= set(map(chr, range(128)))  # the generator writes ASCII


def test_fingerprint_records_each_component(tok):
    plain = load_text(DataConfig(**SMALL), tok, None, shards=False).record()
    assert plain == {"sha256": data.load_corpus(DataConfig(**SMALL)).sha256, "components": plain["components"]}
    assert set(plain["components"]) == {"stdlib"}  # the same corpus_sha256 as before mixtures existed
    mixed = load_text(DataConfig(**SMALL, tinypython=0.5, strip_comments=True), tok, None, shards=False).record()
    parts = mixed["components"]
    assert parts["stdlib"]["strip_comments"] is True and parts["stdlib"]["share"] == 0.5
    assert parts["tinypython"]["version"] == tinypython.GENERATOR_VERSION and parts["tinypython"]["share"] == 0.5
    other_seed = load_text(DataConfig(**SMALL, tinypython=0.5, strip_comments=True, tinypython_seed=1), tok, None,
                           shards=False).record()
    coined = load_text(DataConfig(**SMALL, tinypython=0.5, strip_comments=True, tinypython_coined=0.3), tok, None,
                       shards=False)
    assert "coined" not in parts["tinypython"] and coined.record()["components"]["tinypython"]["coined"] == 0.3
    assert len({plain["sha256"], mixed["sha256"], other_seed["sha256"], coined.record()["sha256"]}) == 4
    windows = [load_text(DataConfig(tinypython=1.0, tinypython_coined=c), tok, None).batch("train", 64, 4, 1, 0)
               for c in (0.0, 0.5)]
    assert not np.array_equal(*windows)  # the batches read the made-up names' text


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan"])
def test_share_out_of_range_is_refused(value):
    with pytest.raises(UserError, match="data.tinypython must be in"):
        load_config("tiny", [f"data.tinypython={value}"])


def test_a_mixed_run_records_its_text_and_resumes_exactly(tmp_path, cache):
    cfg = load_config("tiny", ["data.tinypython=0.5", "data.strip_comments=true", "train.steps=10"])
    opts = dict(quiet=True, cache_dir=cache)
    train(cfg, TrainOptions(out=tmp_path / "whole", **opts))
    prov = json.loads((tmp_path / "whole" / "config.json").read_text())["provenance"]
    assert prov["corpus"]["tinypython"]["share"] == 0.5 and prov["corpus"]["stdlib"]["strip_comments"] is True
    assert prov["corpus_sha256"] == TrainingText(cfg.data, load_tokenizer("stdlib-2k"), data.load_corpus(cfg.data),
                                                 None).record()["sha256"]

    def ctrl_c(step):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        train(cfg, TrainOptions(out=tmp_path / "resumed", **opts), on_step=ctrl_c)
    train(cfg, TrainOptions(out=tmp_path / "resumed", resume=True, **opts))
    a, b = (load_tensors(tmp_path / r / "model.safetensors") for r in ("whole", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_run(tmp_path / "whole").cfg.data.tinypython == 0.5
