"""The page's tokenizer (web_template/static/js/tokenizer.js) against the run's Python tokenizer, in node: the same
ids on 12,000 snippets of the standard-library corpus, a third of them salted with odd unicode. (The browser test
runs the same file in Chromium.)

Needs node (v18+); skipped with the reason when it is missing.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from exporter.live import tokenizer_data, unsupported
from trainer import data
from trainer.config import DataConfig
from trainer.tokenizer import load_tokenizer

TOKENIZER_JS = Path(__file__).resolve().parents[2] / "web_template" / "static" / "js" / "tokenizer.js"
NODE = shutil.which("node")
ODD = ("\u00a0\u0085\u1680\u180e\u2000\u2007\u200a\u200b\u200d\u2028\u2029\u202f\u205f\u3000\ufeff\x00\x07\x0b\x0c\x1c\x1f"
       "\r\r\n\t\u00e9e\u0301\u00df\u0130\u0131\u03a3\u0436\u05d0\u0627\u0663\u0966\u0e01\u1100\u2160\u2167\u00b2\u00bd"
       "\u2460\u3007\u4e2d\u6587\uac00\uff21\uff10\U0001d400\U0001f600\U0001f44d\U0001f3fd\U0001f1eb\U0001f1f7\ue000"
       "\U0010fffd\ufffd\ufffe\u0300\u20ac\u00a3\u2192\u2026\u201c\u201d\u00ab\u00bb<|endoftext|>")


def snippets(n: int, seed: int = 0) -> list[str]:
    """n slices of corpus files (1-300 characters); every third one salted with odd characters and random code points."""
    corpus = data.load_corpus(DataConfig(include_tests=True, max_bytes=4_000_000))
    texts = [t for split in ("train", "val") for t in data.iter_texts(corpus, split) if t]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = rng.choice(texts)
        start = rng.randrange(len(text))
        s = text[start:start + rng.randint(1, 300)]
        if i % 3 == 0:
            chars = list(s)
            for _ in range(rng.randint(1, 6)):
                pick = rng.random()
                if pick < 0.5:
                    c = rng.choice(ODD) if rng.random() < 0.9 else "<|endoftext|>"
                else:
                    c = chr(rng.choice([rng.randrange(0x80, 0x800), rng.randrange(0x800, 0xD800), rng.randrange(0xE000, 0x10000),
                                        rng.randrange(0x10000, 0x110000)]))
                chars.insert(rng.randrange(len(chars) + 1), c * rng.randint(1, 3))
            s = "".join(chars)
        out.append(s)
    out += ["", " ", "\n\n\n", "    \n    ", "x" * 500, "1234567", "a  b   c\t\td", "é", "<|endoftext|>", "<|endoftext|"]
    return out


def node_encode(shard: dict, texts: list[str], tmp_path: Path) -> list[list[int]]:
    """Ids of every text from tokenizer.js under node."""
    (tmp_path / "in.json").write_text(json.dumps({"shard": shard, "texts": texts}), encoding="utf-8")
    script = (f"const t = require({json.dumps(str(TOKENIZER_JS))}); const fs = require('fs');"
              f"const d = JSON.parse(fs.readFileSync({json.dumps(str(tmp_path / 'in.json'))}, 'utf8'));"
              "const tok = t.fromShard(d.shard); process.stdout.write(JSON.stringify(d.texts.map((s) => tok.encode(s))));")
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="node not found (apt-get install -y nodejs)")
def test_tokenizer_js_equals_python_on_12000_snippets(tmp_path):
    tok = load_tokenizer("stdlib-2k")
    texts = snippets(12_000)
    want = [e.ids for e in tok.encode_batch(texts)]
    got = node_encode(tokenizer_data(tok, ""), texts, tmp_path)
    bad = [(t, w, g) for t, w, g in zip(texts, want, got) if w != g]
    assert not bad, f"{len(bad)} of {len(texts)} differ; first: {bad[0]!r}"
    assert sum(len(w) for w in want) > 500_000  # a real amount of text


@pytest.mark.skipif(NODE is None, reason="node not found (apt-get install -y nodejs)")
def test_tokenizer_js_equals_an_imported_tiktoken_tokenizer(tmp_path):
    from trainer.tiktoken_convert import byte_chars, to_tokenizer

    base = load_tokenizer("stdlib-2k")  # its tokens as tiktoken ranks, converted as import-openai converts tinypython_2k
    to_byte = {c: b for b, c in byte_chars().items()}
    ranks = {bytes(to_byte[c] for c in s): i for s, i in base.get_vocab(with_added_tokens=False).items()}
    tok = to_tokenizer(ranks)
    texts = snippets(3000, seed=2)
    want = [e.ids for e in tok.encode_batch(texts)]
    shard = tokenizer_data(tok, "")
    assert shard["ignore_merges"] and len(shard["merges"]) > len(base.get_vocab()) - 256  # every split of every token
    assert node_encode(shard, texts, tmp_path) == want


@pytest.mark.skipif(NODE is None, reason="node not found (apt-get install -y nodejs)")
def test_tokenizer_js_decodes_tokens_like_python(tmp_path):
    tok = load_tokenizer("stdlib-2k")
    shard = tokenizer_data(tok, "")
    script = (f"const t = require({json.dumps(str(TOKENIZER_JS))});"
              f"const tok = t.fromShard(require({json.dumps(str(tmp_path / 's.json'))}));"
              f"process.stdout.write(JSON.stringify(Array.from({{length: {tok.get_vocab_size()}}}, (_, i) => tok.decode(i))));")
    (tmp_path / "s.json").write_text(json.dumps(shard))
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == [tok.decode([i], skip_special_tokens=False) for i in range(tok.get_vocab_size())]


def test_tokenizers_the_page_cannot_reproduce_are_refused():
    tok = load_tokenizer("stdlib-2k")
    spec = json.loads(tok.to_str())
    assert unsupported(spec) == ""
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\s+|\S+"
    assert "split pattern" in unsupported(spec)
    spec = json.loads(tok.to_str())
    spec["normalizer"] = {"type": "NFC"}
    assert "normalizer" in unsupported(spec)
