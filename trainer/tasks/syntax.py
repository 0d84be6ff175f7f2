"""Generators of the tasks decided by the statement's keyword: what a def, with, for, if, while or lambda takes next.

The tokenizer fuses a line-ending colon with its newline (`:\n` is one token) and a closing parenthesis with
its newline (`)\n`), so the answers here are those fused tokens where the statement ends the line.
"""

from __future__ import annotations

import random

from trainer.tasks.base import TaskPair
from trainer.tasks.snippets import CLASSES, FUNCS, LOCALS, NAMES, context, header, pick

COLON_NL = ":\n"  # one token: a block opener's colon and its newline
NL = "\n"
DEFAULTS = ("None", "0", "1", "True", "False", "()", "''", '"utf-8"', "10", "-1", "0.5", "None")
DECORATORS = ("@contextmanager", "@deprecated", "@functools.wraps(func)", "@abstractmethod", "@cache")
PATH_ARGS = ("path", "filename", "fname", "config_path", "log_file", "target", "source", "name", "dest")
FILE_VARS = ("f", "fp", "fh", "stream", "handle", "fobj", "infile", "out")
LOOP_NAMES = ("node", "item", "line", "queue", "stack", "pending", "remaining", "data", "chunk", "entry",
              "block", "child", "parts", "todo", "frames", "buf", "tokens", "lines", "work")
STATEMENTS = ("return {v}", "{v} = {n}", "raise ValueError({v})", "{v}.append({n})", "pass", "{v} += {n}",
              "return None", "self.{v} = {v}", "logger.warning('bad %r', {v})")
COMPARISONS = ("is None", "is not None", "== {n}", "> {n}", "< {n}", "!= {n}", "in {w}", "not in {w}")
FLAGS = ("done", "found", "changed", "verbose", "debug", "ok", "valid", "ready", "running", "enabled",
         "strict", "dirty", "closed", "finished", "quiet", "success", "matched", "is_dir", "has_more")
LAMBDA_ARGS = ("x", "item", "k, v", "entry", "m", "s", "a, b", "pair", "node", "name", "line", "key")
CALLBACKS = ("key_func", "sort_key", "callback", "on_close", "transform", "helper", "wrapper", "inner",
             "check", "matches", "convert", "predicate", "getter", "handler", "cleanup", "visit")
INDEX_VARS = ("i", "idx", "index", "n", "lineno", "pos", "k", "j", "num", "count")
ITEM_VARS = ("item", "line", "name", "value", "node", "entry", "arg", "field", "row", "char", "token", "part")


def statement(rng: random.Random, pad: str) -> str:
    """One simple statement line (with newline) for the inside of a block."""
    return pad + rng.choice(STATEMENTS).format(v=rng.choice(LOCALS), n=rng.randint(0, 99)) + NL


def final_kwarg(rng: random.Random) -> TaskPair:
    """After parameters with defaults the next parameter takes `=None`, after plain ones the def closes."""
    params = pick(rng, [*NAMES, *LOCALS], rng.randint(2, 5))
    *before, last = params
    n_plain = rng.randint(0, len(before) - 1)
    kw = [p if i < n_plain else f"{p}={rng.choice(DEFAULTS)}" for i, p in enumerate(before)]
    head, pad = (header(rng) if rng.random() < 0.3 else ""), ""
    if rng.random() < 0.4:
        head += f"class {rng.choice(CLASSES)}:\n"
        pad, kw, before = "    ", ["self", *kw], ["self", *before]
    if rng.random() < 0.2:
        head += pad + rng.choice(DECORATORS) + NL
    fn = rng.choice(FUNCS)
    prompts = tuple(f"{head}{pad}def {fn}({', '.join([*ps, last])}" for ps in (kw, before))
    return TaskPair(prompts=prompts, answers=("=None", "):\n"))


def with_as(rng: random.Random) -> TaskPair:
    """`with open(...)` continues past the parenthesis (with ` as`); `f = open(...)` ends the line there."""
    path = rng.choice(PATH_ARGS)
    text, pad = context(rng, [path], avoid=[path])
    arg = rng.choice((path, path, f"self.{path}", f"{path}, mode", f"{path}, encoding=encoding"))
    prompts = (f"{text}{pad}with open({arg}", f"{text}{pad}{rng.choice(FILE_VARS)} = open({arg}")
    return TaskPair(prompts=prompts, answers=(")", ")\n"))


def for_while(rng: random.Random) -> TaskPair:
    """`for x` continues with ` in`, `while x` ends the line with a colon."""
    name = rng.choice(LOOP_NAMES)
    text, pad = context(rng, rng.sample([x for x in LOCALS if x != name], rng.randint(0, 2)), avoid=[name])
    return TaskPair(prompts=(f"{text}{pad}for {name}", f"{text}{pad}while {name}"), answers=(" in", COLON_NL))


def else_elif(rng: random.Random) -> TaskPair:
    """`else` ends the line with a colon, `elif` goes on with a condition."""
    subject = rng.choice(NAMES)
    text, pad = context(rng, [subject], extra=1, avoid=[subject])
    test = rng.choice(COMPARISONS).format(n=rng.randint(0, 9), w=rng.choice(LOCALS))
    block = f"{pad}if {subject} {test}:\n{statement(rng, pad + '    ')}"
    cond = rng.choice((f" {subject}", f" {subject}", " not", " isinstance", " len"))
    return TaskPair(prompts=(f"{text}{block}{pad}else", f"{text}{block}{pad}elif"), answers=(COLON_NL, cond))


def if_ternary(rng: random.Random) -> TaskPair:
    """A statement `if c` ends the line with a colon; a ternary `a if c` continues with ` else`."""
    x = rng.choice(LOCALS)
    text, pad = context(rng, [x], avoid=[x])
    cond = rng.choice((x, f"not {x}", f"{x} is None", f"{x} is not None", f"{x} > {rng.randint(0, 9)}",
                       f"self.{x}", f"{x} == {rng.randint(0, 9)}"))
    value = rng.choice(("None", str(rng.randint(0, 9)), rng.choice(NAMES), f"{x}.copy()", "[]", f"len({x})"))
    lhs = rng.choice((f"{rng.choice(NAMES)} =", "return", f"self.{rng.choice(NAMES)} ="))
    return TaskPair(prompts=(f"{text}{pad}if {cond}", f"{text}{pad}{lhs} {value} if {cond}"),
                    answers=(COLON_NL, " else"))


def lambda_func(rng: random.Random) -> TaskPair:
    """`lambda x` continues with `:`; a method's `def f` with `(self` (how real code opens a method's parameters:
    the tokenizer writes `(self` as one token, and `(` alone rarely follows a def)."""
    fn, arg = rng.choice(CALLBACKS), rng.choice(LAMBDA_ARGS)
    attrs = pick(rng, NAMES, rng.randint(1, 3))
    text = f"class {rng.choice(CLASSES)}:\n    def __init__(self, {', '.join(attrs)}):\n"
    text += "".join(f"        self.{a} = {a}\n" for a in attrs)
    if rng.random() < 0.7:
        lam = f"        self.{fn} = lambda {arg}"
    else:
        lam = f"        self.{rng.choice(attrs)}.sort(key=lambda {arg}"
    return TaskPair(prompts=(f"{text}{lam}", f"{text}\n    def {fn}"), answers=(":", "(self"))


def if_equals(rng: random.Random) -> TaskPair:
    """`if x` continues with ` ==`, a line-start `x` with ` =`."""
    x = rng.choice(LOCALS)
    text, pad = context(rng, [x], avoid=[x])
    name = f"self.{x}" if rng.random() < 0.25 else x
    return TaskPair(prompts=(f"{text}{pad}if {name}", f"{text}{pad}{name}"), answers=(" ==", " ="))


def enumerate_range(rng: random.Random) -> TaskPair:
    """`for i, x in` takes enumerate (whose first token is ` en`), `for i in` takes ` range`."""
    i, x = rng.choice(INDEX_VARS), rng.choice(ITEM_VARS)
    seq = rng.choice(LOCALS)
    text, pad = context(rng, [seq], avoid=[seq])
    return TaskPair(prompts=(f"{text}{pad}for {i}, {x} in", f"{text}{pad}for {i} in"), answers=(" en", " range"))


def var_if(rng: random.Random) -> TaskPair:
    """`if flag == True` ends with a colon, the assignment `flag = True` with a plain newline."""
    flag, value = rng.choice(FLAGS), rng.choice(("True", "True", "False"))
    text, pad = context(rng)
    if rng.random() < 0.5:
        text += f"{pad}{flag} = {'False' if value == 'True' else 'True'}\n"
    return TaskPair(prompts=(f"{text}{pad}if {flag} == {value}", f"{text}{pad}{flag} = {value}"),
                    answers=(COLON_NL, NL))


def while_return_true(rng: random.Random) -> TaskPair:
    """`while True` ends with a colon, `return True` with a plain newline."""
    text, pad = context(rng, rng.sample(LOCALS, rng.randint(0, 2)))
    if rng.random() < 0.4:
        text += f"{pad}if {rng.choice(LOCALS)}:\n"
        pad += "    "
    return TaskPair(prompts=(f"{text}{pad}while True", f"{text}{pad}return True"), answers=(COLON_NL, NL))
