"""Realistic Python building blocks (names, imports, filler statements) that the task generators draw from."""

from __future__ import annotations

import random
from collections.abc import Sequence

# Identifiers that are one token with a leading space (" name") in stdlib-2k and end in a letter, so an
# answer token such as " +=" or ".add" after them starts a new token.
NAMES = (
    "name", "value", "path", "key", "data", "line", "item", "node", "count", "size", "width", "index",
    "level", "root", "parent", "child", "source", "target", "result", "buffer", "message", "text",
    "token", "user", "host", "port", "timeout", "mode", "state", "config", "options", "prefix", "offset",
    "start", "end", "first", "last", "url", "header", "request", "response", "event", "handler",
    "encoding", "default", "order", "group", "entry", "frame", "stack", "version", "number", "tag",
    "stream", "server", "thread", "module", "parser", "pattern", "string", "code", "content", "context",
    "action", "address", "block", "char", "command", "filename", "flags", "func", "obj", "other",
    "package", "process", "sequence", "spec", "values", "lines", "names", "results", "args", "lineno",
)
# Identifiers that are one token with no leading space (after "{" in an f-string).
BARE_NAMES = (
    "name", "path", "key", "data", "line", "item", "node", "value", "size", "root", "text", "token",
    "user", "host", "url", "level", "offset", "version", "width", "state", "config", "buffer",
    "message", "module", "method", "obj", "source", "child", "frame", "header",
)
# Longer identifiers for the surrounding code (any tokenization).
LOCALS = (  # at most three tokens each
    "total", "counter", "result", "items", "parts", "rows", "chunk", "payload", "matches", "pending",
    "cache", "lookup", "mapping", "options", "settings", "fields", "records", "tokens", "blocks", "prefix",
    "suffix", "filename", "encoding", "status", "width", "offset", "limit", "batch", "queue", "stack", "buf",
)
FUNCS = (  # at most four tokens each
    "process", "load_config", "parse_args", "handle_request", "collect", "build_index", "render", "flush",
    "update_cache", "read_records", "format_entry", "resolve", "check_status", "normalize", "run_command",
    "emit", "validate", "dispatch", "make_key", "refresh", "main", "setup", "parse", "visit", "get_value",
)
CLASSES = (
    "Parser", "Config", "Connection", "Buffer", "Request", "Handler", "Record", "Entry", "Node",
    "Registry", "Session", "Reader", "Writer", "Message", "Server", "Client", "Token", "Event",
    "Channel", "Resolver", "Tracker", "Loader", "Formatter", "Options", "Context", "Worker",
)
IMPORTS = (
    "import os", "import sys", "import re", "import json", "import logging", "import time", "import io",
    "import struct", "from pathlib import Path", "import os.path", "import shutil", "import warnings",
    "import collections", "import functools",
)
COMMENTS = ("# keep the order", "# TODO: errors", "# may be empty", "# normalize first", "# done", "# helpers",
            "# slow path", "# cached")
WORDS = (
    "file", "not", "found", "invalid", "value", "for", "the", "missing", "cannot", "open", "unknown",
    "option", "expected", "got", "error", "reading", "writing", "loading", "skipping", "done",
    "starting", "server", "connection", "closed", "timeout", "retry", "bad", "header", "line",
    "unexpected", "end", "of", "input", "no", "such", "directory", "already", "exists", "ignored",
)
FILLERS = (  # one statement each; {a} {b} are locals, {n} a small number, {c} a comment
    "{a} = {b}.strip()", "{a} = len({b})", "{a} = []", "{a} = {n}", "{a} += {n}", "{c}",
    "{a} = {b} or {n}", "{a} = dict({b})", "{a} = self.{b}", "assert {a} is not None",
    "{a} = {b}.get({n})", "logger.debug('%s', {a})", "{a} = max({a}, {n})", "{a} = {b}[{n}]",
    "{a} = sorted({b})", "{a} = {b} + {n}", "if not {a}:\n{i}    return {b}",
)


def pick(rng: random.Random, options: Sequence[str], k: int) -> list[str]:
    """k distinct random choices."""
    return rng.sample(list(options), k)


def header(rng: random.Random) -> str:
    """An import line or a comment, then a blank line."""
    return (rng.choice(IMPORTS) if rng.random() < 0.75 else rng.choice(COMMENTS)) + "\n\n"


def filler(rng: random.Random, indent: int, avoid: Sequence[str] = ()) -> str:
    """One ordinary statement line (with its newline) at an indent, using none of the names in avoid."""
    a, b = pick(rng, [x for x in LOCALS if x not in avoid], 2)
    pad = " " * indent
    text = rng.choice(FILLERS).format(a=a, b=b, n=rng.randint(0, 99), c=rng.choice(COMMENTS), i=pad)
    return pad + text + "\n"


def fillers(rng: random.Random, indent: int, n: int, avoid: Sequence[str] = ()) -> str:
    """n filler statements at an indent."""
    return "".join(filler(rng, indent, avoid) for _ in range(n))


def opening(rng: random.Random, args: Sequence[str], method: bool) -> str:
    """The opening line(s) of a function, or of a method in a class, taking args."""
    if not method:
        return f"def {rng.choice(FUNCS)}({', '.join(args)}):\n"
    return f"class {rng.choice(CLASSES)}:\n    def {rng.choice(FUNCS)}({', '.join(['self', *args])}):\n"


def context(rng: random.Random, args: Sequence[str] = (), extra: int = 2,
            avoid: Sequence[str] = ()) -> tuple[str, str]:
    """A function or method taking args with up to `extra` more lines (a header, a class, fillers).

    Returns the text and the body's indent. The bound on extra lines keeps prompts within 64 tokens.
    """
    budget = rng.randint(0, extra)
    top = ""
    if budget and rng.random() < 0.4:
        top, budget = header(rng), budget - 1
    method = budget > 0 and rng.random() < 0.4
    budget -= method
    top += opening(rng, args, method)
    ind = 8 if method else 4
    return top + fillers(rng, ind, budget, avoid), " " * ind


def words(rng: random.Random, lo: int, hi: int) -> str:
    """A short phrase of message words."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))
