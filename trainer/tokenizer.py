"""Train, load and fingerprint the byte-level BPE tokenizer of the standard-library corpus.

The shipped tokenizer `trainer/assets/stdlib-2k.json` is trained on the train split of the corpus
(data.py, tests excluded). Runs load that file rather than retraining, so they stay reproducible
across Python versions. To regenerate it (deliberately: it changes every run's tokenizer sha256):

    python -m trainer.tokenizer            # writes trainer/assets/stdlib-2k.json
    python -m trainer.tokenizer --out PATH # writes elsewhere
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from trainer.errors import UserError

log = logging.getLogger(__name__)

EOT = "<|endoftext|>"
SHIPPED_DIR = "assets"  # trainer/assets/<name>.json
DEFAULT_NAME = "stdlib-2k"

# Pre-tokenizer split of OpenAI's tinypython_2k: a letter run keeps one leading non-letter
# (`.add`, `=None`, ` else`), digits go in threes, a punctuation run keeps its trailing newlines.
SPLIT_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> Tokenizer:
    """Train a deterministic byte-level BPE of exactly vocab_size tokens, EOT last."""
    if vocab_size <= 257:
        raise UserError(f"vocab_size {vocab_size} is too small: it must exceed the 256 bytes plus EOT")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # EOT is appended after training so that its id is vocab_size - 1
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(texts, trainer)
    if tok.get_vocab_size() != vocab_size - 1:
        raise UserError(
            f"the corpus only supports {tok.get_vocab_size() + 1} tokens, not {vocab_size}: "
            "train on more text or ask for a smaller vocab_size"
        )
    tok.add_special_tokens([EOT])
    assert tok.token_to_id(EOT) == vocab_size - 1
    return tok


def load_tokenizer(spec: str) -> Tokenizer:
    """Load a tokenizer shipped in trainer/assets by name, or a tokenizer.json by path."""
    shipped = resources.files("trainer") / SHIPPED_DIR / f"{spec}.json"
    if "/" not in spec and "\\" not in spec and not spec.endswith(".json"):
        if not shipped.is_file():
            raise UserError(
                f"unknown tokenizer {spec!r}: give a path to a tokenizer.json "
                f"or one of {', '.join(shipped_tokenizers()) or '(none shipped)'}"
            )
        return _parse(shipped.read_text(encoding="utf-8"), f"trainer/{SHIPPED_DIR}/{spec}.json")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"tokenizer file {path} does not exist: give the path to a tokenizer.json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"tokenizer file {path} cannot be read ({e}): give a readable tokenizer.json") from None
    return _parse(text, str(path))


def shipped_tokenizers() -> list[str]:
    """Names of the tokenizers shipped in the package."""
    folder = resources.files("trainer") / SHIPPED_DIR
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def _parse(text: str, source: str) -> Tokenizer:
    """Build a Tokenizer from tokenizer.json text, as a UserError naming source if it is not one."""
    try:
        tok = Tokenizer.from_str(text)
    except Exception as e:  # the tokenizers library raises a bare Exception on bad JSON
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"tokenizer file {source} is corrupt ({reason}): replace it with a valid tokenizer.json"
        ) from None
    if tok.token_to_id(EOT) is None:
        raise UserError(f"tokenizer file {source} has no {EOT} token: use a tokenizer trained by trainer.tokenizer")
    return tok


def eot_id(tok: Tokenizer) -> int:
    """Id of the end-of-text token that separates documents."""
    tid = tok.token_to_id(EOT)
    if tid is None:
        raise UserError(f"the tokenizer has no {EOT} token: use a tokenizer trained by trainer.tokenizer")
    return tid


def tokenizer_sha256(tok: Tokenizer) -> str:
    """sha256 of a canonical JSON form of the tokenizer, stable across save and load."""
    data = _canonical(json.loads(tok.to_str()))
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _canonical(data: dict[str, Any]) -> dict[str, Any]:
    """Normalize library-version details: merges as [left, right] pairs (old versions write 'l r')."""
    model = data.get("model") or {}
    merges = model.get("merges")
    if isinstance(merges, list):
        model["merges"] = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in merges]
    return data


def main(argv: list[str] | None = None) -> None:
    """Retrain the shipped tokenizer on the corpus train split and write it."""
    from trainer.config import DataConfig
    from trainer.data import iter_texts, load_corpus

    parser = argparse.ArgumentParser(prog="python -m trainer.tokenizer", description=main.__doc__)
    default_out = Path(__file__).resolve().parent / SHIPPED_DIR / f"{DEFAULT_NAME}.json"
    parser.add_argument("--out", type=Path, default=default_out, help="where to write tokenizer.json")
    parser.add_argument("--vocab-size", type=int, default=2048)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    corpus = load_corpus(DataConfig(include_tests=False))
    log.info("corpus: %d files (%d train), %d bytes, sha256 %s", len(corpus.files),
             len(corpus.files) - len(corpus.val), corpus.nbytes, corpus.sha256)
    start = time.perf_counter()
    tok = train_tokenizer(iter_texts(corpus, "train"), args.vocab_size)
    log.info("trained %d tokens in %.1f s", tok.get_vocab_size(), time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(args.out), pretty=True)
    log.info("wrote %s (tokenizer sha256 %s)", args.out, tokenizer_sha256(tok))


if __name__ == "__main__":
    main()
