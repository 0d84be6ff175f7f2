"""Convert a tiktoken BPE stored as data-gym files (vocab.bpe + encoder.json) into our tokenizer.json format.

OpenAI's `tinypython_2k` (the tokenizer of the openai/circuit_sparsity models) is such a BPE: the 256 bytes,
then one token per line of vocab.bpe, split by the same pattern as trainer/tokenizer.py, end-of-text last (2047).
tiktoken merges any adjacent pair whose concatenation is a token, lowest rank first; a HF BPE merges only listed
pairs. So every split of every token into two tokens becomes a merge, ranked by the token it makes, and whole
pieces that are tokens are taken as they are (`ignore_merges`), as tiktoken does.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from trainer.errors import UserError
from trainer.fileio import read_json, read_text, require_file
from trainer.tokenizer import EOT, SPLIT_PATTERN

VOCAB_BPE, ENCODER_JSON = "vocab.bpe", "encoder.json"
START = "<|startoftext|>"  # a special token some encoder.json files carry; not a BPE token


def byte_order() -> list[int]:
    """The 256 bytes in rank order: those data-gym writes as themselves first, then the rest (tiktoken.load)."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    return printable + [b for b in range(256) if b not in printable]


def byte_chars() -> dict[int, str]:
    """The one character data-gym (and GPT-2, and HF ByteLevel) writes for each byte."""
    order = byte_order()
    n_printable = next(i for i, b in enumerate(order) if not (chr(b).isprintable() and chr(b) != " "))
    return {b: chr(b) if i < n_printable else chr(256 + i - n_printable) for i, b in enumerate(order)}


def read_data_gym(folder: Path) -> dict[bytes, int]:
    """The mergeable ranks of vocab.bpe (bytes first, then one per merge), checked against encoder.json."""
    chars = {c: b for b, c in byte_chars().items()}
    bpe_path, enc_path = folder / VOCAB_BPE, folder / ENCODER_JSON
    for path in (bpe_path, enc_path):
        require_file(path, f"give --tokenizer a folder with {VOCAB_BPE} and {ENCODER_JSON}")

    def decode(text: str, where: str) -> bytes:
        try:
            return bytes(chars[c] for c in text)
        except KeyError as e:
            raise UserError(f"{where}: {e.args[0]!r} is not a data-gym byte character; is this a GPT-2 style {VOCAB_BPE}?") from None

    ranks = {bytes([b]): i for i, b in enumerate(byte_order())}
    lines = read_text(bpe_path).split("\n")[1:-1]  # line 1 is a version header
    for n, line in enumerate(lines, 2):
        parts = line.split()
        if len(parts) != 2:
            raise UserError(f"{bpe_path}:{n}: expected a merge of two tokens, got {line!r}")
        token = decode(parts[0], f"{bpe_path}:{n}") + decode(parts[1], f"{bpe_path}:{n}")
        if token in ranks:
            raise UserError(f"{bpe_path}:{n}: the merge makes {token!r}, which is already token {ranks[token]}")
        ranks[token] = len(ranks)
    _check_encoder(enc_path, ranks, decode)
    return ranks


def _check_encoder(path: Path, ranks: dict[bytes, int], decode) -> None:
    """encoder.json must list exactly the ranks of vocab.bpe, and end-of-text (if any) right after them."""
    encoder = read_json(path)
    if not isinstance(encoder, dict):
        raise UserError(f"{path}: expected an object of token -> id")
    eot = encoder.pop(EOT, len(ranks))
    encoder.pop(START, None)
    if eot != len(ranks):
        raise UserError(f"{path}: {EOT} has id {eot}; it must follow the {len(ranks)} BPE tokens")
    loaded = {decode(k, f"{path}: token {k!r}"): v for k, v in encoder.items()}
    for token in sorted(set(loaded) | set(ranks), key=lambda t: ranks.get(t, len(ranks))):
        if loaded.get(token) != ranks.get(token):
            raise UserError(f"{path}: token {token!r} has id {loaded.get(token)}, {VOCAB_BPE} gives {ranks.get(token)}; "
                            "the two files do not belong together")


def to_tokenizer(ranks: dict[bytes, int]) -> Tokenizer:
    """A byte-level HF BPE that encodes as tiktoken does with these ranks and the tinypython split; EOT last."""
    chars = byte_chars()
    text = {token: "".join(chars[b] for b in token) for token in ranks}
    merges = []  # (rank of the result, rank of left, rank of right, left, right)
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], text[left], text[right]))
    merges.sort()
    vocab = {text[t]: r for t, r in ranks.items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for *_, a, b in merges], ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOT])
    assert tok.token_to_id(EOT) == len(ranks)
    return tok


def convert(folder: Path) -> Tokenizer:
    """Our tokenizer for the data-gym files in a folder."""
    return to_tokenizer(read_data_gym(folder))
