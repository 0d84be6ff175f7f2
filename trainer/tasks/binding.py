"""Generators of the tasks decided by what a variable is bound to: set or string, class_init, var_swap."""

from __future__ import annotations

import random

from trainer.tasks.base import TaskPair
from trainer.tasks.snippets import CLASSES, NAMES, context, fillers, header, pick

COLLECTORS = (  # names that suit both a set and a string being built up
    "seen", "result", "names", "out", "buf", "text", "keys", "found", "tags", "chars", "words", "parts",
    "acc", "collected", "output", "visited", "labels", "current", "pending", "marks", "tokens", "value",
)
ITERABLES = ("items", "lines", "names", "entries", "data", "records", "args", "fields", "tokens")
LOOP_VARS = ("item", "line", "name", "entry", "record", "arg", "field", "token", "word", "ch")
SET_INITS = ("set()",)
STR_INITS = ('""', "''")
NEUTRAL_INITS = ("[]", "{}", "0", "None", "dict()")
SWAP_PAIRS = (("a", "b"), ("x", "y"), ("i", "j"), ("first", "last"), ("start", "end"), ("key", "value"),
              ("source", "target"), ("parent", "child"), ("root", "node"), ("line", "other"))
SWAP_INITS = ("{}[0]", "{}[-1]", "None", "0", "1", "len({})", "{}.pop()", "next({})", "self.{}")


def set_or_string(rng: random.Random) -> TaskPair:
    """A collector made with set() takes .add, one made with "" takes +=; the collector's name varies."""
    return collector_pair(rng, rng.choice(COLLECTORS))


def set_or_string_fixedvarname(rng: random.Random) -> TaskPair:
    """The same as set_or_string with the collector always named `current`."""
    return collector_pair(rng, "current")


def collector_pair(rng: random.Random, var: str) -> TaskPair:
    """Build the set() and "" versions of one function that fills var in a loop."""
    seq, loop_var = rng.choice(ITERABLES), rng.choice(LOOP_VARS)
    text, pad = context(rng, [seq], extra=1, avoid=[var])
    if rng.random() < 0.3:  # a neutral neighbour, so the name (not the position) tells which init applies
        other = rng.choice([c for c in COLLECTORS if c != var])
        text += f"{pad}{other} = {rng.choice(NEUTRAL_INITS)}\n"
    use = use_site(rng, pad, loop_var, seq, avoid=[var])
    prompts = tuple(f"{text}{pad}{var} = {init}\n{use}{var}"
                    for init in (rng.choice(SET_INITS), rng.choice(STR_INITS)))
    return TaskPair(prompts=prompts, answers=(".add", " +="))


def use_site(rng: random.Random, pad: str, loop_var: str, seq: str, avoid: list[str]) -> str:
    """The lines leading to the collector's use: after a statement, in a for loop, or under an if in it."""
    shape = rng.randrange(3)
    if shape == 0:
        return fillers(rng, len(pad), 1, avoid) + pad
    loop = f"{pad}for {loop_var} in {seq}:\n"
    if shape == 1:
        return loop + pad + "    "
    cond = rng.choice((loop_var, f"not {loop_var}", f"{loop_var} is not None", f"len({loop_var}) > 1"))
    return loop + f"{pad}    if {cond}:\n{pad}        "


def class_init(rng: random.Random) -> TaskPair:
    """In __init__, `self.x =` is followed by the argument of the same name."""
    args = pick(rng, NAMES, rng.randint(2, 4))
    u, v = pick(rng, args, 2)
    done = [a for a in pick(rng, args, len(args)) if a not in (u, v)][: rng.randint(0, 2)]
    n_plain = rng.randint(len(args) // 2, len(args))
    params = ", ".join(["self", *args[:n_plain], *(f"{a}=None" for a in args[n_plain:])])
    under = "_" if rng.random() < 0.3 else ""
    base = rng.choice(("", "", "(object)", "(Base)"))
    doc = f'    """Track the {rng.choice(NAMES)} and its {rng.choice(NAMES)}."""\n\n' if rng.random() < 0.3 else ""
    lines = "".join(f"        self.{under}{a} = {a}\n" for a in done)
    if base == "(Base)" and not doc and rng.random() < 0.7:
        lines = "        super().__init__()\n" + lines
    head = header(rng) if not doc and rng.random() < 0.3 else ""
    top = f"{head}class {rng.choice(CLASSES)}{base}:\n{doc}    def __init__({params}):\n{lines}"
    prompts = (f"{top}        self.{under}{u} =", f"{top}        self.{under}{v} =")
    return TaskPair(prompts=prompts, answers=(f" {u}", f" {v}"))


def var_swap(rng: random.Random) -> TaskPair:
    """`a, b = b,` completes the swap with ` a`."""
    a, b = rng.choice(SWAP_PAIRS) if rng.random() < 0.5 else pick(rng, NAMES, 2)
    src = rng.choice(ITERABLES)
    text, pad = context(rng, [src], extra=1, avoid=[a, b])
    body = text + "".join(f"{pad}{n} = {rng.choice(SWAP_INITS).format(src)}\n" for n in (a, b))
    if rng.random() < 0.5:
        body += f"{pad}{rng.choice(('if', 'while'))} {a} {rng.choice(('>', '<', '!='))} {b}:\n"
        pad += "    "
    prompts = (f"{body}{pad}{a}, {b} = {b},", f"{body}{pad}{b}, {a} = {a},")
    return TaskPair(prompts=prompts, answers=(f" {a}", f" {b}"))
