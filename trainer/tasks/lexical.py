"""Generators of the tasks decided by what is open: a quote, a bracket, an f-string, a block, a file mode.

Answers follow the tokenizer: `]]` followed by a newline is the two tokens `]` and `]\n`, so a nested list's
next token is `]` and a flat one's `]\n`; an indented line starts with a token of (indent - 1) spaces.
"""

from __future__ import annotations

import random

from trainer.tasks.base import TaskPair
from trainer.tasks.snippets import BARE_NAMES, LOCALS, NAMES, context, pick, words

CALLS = ("print(", "logger.info(", "log.warning(", "raise ValueError(", "raise KeyError(", "sys.stdout.write(",
         "warnings.warn(", "{a} = {b}.get(", "if {a}.startswith(", "{a} = os.environ.get(", "self.fail(",
         "parser.error(", "{a}.append(", "return _(")
ENV_WORDS = ("HOME", "PATH", "timeout", "name", "utf8", "debug", "TMPDIR", "user", "mode", "version")
KEY_NAMES = ("errno.ENOENT", "logging.DEBUG", "logging.INFO", "NAME", "VALUE", "key", "name", "node", "root",
             "first", "last", "start", "end", "mode", "level", "size", "code", "tag", "default")
VALUES = ('"one"', "'two'", "None", "True", "0", "1", "-1", "'%s'", '"error"', "name", "self.default")
FILE_NAMES = (("input_path", "output_path"), ("infile", "outfile"), ("in_path", "out_path"),
              ("src_path", "dst_path"), ("source_file", "target_file"), ("input_file", "output_file"),
              ("input_filename", "output_filename"), ("in_name", "out_name"), ("read_path", "write_path"))
FILE_VARS = ("f", "fp", "fh", "stream", "src", "dst", "handle")
SAME_LEVEL = ("{a} = {b}.strip()", "{a} = len({b})", "{a} = []", "{a} = {n}", "{a} += {n}", "{a}.clear()",
              "{a} = sorted({b})", "{a} = {b} or {n}", "{a}.update({b})", "logger.debug('%s', {a})")


def single_double_quote(rng: random.Random) -> TaskPair:
    """A string opened with `("` closes with `")`, one opened with `('` with `')`."""
    a, b = pick(rng, LOCALS, 2)
    text, pad = context(rng, [b], avoid=[a, b])
    call = rng.choice(CALLS)
    body = rng.choice(ENV_WORDS) if "get" in call or "startswith" in call else message(rng)
    line = pad + call.format(a=a, b=b)
    prompts = (f'{text}{line}"{body}', f"{text}{line}'{body}")
    return TaskPair(prompts=prompts, answers=('")', "')"))


def message(rng: random.Random) -> str:
    """A log or error message ending in a letter or digit (so the closing quote is its own token)."""
    return rng.choice((words(rng, 1, 4), words(rng, 1, 3) + ": %s", words(rng, 1, 3) + f" {rng.randint(1, 99)}"))


def bracket_brace(rng: random.Random) -> TaskPair:
    """Inside a dict literal the key is followed by `:`, inside a list by `,`."""
    text, pad = context(rng, extra=1)
    keys = [str(k) for k in rng.sample(range(1000), 5)] if rng.random() < 0.5 else pick(rng, KEY_NAMES, 5)
    n = rng.randint(2, 4)
    entries = ", ".join(f"{k}: {rng.choice(VALUES)}" for k in keys[: n - 1])
    items = ", ".join(keys[: n - 1])
    lhs = rng.choice((f"{rng.choice(LOCALS)} = ", "return ", f"self.{rng.choice(NAMES)} = ", "_table = "))
    prompts = (f"{text}{pad}{lhs}{{{entries}, {keys[n - 1]}", f"{text}{pad}{lhs}[{items}, {keys[n - 1]}")
    return TaskPair(prompts=prompts, answers=(":", ","))


def with_open(rng: random.Random) -> TaskPair:
    """The mode of open() follows the file's name: `r` for an input, `w` for an output."""
    src, dst = rng.choice(FILE_NAMES)
    text, pad = context(rng, [src, dst], avoid=[src, dst])
    quote = rng.choice(('"', "'"))
    start = rng.choice((f"{pad}with open(", f"{pad}{rng.choice(FILE_VARS)} = open("))
    mode = rng.choice((f", {quote}", f", mode={quote}"))
    return TaskPair(prompts=(f"{text}{start}{src}{mode}", f"{text}{start}{dst}{mode}"), answers=("r", "w"))


def bracket_counting(rng: random.Random) -> TaskPair:
    """A list still nested two deep closes with `]` then `]\n`; a flat one closes with `]\n` at once."""
    text, pad = context(rng, extra=1)
    kind = rng.randrange(3)
    groups = [[element(rng, kind) for _ in range(rng.randint(1, 3))] for _ in range(rng.randint(1, 3))]
    *closed, last = groups
    done = "".join(f"[{', '.join(g)}], " for g in closed)
    nested, flat = f"[{done}[{', '.join(last)}", f"[{done}{', '.join(last)}"
    if not closed:
        flat = f"[{', '.join(last)}"
    lhs = rng.choice((f"{rng.choice(LOCALS)} = ", "return ", f"self.{rng.choice(NAMES)} = ", "MATRIX = "))
    return TaskPair(prompts=(f"{text}{pad}{lhs}{nested}", f"{text}{pad}{lhs}{flat}"), answers=("]", "]\n"))


def element(rng: random.Random, kind: int) -> str:
    """One list element of a kind: a digit, a number of up to two digits or a name."""
    if kind == 0:
        return str(rng.randint(0, 9))
    if kind == 1:
        return str(rng.randint(-9, 99))
    return rng.choice(NAMES)


def fstring_brace(rng: random.Random) -> TaskPair:
    """A string holding a `{name}` field ends the call when it is an f-string (`")`) and goes on to `.format(...)`
    when it is plain (`"`): the same prompt but for the `f` prefix, nothing to copy."""
    name = rng.choice(BARE_NAMES)
    text, pad = context(rng, [name], extra=1)
    lead = rng.choice(("", words(rng, 1, 3) + " ", words(rng, 1, 2) + ": ", words(rng, 1, 1) + "="))
    tail = rng.choice(("", "", " " + words(rng, 1, 2), "!", "."))
    start = rng.choice(("print(", "raise ValueError(", "logger.info(", "lines.append(", "sys.stderr.write("))
    body = f'{lead}{{{name}}}{tail}'
    return TaskPair(prompts=(f'{text}{pad}{start}f"{body}', f'{text}{pad}{start}"{body}'), answers=('")', '"'))


def indent_for(rng: random.Random) -> TaskPair:
    """After a `for ...:` line the next line is one level deeper; after a plain statement it is not."""
    a, b = pick(rng, LOCALS, 2)
    text, pad = context(rng, [b], avoid=[a, b])
    if rng.random() < 0.3:
        text += f"{pad}if {b}:\n"
        pad += "    "
    loop = f"{pad}for {rng.choice(NAMES)} in {b}:\n"
    plain = pad + rng.choice(SAME_LEVEL).format(a=a, b=b, n=rng.randint(0, 99)) + "\n"
    depth = len(pad)
    return TaskPair(prompts=(text + loop, text + plain), answers=(" " * (depth + 3), " " * (depth - 1)))
