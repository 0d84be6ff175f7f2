"""Tests of trainer/tokenizer.py: the shipped tokenizer, training, round trips, loading errors, sha."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from trainer.config import DataConfig
from trainer.data import iter_texts, load_corpus
from trainer.errors import UserError
from trainer.tokenizer import EOT, eot_id, load_tokenizer, tokenizer_sha256, train_tokenizer

ODD_TEXTS = [
    "",
    "def f(x=None):\n\treturn x  # tab\r\n",
    "emoji 🐍🎉👩‍👩‍👧‍👦 and flags 🇯🇵",
    "CJK 中文字符 日本語 한국어",
    "combining e\u0301 a\u0308 \u0915\u094d\u0937 Zalgo z\u0351\u0352\u0357",
    "NUL \x00 and \x01\x7f controls \x1b[0m",
    "line\r\nbreaks\rand\u2028separators\u2029\u0085",
    "   leading and trailing spaces   ",
    "\ufeffBOM, surrogate-free astral \U0001F600 \U00010348, nbsp\u00a0, zero width\u200b",
    "if a == b:\n    c += 1\nelse:\n    d = [x[i] for i in range(3)]\n",
]

# Tokens the task suite relies on; all single tokens in the shipped stdlib-2k tokenizer.
SINGLE_TOKENS = ['")', "')", "=None", "):", ".add", " +=", " as", ":", ",", "r", "w", "]", " in", "(self", '"',
                 " else", " a", " b", "(", " ==", " =", " range", "\n"]


@pytest.fixture(scope="module")
def shipped() -> Tokenizer:
    """The tokenizer shipped in trainer/assets."""
    return load_tokenizer("stdlib-2k")


@pytest.fixture(scope="module")
def small_texts() -> list[str]:
    """About 300 kB of stdlib code for quick training."""
    return list(iter_texts(load_corpus(DataConfig(max_bytes=300_000, val_frac=0.2)), "train"))


def test_shipped_tokenizer_has_2048_tokens_and_eot_last(shipped: Tokenizer) -> None:
    assert shipped.get_vocab_size() == 2048
    assert eot_id(shipped) == 2047
    assert shipped.id_to_token(2047) == EOT
    assert json.loads(shipped.to_str())["normalizer"] is None


def test_train_tokenizer_exact_size_eot_last_and_deterministic(small_texts: list[str]) -> None:
    a = train_tokenizer(small_texts, vocab_size=600)
    b = train_tokenizer(iter(small_texts), vocab_size=600)
    assert a.get_vocab_size() == 600
    assert eot_id(a) == 599
    assert tokenizer_sha256(a) == tokenizer_sha256(b)
    assert a.to_str() == b.to_str()
    assert all(len(a.encode(chr(c)).ids) >= 1 for c in range(256))  # every byte is encodable


def test_train_tokenizer_rejects_a_corpus_too_small_for_the_vocab() -> None:
    with pytest.raises(UserError, match="smaller vocab_size"):
        train_tokenizer(["x = 1\n"], vocab_size=2048)


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_round_trip_is_exact(shipped: Tokenizer, small_texts: list[str], text: str) -> None:
    trained = train_tokenizer(small_texts[:5], vocab_size=300)
    for tok in (shipped, trained):
        ids = tok.encode(text).ids
        assert tok.decode(ids) == text
        assert max(ids, default=0) < tok.get_vocab_size()


def test_round_trip_of_a_whole_stdlib_file(shipped: Tokenizer, small_texts: list[str]) -> None:
    text = "".join(small_texts)
    assert shipped.decode(shipped.encode(text).ids) == text


def test_task_tokens_are_single_tokens(shipped: Tokenizer) -> None:
    multi = {t: shipped.encode(t).tokens for t in SINGLE_TOKENS if len(shipped.encode(t).ids) != 1}
    assert multi == {}


def test_sha_is_stable_across_save_and_load(shipped: Tokenizer, small_texts: list[str], tmp_path: Path) -> None:
    path = tmp_path / "tok.json"
    shipped.save(str(path))
    assert tokenizer_sha256(load_tokenizer(str(path))) == tokenizer_sha256(shipped)
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(json.loads(path.read_text())))  # same tokenizer, other formatting
    assert tokenizer_sha256(load_tokenizer(str(compact))) == tokenizer_sha256(shipped)
    other = train_tokenizer(small_texts, vocab_size=600)
    assert tokenizer_sha256(other) != tokenizer_sha256(shipped)


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(UserError, match=re.escape(str(path))):
        load_tokenizer(str(path))


def test_load_corrupt_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text('{"version": "1.0", "model": ')
    with pytest.raises(UserError) as err:
        load_tokenizer(str(path))
    message = str(err.value)
    assert str(path) in message and "corrupt" in message and "\n" not in message


def test_load_rejects_a_tokenizer_without_eot(small_texts: list[str], tmp_path: Path) -> None:
    data = json.loads(train_tokenizer(small_texts[:3], vocab_size=300).to_str())
    data["added_tokens"] = []
    path = tmp_path / "no_eot.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=re.escape(f"no {EOT} token")):
        load_tokenizer(str(path))


def test_unknown_shipped_name_lists_the_shipped_ones() -> None:
    with pytest.raises(UserError, match="stdlib-2k"):
        load_tokenizer("no-such-tokenizer")
