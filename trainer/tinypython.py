"""Tiny Python: a seeded generator of small, simple, idiomatic Python programs (a corpus component).

In the spirit of TinyStories, but for code: short programs (typically 5-40 lines, 4-space indents,
at most 4 indentation levels) made of Python's most common idioms -- functions with default arguments
called with keyword arguments, small classes whose `__init__` stores its arguments on `self`, loops
over range/lists/enumerate/zip/.items(), while loops with break or a flag, if/elif/else, ternaries,
accumulators (numbers, lists, sets, strings grown with +=), files opened through path variables named
for the way they are used (`with open(input_path, "r") as f:`, `out = open(output_path, "w")` ...
`out.close()`), try/except/else/finally, comprehensions, f-strings and (less often) str.format with
named, automatic or numbered fields, nested lists, lambdas, tuple swaps, asserts, a few imports, and
now and then a beginner's `if done == True:`.
Names are defined and then used again (variables, functions, classes, attributes, methods), so that
predicting a later token often means copying an earlier name. Names come from a vocabulary of common words, which
a model can learn by heart; with `coined` > 0 that share of new variables, function nouns and class names is made
up instead (`belrok_total`, `get_zuvan`, `TaskGlimora`): pronounceable nonsense that only copying predicts.
With `repeat` > 0, that share of programs also copy-paste one of their top-level functions or classes under a new
name (`load_items` -> `load_items_v2`), as real code does: a long stretch that copying predicts token for token.

It is a grammar, not a set of templates: a program is a random walk over statement and expression
productions. Every value has a kind (int, float, str, bool, list of int, list of str, dict of str to
int, set of str, list of (str, int) pairs, list of lists of int, or an instance of a class defined
earlier); expressions are built for a wanted kind from the names in scope (locals of the enclosing
function or module, attributes of objects, module constants), from calls of the functions and methods
defined so far, or from literals. Every program parses with `ast.parse` on Python >= 3.10; it is meant
to be plausible code, not to run.

Determinism: document i of `documents(seed, coined)` is `program(random.Random(f"{seed}:{i}"), coined)` (a str seed is
hashed with sha512, independent of PYTHONHASHSEED), and generation draws only rng.random/randrange/
choice/shuffle on lists and tuples; it never iterates over a set or calls hash(). Output is ASCII, so
len(text) equals its size in bytes. Bump GENERATOR_VERSION whenever the output for a seed changes (coined=0 and
repeat=0 draw no extra random numbers). Version 3: `__init__` stores its arguments in a shuffled order in about a
third of the classes and on private attributes (`self._name = name`) in about a quarter, so that which argument
`self.x =` takes is read from the name, not from the order of the signature.

Speed (measured with `text(0, 10_000_000)` on one core of a loaded 2-core development machine, Python
3.11), GENERATOR_VERSION 2: about 1.8 MB/s, i.e. 10 MB of text in about 5.5 s (about 0.34 ms per
program of ~610 bytes) -- the same as version 1 measured alongside it. Version 3 draws two more numbers per
class: 1.5 MB/s measured beside two training runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

GENERATOR_VERSION = 3
T = TypeVar("T")

INDENT = "    "
MAX_LINE = 88  # a simple statement longer than this is drawn again (up to SIMPLE_TRIES times)
SIMPLE_TRIES = 4
MAX_NEST = 2  # control blocks (if/for/while/with/try) that may contain another; a one-line guard may add one
NAME_BIAS = (0.3, 0.55, 0.85)  # chance that an expression at depth 0/1/2 is just a name in scope

# Value kinds. A class defined in the program is a kind too: its name.
INT, FLOAT, STR, BOOL = "int", "float", "str", "bool"
INTS, STRS, DICT, SET, PAIRS, GRID = "ints", "strs", "dict", "set", "pairs", "grid"  # GRID: list of lists of int
FILE, EXC = "file", "exc"  # handles of with-blocks and caught exceptions: in scope, never an operand
SCALARS = (INT, FLOAT, STR, BOOL)
EMPTY = {INT: "0", FLOAT: "0.0", BOOL: "False", INTS: "[]", STRS: "[]", DICT: "{}", SET: "set()",
         PAIRS: "[]", GRID: "[]"}  # initial values of accumulators, attributes and None-default parameters
# (not of str: the quotes of "" follow the program's quote style, see empty())
SIZED = (INTS, STRS, DICT, SET, PAIRS, STR, GRID)
TYPE_NAMES = {
    INT: "int", FLOAT: "float", STR: "str", BOOL: "bool", INTS: "list[int]", STRS: "list[str]",
    DICT: "dict[str, int]", SET: "set[str]", PAIRS: "list[tuple[str, int]]", GRID: "list[list[int]]",
}
KIND_WEIGHTS = ((INT, 3.0), (STR, 2.0), (INTS, 2.0), (STRS, 1.5), (DICT, 1.3), (FLOAT, 1.0),
                (BOOL, 0.8), (SET, 0.6), (PAIRS, 0.5), (GRID, 0.3))
PARAM_WEIGHTS = ((INT, 3.0), (STR, 3.0), (INTS, 2.5), (STRS, 2.0), (DICT, 1.5), (FLOAT, 1.0),
                 (BOOL, 0.6), (SET, 0.3), (PAIRS, 0.3), (GRID, 0.2))
RETURN_WEIGHTS = ((INT, 3.0), (STR, 2.0), (BOOL, 2.0), (INTS, 1.5), (FLOAT, 1.0), (STRS, 1.0),
                  (DICT, 1.0), (SET, 0.3), (PAIRS, 0.4), (GRID, 0.2), ("", 2.0))
ACCUMULATORS = ((INT, 2.0), (INTS, 1.0), (STRS, 1.0), (DICT, 1.0), (SET, 1.0), (BOOL, 1.4), (FLOAT, 1.0),
                (STR, 1.2))  # kinds of the accumulators initialised before a for loop
ACCUMULATOR_NAMES = {INT: ("total", "count"), FLOAT: ("total",), INTS: ("result", "values"),
                     STRS: ("result", "names"), DICT: ("counts",), SET: ("seen", "current", "visited"),
                     BOOL: ("found", "flag"), STR: ("text", "result", "current", "output", "line")}

# Vocabulary.
NAMES = {
    INT: ("count", "total", "index", "size", "limit", "step", "score", "age", "level", "offset",
          "number", "amount", "width", "height", "length", "start", "end", "n", "i", "quantity",
          "value", "result", "position", "depth", "retries", "year", "port", "num_items", "max_count",
          "current"),
    FLOAT: ("price", "ratio", "average", "rate", "weight", "scale", "discount", "tax", "mean",
            "percent", "temperature", "balance", "distance", "speed", "factor", "elapsed"),
    STR: ("name", "label", "message", "text", "title", "key", "prefix", "suffix", "line", "word",
          "path", "filename", "status", "color", "user", "email", "city", "greeting", "code", "mode",
          "tag", "username", "query", "header", "description", "first_name", "content", "current",
          "current_line", "current_item", "current_word"),
    BOOL: ("found", "done", "is_valid", "ok", "enabled", "is_empty", "has_errors", "verbose",
           "active", "ready", "changed", "debug", "visible", "success", "matched", "flag", "running",
           "finished"),
    INTS: ("numbers", "scores", "values", "ages", "sizes", "totals", "item_ids", "points", "levels",
           "lengths", "nums", "results", "prices", "items", "data", "steps", "counts"),
    STRS: ("names", "words", "lines", "tags", "keys", "labels", "users", "colors", "parts", "tokens",
           "filenames", "cities", "titles", "emails", "messages", "fields", "paths", "fruits"),
    DICT: ("word_counts", "inventory", "stock", "lookup", "scores_by_name", "config", "totals_by_user",
           "prices_by_item", "mapping", "stats", "cache", "votes", "balances", "ages_by_name", "index_of"),
    SET: ("seen", "visited", "allowed", "unique_names", "blocked", "selected", "known_words",
          "tags_seen", "banned", "current"),
    PAIRS: ("pairs", "ranked", "entries", "rows", "records", "ranking", "sorted_items", "top_items",
            "scored"),
    GRID: ("grid", "matrix", "board", "rows", "table", "cells"),
}
SINGULAR = {
    "numbers": "number", "scores": "score", "values": "value", "ages": "age", "sizes": "size",
    "totals": "total", "item_ids": "item_id", "points": "point", "levels": "level",
    "lengths": "length", "nums": "num", "results": "result", "prices": "price", "items": "item",
    "steps": "step", "counts": "count", "names": "name", "words": "word", "lines": "line",
    "tags": "tag", "keys": "key", "labels": "label", "users": "user", "colors": "color",
    "parts": "part", "tokens": "token", "filenames": "filename", "cities": "city", "titles": "title",
    "emails": "email", "messages": "message", "fields": "field", "paths": "path", "fruits": "fruit",
    "unique_names": "name", "known_words": "word", "tags_seen": "tag", "visited": "place",
}
LOOP_NAMES = {INT: ("x", "n", "value", "item", "num"), STR: ("s", "word", "item", "name", "text")}
MODIFIERS = ("max", "min", "new", "old", "first", "last", "next", "current", "best", "default",
             "total", "base", "raw", "clean", "final", "temp", "user", "item")
PAIR_NAMES = (("key", "value"), ("name", "count"), ("word", "count"), ("name", "score"),
              ("item", "total"), ("k", "v"), ("user", "age"), ("label", "amount"))
INDEX_NAMES = ("i", "index", "idx", "n", "position", "line_no")
FUNC_VERBS = {
    INT: ("count", "compute", "get", "find", "calculate", "sum"),
    FLOAT: ("compute", "calculate", "get", "average", "apply"),
    STR: ("format", "make", "build", "get", "describe", "clean", "normalize", "render"),
    INTS: ("filter", "collect", "get", "sort", "double", "scale", "load"),
    STRS: ("split", "get", "collect", "sort", "clean", "parse", "read"),
    DICT: ("build", "count", "group", "load", "make", "index"),
    SET: ("unique", "collect", "get"),
    PAIRS: ("rank", "sort", "pair", "top"),
    GRID: ("build", "make", "transpose", "load", "create"),
    "": ("print", "show", "save", "log", "update", "process", "report", "add", "reset", "write",
         "display", "check"),
}
BOOL_NAMES = {  # predicate names: prefix -> what follows it
    "is": ("empty", "valid", "ready", "even", "positive", "admin", "active", "sorted", "long", "done"),
    "is_valid": ("name", "email", "path", "user", "age", "score", "key", "input", "code"),
    "has": ("items", "errors", "names", "duplicates", "scores", "tags", "users", "access"),
    "should": ("retry", "skip", "stop", "update", "save"),
    "contains": ("word", "name", "key", "digits", "value"),
}
CLASS_HEADS = ("Bank", "Shopping", "Task", "User", "Data", "Text", "File", "Game", "Order", "Simple",
               "Price", "Word", "Event", "Score", "Stock", "Student", "Book", "Grade")
CLASS_TAILS = ("Account", "Cart", "Queue", "Profile", "Record", "Parser", "Counter", "Manager",
               "Player", "Tracker", "Item", "Store", "Report", "Logger", "Cache", "Config", "Point",
               "Rectangle", "Stack", "Inventory", "Timer", "Library", "Node", "Employee", "Product",
               "Team", "Wallet", "Book", "Student")
COIN_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr", "pl",
               "sk", "st", "th", "tr", "sh")  # coined words: 2-3 (onset, vowel) syllables, maybe a final consonant
COIN_VOWELS = ("a", "e", "i", "o", "u", "a", "o", "ai", "ou")
COIN_CODAS = ("", "", "", "n", "k", "r", "l", "m", "x", "sh")
OBJECT_PREFIXES = ("my", "new", "first", "second", "other", "default", "main")
LAMBDAS = (  # (name, parameter, parameter kind, return kind, body)
    ("add_one", "x", INT, INT, "x + 1"), ("double", "x", INT, INT, "x * 2"),
    ("square", "n", INT, INT, "n * n"), ("is_even", "n", INT, BOOL, "n % 2 == 0"),
    ("is_positive", "x", INT, BOOL, "x > 0"), ("normalize", "s", STR, STR, "s.strip().lower()"),
    ("shout", "s", STR, STR, "s.upper()"), ("length_of", "s", STR, INT, "len(s)"),
    ("half", "x", INT, FLOAT, "x / 2"), ("last_digit", "n", INT, INT, "n % 10"),
)
INT_LITERALS = (0, 1, 1, 2, 2, 3, 4, 5, 10, 10, 7, 8, 12, 20, 42, 50, 100, 1000)
FLOAT_LITERALS = ("0.5", "1.5", "2.5", "0.1", "0.25", "3.14", "9.99", "19.99", "100.0", "0.0", "1.0", "0.75")
WORDS = ("hello", "world", "done", "error", "ok", "red", "green", "blue", "apple", "banana", "cherry",
         "admin", "guest", "yes", "no", "unknown", "default", "active", "pending", "python", "spam",
         "eggs", "north", "south", "small", "large", "high", "low", "x", "a", "b", "total", "value",
         "Hello, world!", "not found", "invalid input", "Done.", "Starting...", "Saving results",
         "ready", "empty")
PEOPLE = ("alice", "bob", "carol", "dave", "eve", "Alice", "Bob", "guest", "admin")
FILENAMES = ("data.txt", "output.txt", "config.json", "input.csv", "log.txt", "notes.md",
             "results.json", "users.csv", "report.txt")
FILES_BY_WAY = {"": FILENAMES, "in": ("data.txt", "config.json", "input.csv", "notes.md", "users.csv"),
                "out": ("output.txt", "results.json", "log.txt", "report.txt")}  # files to read / write
FOLDERS = (".", "data", "logs", "output", "src")
IN_WORDS = ("in", "input", "src", "source")  # words in a path variable's name that say it is read
OUT_WORDS = ("out", "output", "dst", "dest")  # ... that say it is written
PATH_NAMES = {"in": ("input_path", "in_file", "input_file", "src_path", "source_file", "in_path"),
              "out": ("output_path", "out_file", "output_file", "dst_path", "dest_file", "out_path")}
HANDLES = {"in": ("f", "f", "fh", "infile", "f_in"), "out": ("f", "out", "outfile", "f_out", "fh")}
BEGINNER_BOOL = 0.1  # chance that a flag or predicate is tested with `== True` / `== False`
KEYS = ("a", "b", "c", "apple", "banana", "alice", "bob", "red", "blue", "total", "count", "x", "y",
        "host", "port", "name", "age")
COLORS = ("red", "green", "blue", "yellow", "black", "white")
CITIES = ("Paris", "London", "Tokyo", "Berlin", "Rome", "Oslo")
LABELS = ("Total", "Result", "Count", "Name", "Hello", "Found", "Average", "Value", "Error", "Done",
          "Processing", "Saved", "Loaded", "Score", "Items", "Average score", "Warning", "Missing")
LINK_WORDS = ("has", "is", "and", "of", "with", "->", "=", "in", "scored", "costs")
COMMENTS = ("check the input", "update the totals", "print the results", "build the lookup table",
            "main loop", "collect the values", "skip empty values", "sort by score", "read the file",
            "TODO: handle errors", "keep track of what we have seen", "compute the average",
            "default values", "helper", "count each word", "done")
RAISE_MESSAGES = ("invalid input", "not found", "empty list", "value must be positive", "unknown mode",
                  "too many items")
ERRORS = ("ValueError", "ValueError", "TypeError", "KeyError", "RuntimeError", "IndexError")
CONSTANTS = {
    INT: ("MAX_ITEMS", "MAX_RETRIES", "LIMIT", "BATCH_SIZE", "MIN_SCORE", "THRESHOLD", "WIDTH",
          "PAGE_SIZE"),
    STR: ("DEFAULT_NAME", "GREETING", "SEPARATOR", "FILENAME", "PREFIX", "BASE_URL"),
    FLOAT: ("TAX_RATE", "DISCOUNT", "SCALE"),
    STRS: ("COLORS", "DEFAULT_TAGS", "FIELDS"),
}
IMPORTS = {  # name used in code -> (module, imported with `from module import name`)
    "os": ("os", False), "sys": ("sys", False), "json": ("json", False), "math": ("math", False),
    "random": ("random", False), "re": ("re", False), "time": ("time", False),
    "defaultdict": ("collections", True), "Counter": ("collections", True),
    "Path": ("pathlib", True), "dataclass": ("dataclasses", True),
}
RESERVED = frozenset((
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in",
    "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with",
    "yield", "self", "e", "f", "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter",
    "float", "int", "isinstance", "len", "list", "map", "max", "min", "open", "print", "range",
    "round", "set", "sorted", "str", "sum", "tuple", "zip", "main", "id", "type", "input", "next",
    "iter", "format", "hash", "object", "vars", "dir", "file", *IMPORTS,
))


@dataclass
class Param:
    """A parameter: its name, value kind and default as source text ("" when required)."""

    name: str
    kind: str
    default: str = ""


@dataclass
class Func:
    """A function, lambda or method that later code may call."""

    name: str
    params: list[Param]
    ret: str  # kind of the returned value; "" when it returns nothing
    noun: str = ""  # the name a result of a call is best stored under


@dataclass
class Klass:
    """A class defined in the program: constructor parameters, attributes and methods."""

    name: str
    params: list[Param]
    attrs: dict[str, str]  # assignable instance attributes -> kind
    props: dict[str, str] = field(default_factory=dict)  # read-only properties -> kind
    methods: list[Func] = field(default_factory=list)


@dataclass
class Frame:
    """Names bound in one block, in definition order, with their kinds."""

    names: dict[str, str]
    barrier: bool = False  # a function body: names of enclosing frames are not visible in it
    fixed: bool = False  # a for-loop header's names: read, never assigned to


@dataclass
class Ctx:
    """The state of one program being generated."""

    rng: random.Random
    quote: str  # the string delimiter of this program; "" to pick one per literal
    typed: bool  # annotate function signatures
    target: int  # wanted number of lines
    lines: list[str] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=lambda: [Frame({})])
    funcs: list[Func] = field(default_factory=list)
    classes: dict[str, Klass] = field(default_factory=dict)
    consts: dict[str, str] = field(default_factory=dict)
    imports: list[str] = field(default_factory=list)  # keys of IMPORTS, in order of first use
    used: list[str] = field(default_factory=list)  # functions and classes used at least once
    indent: int = 0
    nest: int = 0  # control blocks open in the current def
    loop: str = ""  # "for" or "while" inside a loop body, else ""
    ret: str | None = None  # return kind of the enclosing def; None at module level
    current_class: str = ""  # the class whose methods are being generated
    coined: float = 0.0  # chance that a new name is made up (see coin) rather than taken from the vocabulary
    repeat: float = 0.0  # chance that the program copy-pastes one of its top-level definitions (see repeat_definition)


# ----------------------------------------------------------------------------- random helpers

def chance(ctx: Ctx, p: float) -> bool:
    """True with probability p."""
    return ctx.rng.random() < p


def pick(ctx: Ctx, seq: Sequence[T]) -> T:
    """A uniformly chosen element of a list or tuple."""
    return ctx.rng.choice(seq)


def recent(ctx: Ctx, seq: Sequence[T]) -> T:
    """An element of seq, favouring the front (the names defined most recently)."""
    return seq[int(len(seq) * ctx.rng.random() ** 2)]


def choose(ctx: Ctx, table: Sequence[tuple[float, T]]) -> T:
    """An item of a ((weight, item), ...) table, drawn by weight."""
    r = ctx.rng.random() * sum(w for w, _ in table)
    for w, item in table:
        r -= w
        if r < 0:
            return item
    return table[-1][1]


def choose_kind(ctx: Ctx, weights: Sequence[tuple[str, float]]) -> str:
    """A kind from a ((kind, weight), ...) table."""
    return choose(ctx, [(w, k) for k, w in weights])


def distinct(ctx: Ctx, seq: Sequence[T], k: int) -> list[T]:
    """k distinct elements of seq in random order."""
    items = list(seq)
    ctx.rng.shuffle(items)
    return items[:k]


# ----------------------------------------------------------------------------- output

def emit(ctx: Ctx, line: str) -> None:
    """Append one line at the current indentation."""
    ctx.lines.append(INDENT * ctx.indent + line)


def blank(ctx: Ctx, n: int = 1) -> None:
    """Append n blank lines (never at the top of the body)."""
    if ctx.lines:
        ctx.lines.extend([""] * n)


def room(ctx: Ctx) -> int:
    """Lines still wanted."""
    return ctx.target - len(ctx.lines)


def open_block(ctx: Ctx, header: str, names: dict[str, str] | None = None, fixed: bool = False) -> None:
    """Emit a block header, then indent and open a scope frame (fixed: the names are loop variables)."""
    emit(ctx, header)
    ctx.indent += 1
    ctx.frames.append(Frame(dict(names or {}), fixed=fixed))
    if fixed:
        ctx.frames.append(Frame({}))  # the body's own names
    ctx.nest += 1


def close_block(ctx: Ctx) -> Frame:
    """Dedent and close the scope frame(s) opened by open_block; return the innermost."""
    ctx.indent -= 1
    ctx.nest -= 1
    frame = ctx.frames.pop()
    if ctx.frames[-1].fixed:
        ctx.frames.pop()
    return frame


def can_nest(ctx: Ctx) -> bool:
    """Whether one more control block fits."""
    return ctx.nest < MAX_NEST and room(ctx) >= 2


def sizes(ctx: Ctx, most: int) -> int:
    """A block size: 1..most statements, fewer when the program is nearly long enough."""
    return 1 + ctx.rng.randrange(max(1, min(most, room(ctx) // 3)))


# ----------------------------------------------------------------------------- strings

def quote(ctx: Ctx) -> str:
    """The string delimiter for the next literal."""
    return ctx.quote or pick(ctx, ("'", '"'))


def lit(ctx: Ctx, text: str) -> str:
    """A string literal of text (which holds no quote or backslash other than escapes)."""
    q = quote(ctx)
    return q + text + q


def fstr(ctx: Ctx, text: str) -> str:
    """An f-string literal of text (whose fields hold no quotes)."""
    return "f" + lit(ctx, text)


def empty(ctx: Ctx, kind: str) -> str:
    """The empty value of a kind: EMPTY's, or an empty string in the program's quote style."""
    return lit(ctx, "") if kind == STR else EMPTY[kind]


def str_literal(ctx: Ctx, hint: str = "") -> str:
    """A plausible string literal, chosen to fit the name it is stored under."""
    if "path" in hint or "file" in hint:
        return lit(ctx, pick(ctx, FILES_BY_WAY[path_way(hint)]))
    if "name" in hint or "user" in hint:
        return lit(ctx, pick(ctx, PEOPLE))
    if "email" in hint:
        return lit(ctx, pick(ctx, PEOPLE).lower() + "@example.com")
    if "color" in hint:
        return lit(ctx, pick(ctx, COLORS))
    if "city" in hint:
        return lit(ctx, pick(ctx, CITIES))
    if "key" in hint:
        return lit(ctx, pick(ctx, KEYS))
    return lit(ctx, pick(ctx, WORDS))


def fields(ctx: Ctx) -> list[tuple[str, str]]:
    """(expression, kind) pairs to interpolate into a string: recent scalars and lengths, attributes, constants."""
    scope = local_names(ctx)
    out = [(name, kind) for name, kind in scope if kind in SCALARS][:5]
    out.extend((f"len({name})", INT) for name, kind in scope[:6] if kind in (INTS, STRS, DICT))
    for kind in SCALARS:
        out.extend((name, kind) for name in names_of(ctx, kind)[:3] if "." in name or name.isupper())
    return out


def spec(ctx: Ctx, kind: str) -> str:
    """An optional conversion or format spec for an interpolated field."""
    if kind == FLOAT and chance(ctx, 0.5):
        return ":.2f"
    if kind == STR and chance(ctx, 0.12):
        return "!r"
    if kind == INT and chance(ctx, 0.05):
        return pick(ctx, (":>5", ":03d", ":,"))
    return ""


def template(ctx: Ctx, n: int) -> list[str]:
    """Text pieces around n fields: n + 1 literal parts."""
    label, link = pick(ctx, LABELS), pick(ctx, LINK_WORDS)
    if n == 1:
        return pick(ctx, ([label + ": ", ""], [label + " ", ""], ["", "!"], ["[", "] " + pick(ctx, WORDS)],
                          ["", " " + pick(ctx, ("items", "left", "done", "found", "points"))]))
    return pick(ctx, (["", f" {link} ", ""], [label + ": ", ", ", ""], ["", ": ", ""], ["", "/", ""]))


def interpolate(ctx: Ctx, style: str) -> str | None:
    """An f-string ("f") or str.format ("format") call over fields in scope; None when none are."""
    found = fields(ctx)
    if not found:
        return None
    chosen = [recent(ctx, found) for _ in range(1 + chance(ctx, 0.4))]
    if len(chosen) == 2 and chosen[0][0] == chosen[1][0]:
        chosen.pop()
    parts = template(ctx, len(chosen))
    q = quote(ctx)
    if style == "f":
        body = parts[0] + "".join("{" + e + spec(ctx, k) + "}" + p for (e, k), p in zip(chosen, parts[1:]))
        return "f" + q + body + q
    return format_call(ctx, q, parts, chosen)


def format_call(ctx: Ctx, q: str, parts: list[str], chosen: list[tuple[str, str]]) -> str:
    """`"..{total}..".format(total=total)`, `"{} of {}".format(a, b)` or `"{0}: {1}".format(k, v)`."""
    keys = [field_key(e) for e, _ in chosen]
    style = choose(ctx, ((0.45, "named"), (0.3, "auto"), (0.25, "indexed")))
    if style == "named" and len(set(keys)) == len(keys):
        args = ", ".join(f"{key}={e}" for key, (e, _) in zip(keys, chosen))
    else:
        keys = [str(i) if style == "indexed" else "" for i in range(len(chosen))]
        args = ", ".join(e for e, _ in chosen)
    body = parts[0] + "".join("{" + key + spec(ctx, k) + "}" + p for key, (_, k), p in zip(keys, chosen, parts[1:]))
    return q + body + q + ".format(" + args + ")"


def field_key(expression: str) -> str:
    """The keyword naming an interpolated expression: `total` for self.total, `num_names` for len(names)."""
    if expression.startswith("len("):
        return "num_" + expression[4:-1].split(".")[-1].lower()
    return expression.split(".")[-1].lower()


# ----------------------------------------------------------------------------- scope

def lookup(ctx: Ctx, name: str) -> str | None:
    """The kind of a visible name, or None."""
    for frame in reversed(ctx.frames):
        if name in frame.names:
            return frame.names[name]
        if frame.barrier:
            break
    return ctx.consts.get(name)


def is_free(ctx: Ctx, name: str) -> bool:
    """Whether name can be bound to something new here."""
    return (name not in RESERVED and lookup(ctx, name) is None and name not in ctx.classes
            and all(f.name != name for f in ctx.funcs))


def define(ctx: Ctx, name: str, kind: str) -> None:
    """Bind a name in the innermost frame."""
    ctx.frames[-1].names[name] = kind


def local_names(ctx: Ctx) -> list[tuple[str, str]]:
    """(name, kind) of visible local names, most recent first."""
    out = []
    for frame in reversed(ctx.frames):
        out.extend((name, frame.names[name]) for name in reversed(frame.names))
        if frame.barrier:
            break
    return out


def objects(ctx: Ctx, scope: list[tuple[str, str]] | None = None) -> list[tuple[str, Klass]]:
    """Visible names bound to instances of classes of the program (self included)."""
    if not ctx.classes:
        return []
    return [(name, ctx.classes[kind]) for name, kind in scope or local_names(ctx) if kind in ctx.classes]


def visible_attrs(obj: str, klass: Klass) -> list[str]:
    """The attributes code may use on obj: all of them on self, the public ones elsewhere."""
    return [attr for attr in klass.attrs if obj == "self" or not attr.startswith("_")]


def targets_of(ctx: Ctx, kind: str) -> list[str]:
    """Assignable expressions of a kind: local names (not loop variables), then attributes of objects."""
    out = []
    for frame in reversed(ctx.frames):
        if not frame.fixed:
            out.extend(name for name in reversed(frame.names) if frame.names[name] == kind)
        if frame.barrier:
            break
    for obj, klass in objects(ctx):
        out.extend(f"{obj}.{attr}" for attr in visible_attrs(obj, klass) if klass.attrs[attr] == kind)
    return out


def names_of(ctx: Ctx, kind: str) -> list[str]:
    """Readable expressions of a kind in scope: locals (loop variables too), attributes, constants."""
    scope = local_names(ctx)
    out = [name for name, k in scope if k == kind]
    for obj, klass in objects(ctx, scope):
        out.extend(f"{obj}.{attr}" for attr in visible_attrs(obj, klass) if klass.attrs[attr] == kind)
        out.extend(f"{obj}.{prop}" for prop, k in klass.props.items() if k == kind)
    out.extend(name for name, k in ctx.consts.items() if k == kind)
    return out


def names_of_any(ctx: Ctx) -> list[str]:
    """Local names and constants in scope, of any kind."""
    return [name for name, _ in local_names(ctx)] + list(ctx.consts)


def plain_names(ctx: Ctx, kind: str) -> list[str]:
    """Local names (no attributes, no constants) of a kind."""
    return [name for name, k in local_names(ctx) if k == kind]


def any_name(ctx: Ctx, kinds: Sequence[str]) -> tuple[str, str] | None:
    """(expression, kind) of something in scope of one of the kinds (tried in random order)."""
    order = list(kinds)
    ctx.rng.shuffle(order)
    for kind in order:
        names = names_of(ctx, kind)
        if names:
            return recent(ctx, names), kind
    return None


def compose(ctx: Ctx, base: str) -> str:
    """base, or base with a modifier in front (max_count, new_name, ...)."""
    if "_" not in base and base not in NAMES[BOOL] and chance(ctx, 0.2):
        mod = pick(ctx, MODIFIERS)
        if mod not in base:
            return f"{mod}_{base}"
    return base


def coin(ctx: Ctx) -> str:
    """A made-up lowercase word of 2-3 syllables (`zuvan`, `glorikesh`)."""
    n = 2 + ctx.rng.randrange(2)
    return "".join(pick(ctx, COIN_ONSETS) + pick(ctx, COIN_VOWELS) for _ in range(n)) + pick(ctx, COIN_CODAS)


def coined_name(ctx: Ctx, base: str) -> str:
    """A made-up word, alone or joined to base (`zuvan`, `zuvan_count`, `count_zuvan`)."""
    word = coin(ctx)
    return choose(ctx, ((2, word), (2, f"{word}_{base}"), (1, f"{base}_{word}")))


def fresh_name(ctx: Ctx, kind: str, preferred: tuple[str, ...] = ()) -> str:
    """A name for a new binding of this kind, free in the current scope."""
    vocab = object_names(kind) if kind in ctx.classes else NAMES.get(kind, ("value",))
    if ctx.coined and chance(ctx, ctx.coined):
        name = coined_name(ctx, pick(ctx, vocab))
        if is_free(ctx, name):
            return name
    for name in preferred:
        if name and is_free(ctx, name):
            return name
    for _ in range(8):
        name = compose(ctx, pick(ctx, vocab))
        if is_free(ctx, name):
            return name
    base, n = pick(ctx, vocab), 2
    while not is_free(ctx, f"{base}{n}"):
        n += 1
    return f"{base}{n}"


def snake(name: str) -> str:
    """CamelCase -> snake_case."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def object_names(cls: str) -> tuple[str, ...]:
    """Plausible names for an instance of a class."""
    tail = snake(cls).split("_")[-1]
    return (snake(cls), tail, *(f"{p}_{tail}" for p in OBJECT_PREFIXES))


def loop_name(ctx: Ctx, source: str, kind: str) -> str:
    """A loop variable for iterating over source: its singular when there is one."""
    base = source.split(".")[-1]
    return fresh_name(ctx, kind, (SINGULAR.get(base, ""), *LOOP_NAMES.get(kind, ("item",))))


# ----------------------------------------------------------------------------- expressions

def literal(ctx: Ctx, kind: str, hint: str = "") -> str:
    """A literal of a kind (a constructor call for a class)."""
    if kind == INT:
        return str(pick(ctx, INT_LITERALS))
    if kind == FLOAT:
        return pick(ctx, FLOAT_LITERALS)
    if kind == STR:
        return str_literal(ctx, hint)
    if kind == BOOL:
        return pick(ctx, ("True", "False"))
    if kind in ctx.classes:
        return construct(ctx, kind, 2)
    if chance(ctx, 0.25):
        return EMPTY[kind]
    return collection_literal(ctx, kind, hint)


def collection_literal(ctx: Ctx, kind: str, hint: str = "") -> str:
    """A short non-empty list, dict or set display."""
    n = 2 + ctx.rng.randrange(3 if kind in (INTS, SET) else 2)
    if kind == GRID:
        return "[" + ", ".join(row_literal(ctx, width) for width in [2 + ctx.rng.randrange(2)] * n) + "]"
    if kind == INTS:
        return "[" + ", ".join(str(pick(ctx, INT_LITERALS)) for _ in range(n)) + "]"
    if kind == STRS:
        return "[" + ", ".join(str_literal(ctx, SINGULAR.get(hint, hint)) for _ in range(n)) + "]"
    keys = [lit(ctx, k) for k in distinct(ctx, KEYS, n)]
    if kind == SET:
        return "{" + ", ".join(keys) + "}"
    values = [str(pick(ctx, INT_LITERALS)) for _ in keys]
    if kind == DICT:
        return "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, values)) + "}"
    if chance(ctx, 0.2):  # pairs as a list of lists
        return "[" + ", ".join(f"[{k}, {v}]" for k, v in zip(keys, values)) + "]"
    return "[" + ", ".join(f"({k}, {v})" for k, v in zip(keys, values)) + "]"


def row_literal(ctx: Ctx, width: int) -> str:
    """A row of a grid: a list display of width small ints."""
    return "[" + ", ".join(str(pick(ctx, INT_LITERALS[:10])) for _ in range(width)) + "]"


def atom(ctx: Ctx, kind: str) -> str:
    """A name of a kind in scope (usually), else a literal."""
    names = names_of(ctx, kind)
    if names and chance(ctx, 0.8):
        return recent(ctx, names)
    return literal(ctx, kind)


def name_in_scope(ctx: Ctx, kind: str) -> str | None:
    """A recent readable expression of a kind, or None."""
    names = names_of(ctx, kind)
    return recent(ctx, names) if names else None


def expr(ctx: Ctx, kind: str, depth: int = 0) -> str:
    """An expression of a kind: a name in scope, a production of the grammar, or a literal."""
    names = names_of(ctx, kind)
    if names and chance(ctx, NAME_BIAS[min(depth, 2)]):
        return recent(ctx, names)
    if depth >= 2:
        return literal(ctx, kind)
    if kind in ctx.classes:
        return construct(ctx, kind, depth + 1)
    forms = FORMS[kind]
    for _ in range(4):
        out = choose(ctx, forms)(ctx, depth + 1)
        if out:
            return out
    return literal(ctx, kind)


def condition(ctx: Ctx, depth: int = 1) -> str:
    """A test of something in scope for an if/while/assert (mostly a comparison); "" when none is."""
    flags = names_of(ctx, BOOL)
    if flags and chance(ctx, 0.35):
        return flag_test(ctx, recent(ctx, flags), chance(ctx, 0.3))
    forms = CONDITION_FORMS if depth < 2 else SHALLOW_CONDITION_FORMS
    for _ in range(4):
        form = choose(ctx, forms)
        out = form(ctx, depth)
        if out and form in PREDICATE_FORMS and chance(ctx, BEGINNER_BOOL):
            return f"{out} == {pick(ctx, ('True', 'True', 'False'))}"  # the beginner's `is_valid(x) == True`
        if out:
            return out
    return _b_compare(ctx, depth) or ""


def flag_test(ctx: Ctx, name: str, negate: bool) -> str:
    """`flag` / `not flag`, or rarely the beginner's `flag == True` / `flag == False`."""
    if chance(ctx, BEGINNER_BOOL):
        return f"{name} == {not negate}"
    return f"not {name}" if negate else name


def construct(ctx: Ctx, cls: str, depth: int) -> str:
    """A constructor call of a class of the program."""
    return f"{cls}({arguments(ctx, ctx.classes[cls].params, depth)})"


def arguments(ctx: Ctx, params: list[Param], depth: int) -> str:
    """Call arguments: required ones positional (rarely by keyword), some defaults by keyword."""
    parts, by_keyword = [], False
    for p in params:
        sub = depth + 1 if chance(ctx, 0.4) else 2  # arguments are mostly names or literals
        if p.default:
            if chance(ctx, 0.45):
                parts.append(f"{p.name}={expr(ctx, p.kind, sub)}")
            continue
        value = expr(ctx, p.kind, sub)
        by_keyword = by_keyword or chance(ctx, 0.08)
        parts.append(f"{p.name}={value}" if by_keyword else value)
    return ", ".join(parts)


def public(klass: Klass) -> list[Func]:
    """The methods of a class that code calls by name (not __repr__ / __str__)."""
    return [m for m in klass.methods if not m.name.startswith("__")]


def callables(ctx: Ctx, ret: str) -> list[tuple[str, Func]]:
    """(receiver prefix, function) pairs callable here that return ret."""
    out = [("", f) for f in ctx.funcs if f.ret == ret]
    for obj, klass in objects(ctx):
        out.extend((obj + ".", m) for m in public(klass) if m.ret == ret)
    return out


def call_of(ctx: Ctx, ret: str, depth: int) -> str | None:
    """A call of a function or method of the program that returns ret, or None."""
    found = callables(ctx, ret)
    if not found:
        return None
    prefix, func = pick(ctx, found)
    mark_used(ctx, func.name)
    return f"{prefix}{func.name}({arguments(ctx, func.params, depth)})"


def mark_used(ctx: Ctx, name: str) -> None:
    """Record that a function or class has been used."""
    if name not in ctx.used:
        ctx.used.append(name)


def add_import(ctx: Ctx, name: str) -> None:
    """Record that the program uses an imported name."""
    if name not in ctx.imports:
        ctx.imports.append(name)


def use_import(ctx: Ctx, options: tuple[tuple[str, Callable[[Ctx], str | None]], ...]) -> str | None:
    """An expression using an imported name: one already imported, else rarely a new import."""
    have = [(name, fn) for name, fn in options if name in ctx.imports]
    if not have and not chance(ctx, 0.3):
        return None
    name, fn = pick(ctx, have or options)
    out = fn(ctx)
    if out:
        add_import(ctx, name)
    return out


def comprehension_var(ctx: Ctx, source: str, kind: str) -> str:
    """The loop variable of a comprehension over source."""
    return loop_name(ctx, source, kind)


def int_map(ctx: Ctx, v: str) -> str:
    """An int expression of an int variable v."""
    return pick(ctx, (f"{v} * 2", f"{v} + 1", f"{v} * {v}", f"{v} % 10", f"abs({v})", f"{v} // 2", f"-{v}"))


def int_test(ctx: Ctx, v: str) -> str:
    """A test of an int variable v."""
    other = atom(ctx, INT)
    return pick(ctx, (f"{v} > 0", f"{v} % 2 == 0", f"{v} != 0", f"{v} < 10", f"{v} > {other}", f"{v} >= {other}"))


def str_map(ctx: Ctx, v: str) -> str:
    """A str expression of a str variable v."""
    return pick(ctx, (f"{v}.upper()", f"{v}.lower()", f"{v}.strip()", f"{v}.title()", f"{v}[0]",
                      f"{v}.strip().lower()", f"{v}.replace({lit(ctx, pick(ctx, KEYS))}, {lit(ctx, '')})"))


def str_test(ctx: Ctx, v: str) -> str:
    """A test of a str variable v."""
    return pick(ctx, (v, f"len({v}) > 3", f"{v}.isalpha()", f"{v}.startswith({str_literal(ctx)})",
                      f"not {v}.startswith({lit(ctx, '#')})", f"{v} != {str_literal(ctx)}",
                      f"{v} not in {atom(ctx, SET)}"))


# --- int

def _i_literal(ctx: Ctx, d: int) -> str:
    """A small int literal."""
    return literal(ctx, INT)


def _i_len(ctx: Ctx, d: int) -> str | None:
    """len() of a sized value in scope."""
    found = any_name(ctx, SIZED)
    return f"len({found[0]})" if found else None


def _i_aggregate(ctx: Ctx, d: int) -> str | None:
    """sum/max/min of a list of ints in scope."""
    src = name_in_scope(ctx, INTS)
    return f"{pick(ctx, ('sum', 'max', 'min'))}({src})" if src else None


def _i_sum_generator(ctx: Ctx, d: int) -> str | None:
    """sum() over a generator expression."""
    found = any_name(ctx, (INTS, STRS))
    if not found:
        return None
    src, kind = found
    v = comprehension_var(ctx, src, INT if kind == INTS else STR)
    if kind == INTS:
        return f"sum({int_map(ctx, v)} for {v} in {src})"
    return pick(ctx, (f"sum(len({v}) for {v} in {src})", f"sum(1 for {v} in {src} if {str_test(ctx, v)})"))


def _i_binop(ctx: Ctx, d: int) -> str | None:
    """Arithmetic on an int in scope."""
    a, op = name_in_scope(ctx, INT), pick(ctx, ("+", "-", "*", "+", "//", "%", "-"))
    if not a:
        return None
    b = str(2 + ctx.rng.randrange(9)) if op in ("//", "%") else atom(ctx, INT)
    return f"{a} {op} {'1' if b == a else b}"


def _i_index(ctx: Ctx, d: int) -> str | None:
    """An item of a list of ints in scope."""
    src = name_in_scope(ctx, INTS)
    if not src:
        return None
    idx = pick(ctx, ("0", "-1", "0", *plain_names(ctx, INT)[:2]))
    return f"{src}[{idx}]"


def _i_lookup(ctx: Ctx, d: int) -> str | None:
    """A value of a dict in scope, by [key] or .get(key, 0)."""
    src = name_in_scope(ctx, DICT)
    if not src:
        return None
    key = atom(ctx, STR)
    return f"{src}[{key}]" if chance(ctx, 0.4) else f"{src}.get({key}, 0)"


def _i_call(ctx: Ctx, d: int) -> str | None:
    """A call returning an int."""
    return call_of(ctx, INT, d)


def _i_ternary(ctx: Ctx, d: int) -> str | None:
    """`a if cond else b`."""
    a = name_in_scope(ctx, INT)
    test = condition(ctx, 2) if a else ""
    return f"{a} if {test} else {literal(ctx, INT)}" if test else None


def _i_convert(ctx: Ctx, d: int) -> str | None:
    """int(text) or round(x)."""
    found = any_name(ctx, (STR, FLOAT))
    if not found:
        return None
    return f"int({found[0]})" if found[1] == STR else f"round({found[0]})"


def _i_builtin(ctx: Ctx, d: int) -> str | None:
    """max/min/abs of two ints."""
    a, b = name_in_scope(ctx, INT), atom(ctx, INT)
    if not a:
        return None
    if a == b:
        b = str(pick(ctx, INT_LITERALS))
    return pick(ctx, (f"max({a}, {b})", f"min({a}, {b})", f"abs({a} - {b})"))


def _i_str_method(ctx: Ctx, d: int) -> str | None:
    """A count, position or word count of a str in scope."""
    s = name_in_scope(ctx, STR)
    if not s:
        return None
    return pick(ctx, (f"{s}.count({str_literal(ctx)})", f"{s}.find({str_literal(ctx)})", f"len({s}.split())"))


def _i_pair_field(ctx: Ctx, d: int) -> str | None:
    """The number of the first pair."""
    src = name_in_scope(ctx, PAIRS)
    return f"{src}[0][1]" if src else None


def _i_cell(ctx: Ctx, d: int) -> str | None:
    """A cell of a grid, a row's length, or a total over the rows."""
    src = name_in_scope(ctx, GRID)
    if not src:
        return None
    idx = plain_names(ctx, INT)[:2]
    i, j = idx if len(idx) == 2 and chance(ctx, 0.4) else ("0", pick(ctx, ("0", "1", "-1")))
    return pick(ctx, (f"{src}[{i}][{j}]", f"{src}[{i}][{j}]", f"len({src}[0])", f"sum(sum(row) for row in {src})",
                      f"max(max(row) for row in {src})"))


def _i_module(ctx: Ctx, d: int) -> str | None:
    """An int from random, math or sys."""
    return use_import(ctx, (
        ("random", lambda c: f"random.randint(1, {pick(c, (6, 10, 100))})"),
        ("math", lambda c: f"math.{pick(c, ('floor', 'ceil'))}({atom(c, FLOAT)})"),
        ("sys", lambda c: "len(sys.argv)"),
    ))


# --- float

def _f_literal(ctx: Ctx, d: int) -> str:
    """A float literal."""
    return literal(ctx, FLOAT)


def _f_divide(ctx: Ctx, d: int) -> str | None:
    """True division of ints."""
    a, b = name_in_scope(ctx, INT), atom(ctx, INT)
    return f"{a} / {b if b != a else '2'}" if a else None


def _f_average(ctx: Ctx, d: int) -> str | None:
    """sum(xs) / len(xs)."""
    src = name_in_scope(ctx, INTS)
    return f"sum({src}) / len({src})" if src else None


def _f_scale(ctx: Ctx, d: int) -> str | None:
    """A number scaled or shifted by a float."""
    found = any_name(ctx, (FLOAT, INT))
    if not found:
        return None
    other = atom(ctx, FLOAT)
    return f"{found[0]} {pick(ctx, ('*', '*', '+', '-'))} {other if other != found[0] else '2'}"


def _f_round(ctx: Ctx, d: int) -> str | None:
    """round(x, 2)."""
    x = name_in_scope(ctx, FLOAT)
    return f"round({x}, 2)" if x else None


def _f_convert(ctx: Ctx, d: int) -> str | None:
    """float(x)."""
    found = any_name(ctx, (STR, INT))
    return f"float({found[0]})" if found else None


def _f_call(ctx: Ctx, d: int) -> str | None:
    """A call returning a float."""
    return call_of(ctx, FLOAT, d)


def _f_ternary(ctx: Ctx, d: int) -> str | None:
    """`x if cond else 0.5`."""
    x = name_in_scope(ctx, FLOAT)
    test = condition(ctx, 2) if x else ""
    return f"{x} if {test} else {literal(ctx, FLOAT)}" if test else None


def _f_module(ctx: Ctx, d: int) -> str | None:
    """A float from math, time or random."""
    return use_import(ctx, (
        ("math", lambda c: f"math.sqrt({atom(c, INT)})"),
        ("math", lambda c: f"math.pi * {atom(c, FLOAT)} ** 2"),
        ("time", lambda c: "time.time()"),
        ("random", lambda c: "random.random()"),
    ))


# --- str

def _s_literal(ctx: Ctx, d: int) -> str:
    """A str literal."""
    return str_literal(ctx)


def _s_fstring(ctx: Ctx, d: int) -> str | None:
    """An f-string over names in scope."""
    return interpolate(ctx, "f")


def _s_format(ctx: Ctx, d: int) -> str | None:
    """A str.format call over names in scope."""
    return interpolate(ctx, "format")


def _s_method(ctx: Ctx, d: int) -> str | None:
    """A str method call (upper, strip, ...)."""
    s = name_in_scope(ctx, STR)
    return str_map(ctx, s) if s else None


def _s_concat(ctx: Ctx, d: int) -> str | None:
    """String concatenation."""
    a = name_in_scope(ctx, STR)
    if not a:
        return None
    if chance(ctx, 0.5):
        return f"{a} + {str_literal(ctx)}"
    return f"{a} + {lit(ctx, pick(ctx, (' ', '_', '-', ': ', '/')))} + {atom(ctx, STR)}"


def _s_join(ctx: Ctx, d: int) -> str | None:
    """sep.join(strings)."""
    src = name_in_scope(ctx, STRS)
    if not src:
        return None
    return f"{lit(ctx, pick(ctx, (', ', ' ', chr(92) + 'n', '', ',', ' | ')))}.join({src})"


def _s_str(ctx: Ctx, d: int) -> str | None:
    """str(number)."""
    found = any_name(ctx, (INT, FLOAT))
    return f"str({found[0]})" if found else None


def _s_index(ctx: Ctx, d: int) -> str | None:
    """An item of a list of str in scope."""
    src = name_in_scope(ctx, STRS)
    if not src:
        return None
    return f"{src}[{pick(ctx, ('0', '-1', '0', *plain_names(ctx, INT)[:1]))}]"


def _s_slice(ctx: Ctx, d: int) -> str | None:
    """A slice of a str in scope."""
    s = name_in_scope(ctx, STR)
    return f"{s}[{pick(ctx, (':3', '1:', '::-1', ':-1', ':10'))}]" if s else None


def _s_call(ctx: Ctx, d: int) -> str | None:
    """A call returning a str."""
    return call_of(ctx, STR, d)


def _s_ternary(ctx: Ctx, d: int) -> str | None:
    """`'a' if cond else 'b'`."""
    a, b = distinct(ctx, WORDS[:32], 2)
    test = condition(ctx, 2)
    return f"{lit(ctx, a)} if {test} else {lit(ctx, b)}" if test else None


def _s_pair_field(ctx: Ctx, d: int) -> str | None:
    """The key of the first pair."""
    src = name_in_scope(ctx, PAIRS)
    return f"{src}[0][0]" if src else None


def _s_longest(ctx: Ctx, d: int) -> str | None:
    """max/min(words, key=len)."""
    src = name_in_scope(ctx, STRS)
    return f"{pick(ctx, ('max', 'min'))}({src}, key=len)" if src else None


def _s_module(ctx: Ctx, d: int) -> str | None:
    """A str from os, pathlib, json or random."""
    return use_import(ctx, (
        ("os", lambda c: f"os.path.join({path_expr(c)}, {lit(c, pick(c, FILENAMES))})"),
        ("os", lambda c: f"os.path.basename({path_expr(c)})"),
        ("os", lambda c: f"os.environ.get({lit(c, pick(c, ('HOME', 'USER', 'DEBUG')))}, {lit(c, '')})"),
        ("Path", lambda c: f"Path({path_expr(c)}).{pick(c, ('name', 'stem', 'suffix'))}"),
        ("json", lambda c: f"json.dumps({atom(c, DICT)}{pick(c, ('', ', indent=2'))})"),
        ("random", lambda c: f"random.choice({name_in_scope(c, STRS) or literal(c, STRS)})"),
    ))


# --- bool

def _b_literal(ctx: Ctx, d: int) -> str:
    """True or False."""
    return literal(ctx, BOOL)


def _b_compare(ctx: Ctx, d: int) -> str | None:
    """A comparison of a name in scope with a value."""
    found = any_name(ctx, (INT, INT, INT, STR, FLOAT))
    if not found:
        return None
    a, kind = found
    if kind == STR:
        return f"{a} {pick(ctx, ('==', '!='))} {str_literal(ctx)}"
    b = atom(ctx, kind)
    if b == a:
        b = literal(ctx, kind)
    return f"{a} {pick(ctx, ('<', '<=', '>', '>=', '==', '!=', '>', '<'))} {b}"


def _b_member(ctx: Ctx, d: int) -> str | None:
    """`x in collection` / `not in`."""
    found = any_name(ctx, (INTS, STRS, DICT, SET))
    if not found:
        return None
    src, kind = found
    item = atom(ctx, INT if kind == INTS else STR)
    return f"{item} {'not in' if chance(ctx, 0.3) else 'in'} {src}"


def _b_not(ctx: Ctx, d: int) -> str | None:
    """`not x`."""
    found = any_name(ctx, (BOOL, INTS, STRS, DICT))
    return f"not {found[0]}" if found else None


def _b_logic(ctx: Ctx, d: int) -> str | None:
    """`a and b` / `a or b`."""
    first = _b_compare(ctx, 2)
    second = condition(ctx, 2) if first else ""
    return f"{first} {pick(ctx, ('and', 'or'))} {second}" if second else None


def _b_none(ctx: Ctx, d: int) -> str | None:
    """`x is None` / `is not None`."""
    found = objects(ctx)
    obj = pick(ctx, found)[0] if found else None
    if obj and obj != "self":
        return f"{obj} is {pick(ctx, ('None', 'not None'))}"
    src = name_in_scope(ctx, DICT)
    if src:
        return f"{src}.get({atom(ctx, STR)}) is {pick(ctx, ('None', 'not None'))}"
    return None


def _b_str_test(ctx: Ctx, d: int) -> str | None:
    """startswith/endswith/isdigit/... of a str."""
    s = name_in_scope(ctx, STR)
    if not s:
        return None
    suffix = lit(ctx, pick(ctx, (".txt", ".py", "!", "s")))
    return pick(ctx, (f"{s}.startswith({str_literal(ctx)})", f"{s}.endswith({suffix})",
                      f"{s}.isdigit()", f"{s}.isalpha()", f"{s}.islower()"))


def _b_isinstance(ctx: Ctx, d: int) -> str | None:
    """isinstance(x, type)."""
    found = any_name(ctx, (INT, STR, FLOAT, INTS, DICT))
    if not found:
        return None
    return f"isinstance({found[0]}, {TYPE_NAMES[found[1]].split('[')[0]})"


def _b_any_all(ctx: Ctx, d: int) -> str | None:
    """any()/all() over a generator expression."""
    found = any_name(ctx, (INTS, STRS))
    if not found:
        return None
    src, kind = found
    v = comprehension_var(ctx, src, INT if kind == INTS else STR)
    test = int_test(ctx, v) if kind == INTS else str_test(ctx, v)
    return f"{pick(ctx, ('any', 'all'))}({test} for {v} in {src})"


def _b_sized(ctx: Ctx, d: int) -> str | None:
    """A test of a collection's length."""
    found = any_name(ctx, (INTS, STRS, DICT, SET))
    if not found:
        return None
    return pick(ctx, (f"len({found[0]}) == 0", f"len({found[0]}) > 0", f"len({found[0]}) > {atom(ctx, INT)}"))


def _b_chain(ctx: Ctx, d: int) -> str | None:
    """`0 <= x < n`."""
    x = name_in_scope(ctx, INT)
    return f"0 <= {x} < {other_int(ctx, x)}" if x else None


def _b_call(ctx: Ctx, d: int) -> str | None:
    """A call returning a bool."""
    return call_of(ctx, BOOL, d)


def _b_module(ctx: Ctx, d: int) -> str | None:
    """A path test with os.path or pathlib."""
    return use_import(ctx, (
        ("os", lambda c: f"os.path.exists({path_expr(c)})"),
        ("Path", lambda c: f"Path({path_expr(c)}).exists()"),
    ))


# --- list of int

def _li_literal(ctx: Ctx, d: int) -> str:
    """A list display of ints."""
    return collection_literal(ctx, INTS)


def _li_map(ctx: Ctx, d: int) -> str | None:
    """A list comprehension mapping a list."""
    found = any_name(ctx, (INTS, STRS))
    if not found:
        return None
    src, kind = found
    if kind == INTS:
        v = comprehension_var(ctx, src, INT)
        return f"[{int_map(ctx, v)} for {v} in {src}]"
    v = comprehension_var(ctx, src, STR)
    return f"[{pick(ctx, ('len', 'int', 'len'))}({v}) for {v} in {src}]"


def _li_filter(ctx: Ctx, d: int) -> str | None:
    """A list comprehension filtering a list of ints."""
    src = name_in_scope(ctx, INTS)
    if not src:
        return None
    v = comprehension_var(ctx, src, INT)
    return f"[{v} for {v} in {src} if {int_test(ctx, v)}]"


def _li_sorted(ctx: Ctx, d: int) -> str | None:
    """A sorted or reversed list of ints."""
    src = name_in_scope(ctx, INTS)
    if not src:
        return None
    return pick(ctx, (f"sorted({src})", f"sorted({src}, reverse=True)", f"list(reversed({src}))"))


def _li_range(ctx: Ctx, d: int) -> str:
    """A list built from range() or repetition."""
    n = atom(ctx, INT)
    return pick(ctx, (f"list(range({n}))", f"list(range(1, {n} + 1))", f"[0] * {n}"))


def _li_slice(ctx: Ctx, d: int) -> str | None:
    """A slice of a list of ints."""
    src = name_in_scope(ctx, INTS)
    if not src:
        return None
    n = pick(ctx, ("2", "3", *plain_names(ctx, INT)[:1]))
    return f"{src}[{pick(ctx, ('1:', ':' + n, '::2', '1:-1', n + ':'))}]"


def _li_values(ctx: Ctx, d: int) -> str | None:
    """list(d.values())."""
    src = name_in_scope(ctx, DICT)
    return f"list({src}.values())" if src else None


def _li_concat(ctx: Ctx, d: int) -> str | None:
    """Two lists concatenated."""
    src = name_in_scope(ctx, INTS)
    return f"{src} + {literal(ctx, INTS)}" if src else None


def _li_zip(ctx: Ctx, d: int) -> str | None:
    """A list comprehension over zip() of two lists."""
    names = names_of(ctx, INTS)
    if len(names) < 2:
        return None
    a, b = distinct(ctx, names, 2)
    x, y = (pick(ctx, (("a", "b"), ("x", "y"), ("left", "right"))))
    return f"[{x} {pick(ctx, ('+', '*', '-'))} {y} for {x}, {y} in zip({a}, {b})]"


def _li_call(ctx: Ctx, d: int) -> str | None:
    """A call returning a list of ints."""
    return call_of(ctx, INTS, d)


def _li_functional(ctx: Ctx, d: int) -> str | None:
    """list(map(lambda ...)) or list(filter(lambda ...))."""
    src = name_in_scope(ctx, INTS)
    if not src:
        return None
    if chance(ctx, 0.5):
        return f"list(map(lambda x: {int_map(ctx, 'x')}, {src}))"
    return f"list(filter(lambda x: {int_test(ctx, 'x')}, {src}))"


def _li_row(ctx: Ctx, d: int) -> str | None:
    """A row or a column of a grid, or a total per row."""
    src = name_in_scope(ctx, GRID)
    if not src:
        return None
    return pick(ctx, (f"{src}[0]", f"{src}[-1]", f"[sum(row) for row in {src}]", f"[row[0] for row in {src}]",
                      f"[max(row) for row in {src}]"))


# --- list of str

def _ls_literal(ctx: Ctx, d: int) -> str:
    """A list display of str."""
    return collection_literal(ctx, STRS)


def _ls_split(ctx: Ctx, d: int) -> str | None:
    """text.split(...) or .splitlines()."""
    s = name_in_scope(ctx, STR)
    if not s:
        return None
    return pick(ctx, (f"{s}.split()", f"{s}.split({lit(ctx, pick(ctx, (',', ' ', ':', '/')))})", f"{s}.splitlines()"))


def _ls_keys(ctx: Ctx, d: int) -> str | None:
    """The keys of a dict or set as a list."""
    found = any_name(ctx, (DICT, SET))
    if not found:
        return None
    src, kind = found
    return pick(ctx, (f"sorted({src})", f"list({src})") + ((f"list({src}.keys())",) if kind == DICT else ()))


def _ls_map(ctx: Ctx, d: int) -> str | None:
    """A list comprehension producing str."""
    found = any_name(ctx, (STRS, INTS, PAIRS))
    if not found:
        return None
    src, kind = found
    if kind == PAIRS:
        a, _ = pick(ctx, PAIR_NAMES)
        return f"[{a} for {a}, _ in {src}]"
    v = comprehension_var(ctx, src, INT if kind == INTS else STR)
    return f"[str({v}) for {v} in {src}]" if kind == INTS else f"[{str_map(ctx, v)} for {v} in {src}]"


def _ls_filter(ctx: Ctx, d: int) -> str | None:
    """A list comprehension filtering a list of str."""
    src = name_in_scope(ctx, STRS)
    if not src:
        return None
    v = comprehension_var(ctx, src, STR)
    return f"[{v} for {v} in {src} if {str_test(ctx, v)}]"


def _ls_sorted(ctx: Ctx, d: int) -> str | None:
    """sorted(words, key=...)."""
    src = name_in_scope(ctx, STRS)
    if not src:
        return None
    key = pick(ctx, ("", ", key=len", ", key=str.lower", ", key=lambda s: s[-1]", ", reverse=True",
                     ", key=lambda w: (len(w), w)"))
    return f"sorted({src}{key})"


def _ls_slice(ctx: Ctx, d: int) -> str | None:
    """A slice of a list of str."""
    src = name_in_scope(ctx, STRS)
    return f"{src}[{pick(ctx, ('1:', ':2', ':3', '::-1', '-2:'))}]" if src else None


def _ls_call(ctx: Ctx, d: int) -> str | None:
    """A call returning a list of str."""
    return call_of(ctx, STRS, d)


def _ls_module(ctx: Ctx, d: int) -> str | None:
    """A list of str from re, sys or os."""
    return use_import(ctx, (
        ("re", lambda c: f"re.findall(r{lit(c, pick(c, (chr(92) + 'w+', chr(92) + 'd+', '[a-z]+')))}, {atom(c, STR)})"),
        ("sys", lambda c: "sys.argv[1:]"),
        ("os", lambda c: f"os.listdir({path_expr(c, True)})"),
    ))


# --- dict of str -> int

def _d_literal(ctx: Ctx, d: int) -> str:
    """A dict display."""
    return collection_literal(ctx, DICT)


def _d_comprehension(ctx: Ctx, d: int) -> str | None:
    """A dict comprehension."""
    found = any_name(ctx, (STRS, DICT))
    if not found:
        return None
    src, kind = found
    if kind == DICT:
        k, v = pick(ctx, PAIR_NAMES)
        body = pick(ctx, (f"{v} * 2", f"{v} + 1", v, f"-{v}"))
        cond = f" if {v} > {atom(ctx, INT)}" if chance(ctx, 0.4) else ""
        return f"{{{k}: {body} for {k}, {v} in {src}.items(){cond}}}"
    w = comprehension_var(ctx, src, STR)
    if chance(ctx, 0.25):
        i = pick(ctx, INDEX_NAMES)
        return f"{{{w}: {i} for {i}, {w} in enumerate({src})}}"
    return f"{{{w}: {pick(ctx, (f'len({w})', '0', f'{w}.count({lit(ctx, pick(ctx, KEYS))})'))} for {w} in {src}}}"


def _d_zip(ctx: Ctx, d: int) -> str | None:
    """dict(zip(keys, values)) or dict(pairs)."""
    keys, values = name_in_scope(ctx, STRS), name_in_scope(ctx, INTS)
    if keys and values:
        return f"dict(zip({keys}, {values}))"
    src = name_in_scope(ctx, PAIRS)
    return f"dict({src})" if src else None


def _d_copy(ctx: Ctx, d: int) -> str | None:
    """A copy of a dict in scope."""
    src = name_in_scope(ctx, DICT)
    return pick(ctx, (f"dict({src})", f"{src}.copy()")) if src else None


def _d_call(ctx: Ctx, d: int) -> str | None:
    """A call returning a dict."""
    return call_of(ctx, DICT, d)


def _d_module(ctx: Ctx, d: int) -> str | None:
    """defaultdict(int), Counter(words) or json.loads(text)."""
    return use_import(ctx, (
        ("defaultdict", lambda c: "defaultdict(int)"),
        ("Counter", lambda c: f"Counter({name_in_scope(c, STRS) or atom(c, STR)})"),
        ("json", lambda c: f"json.loads({atom(c, STR)})"),
    ))


# --- set of str

def _set_literal(ctx: Ctx, d: int) -> str:
    """A set display."""
    return collection_literal(ctx, SET)


def _set_from(ctx: Ctx, d: int) -> str | None:
    """set(collection)."""
    found = any_name(ctx, (STRS, DICT))
    return f"set({found[0]})" if found else None


def _set_comprehension(ctx: Ctx, d: int) -> str | None:
    """A set comprehension."""
    src = name_in_scope(ctx, STRS)
    if not src:
        return None
    v = comprehension_var(ctx, src, STR)
    return f"{{{str_map(ctx, v)} for {v} in {src}}}"


def _set_ops(ctx: Ctx, d: int) -> str | None:
    """Union, intersection or difference of two sets."""
    names = names_of(ctx, SET)
    if len(names) < 2:
        return None
    a, b = distinct(ctx, names, 2)
    return f"{a} {pick(ctx, ('|', '&', '-'))} {b}"


def _set_call(ctx: Ctx, d: int) -> str | None:
    """A call returning a set."""
    return call_of(ctx, SET, d)


# --- list of (str, int) pairs

def _p_literal(ctx: Ctx, d: int) -> str:
    """A list of (str, int) tuples."""
    return collection_literal(ctx, PAIRS)


def _p_sorted_items(ctx: Ctx, d: int) -> str | None:
    """d.items(), sorted by value with a lambda key."""
    src = name_in_scope(ctx, DICT)
    if not src:
        return None
    if chance(ctx, 0.3):
        return f"list({src}.items())"
    v = pick(ctx, ("item", "kv", "pair", "entry"))
    rev = ", reverse=True" if chance(ctx, 0.5) else ""
    return f"sorted({src}.items(), key=lambda {v}: {v}[1]{rev})"


def _p_zip(ctx: Ctx, d: int) -> str | None:
    """list(zip(keys, values))."""
    keys, values = name_in_scope(ctx, STRS), name_in_scope(ctx, INTS)
    return f"list(zip({keys}, {values}))" if keys and values else None


def _p_comprehension(ctx: Ctx, d: int) -> str | None:
    """[(w, len(w)) for w in words]."""
    src = name_in_scope(ctx, STRS)
    if not src:
        return None
    v = comprehension_var(ctx, src, STR)
    return f"[({v}, len({v})) for {v} in {src}]"


def _p_slice(ctx: Ctx, d: int) -> str | None:
    """The first pairs, or the pairs sorted."""
    src = name_in_scope(ctx, PAIRS)
    if not src:
        return None
    return pick(ctx, (f"{src}[:3]", f"sorted({src})", f"sorted({src}, key=lambda p: p[1], reverse=True)"))


def _p_call(ctx: Ctx, d: int) -> str | None:
    """A call returning pairs."""
    return call_of(ctx, PAIRS, d)


def _p_module(ctx: Ctx, d: int) -> str | None:
    """Counter(words).most_common(n)."""
    return use_import(ctx, (("Counter", lambda c: f"Counter({atom(c, STRS)}).most_common({pick(c, (1, 3, 5))})"),))


# --- list of lists of int

def _g_literal(ctx: Ctx, d: int) -> str:
    """A nested list display: [[1, 2], [3, 4]]."""
    return collection_literal(ctx, GRID)


def _g_zeros(ctx: Ctx, d: int) -> str:
    """rows x cols zeros, built with a comprehension."""
    rows, cols = atom(ctx, INT), str(pick(ctx, (2, 3, 3, 4, 5)))
    return pick(ctx, (f"[[0] * {cols} for _ in range({rows})]", f"[[0 for _ in range({cols})] for _ in range({rows})]"))


def _g_chunks(ctx: Ctx, d: int) -> str | None:
    """A list of ints cut into rows of n, or lists of ints put together."""
    names = names_of(ctx, INTS)
    if not names:
        return None
    if len(names) >= 2 and chance(ctx, 0.4):
        return "[" + ", ".join(distinct(ctx, names, 2)) + "]"
    src, n = recent(ctx, names), pick(ctx, ("2", "3"))
    return f"[{src}[i:i + {n}] for i in range(0, len({src}), {n})]"


def _g_copy(ctx: Ctx, d: int) -> str | None:
    """A copy or the transpose of a grid."""
    src = name_in_scope(ctx, GRID)
    if not src:
        return None
    return pick(ctx, (f"[row[:] for row in {src}]", f"[list(row) for row in zip(*{src})]",
                      f"[[x * 2 for x in row] for row in {src}]"))


def _g_call(ctx: Ctx, d: int) -> str | None:
    """A call returning a grid."""
    return call_of(ctx, GRID, d)


FORMS: dict[str, tuple[tuple[float, Callable[[Ctx, int], str | None]], ...]] = {
    INT: ((2.0, _i_literal), (2.0, _i_len), (1.8, _i_aggregate), (0.6, _i_sum_generator),
          (2.5, _i_binop), (1.0, _i_index), (1.0, _i_lookup), (2.0, _i_call), (0.6, _i_ternary),
          (0.5, _i_convert), (0.8, _i_builtin), (0.4, _i_str_method), (0.3, _i_pair_field),
          (0.4, _i_module), (0.6, _i_cell)),
    FLOAT: ((2.0, _f_literal), (1.0, _f_divide), (1.2, _f_average), (1.5, _f_scale), (0.8, _f_round),
            (0.4, _f_convert), (1.5, _f_call), (0.5, _f_ternary), (0.5, _f_module)),
    STR: ((2.0, _s_literal), (2.0, _s_fstring), (0.8, _s_format), (1.2, _s_method), (1.0, _s_concat),
          (1.0, _s_join), (0.5, _s_str), (0.8, _s_index), (0.9, _s_slice), (2.0, _s_call),
          (0.7, _s_ternary), (0.3, _s_pair_field), (0.3, _s_longest), (0.6, _s_module)),
    BOOL: ((0.6, _b_literal), (3.0, _b_compare), (1.5, _b_member), (0.8, _b_not), (0.8, _b_logic),
           (0.6, _b_none), (0.8, _b_str_test), (0.3, _b_isinstance), (0.6, _b_any_all), (0.8, _b_sized),
           (0.3, _b_chain), (2.0, _b_call), (0.3, _b_module)),
    INTS: ((1.2, _li_literal), (2.0, _li_map), (1.5, _li_filter), (1.2, _li_sorted), (1.0, _li_range),
           (1.0, _li_slice), (0.6, _li_values), (0.3, _li_concat), (0.5, _li_zip), (2.0, _li_call), (0.5, _li_functional),
           (0.6, _li_row)),
    STRS: ((1.2, _ls_literal), (1.2, _ls_split), (0.8, _ls_keys), (1.5, _ls_map), (1.5, _ls_filter),
           (1.2, _ls_sorted), (0.8, _ls_slice), (2.0, _ls_call), (0.4, _ls_module)),
    DICT: ((1.5, _d_literal), (2.0, _d_comprehension), (0.8, _d_zip), (0.4, _d_copy), (2.0, _d_call),
           (0.6, _d_module)),
    SET: ((1.2, _set_literal), (1.2, _set_from), (1.8, _set_comprehension), (0.5, _set_ops), (1.5, _set_call)),
    PAIRS: ((1.0, _p_literal), (2.0, _p_sorted_items), (1.0, _p_zip), (1.0, _p_comprehension),
            (0.6, _p_slice), (1.5, _p_call), (0.3, _p_module)),
    GRID: ((2.0, _g_literal), (1.5, _g_zeros), (0.8, _g_chunks), (0.6, _g_copy), (1.5, _g_call)),
}
DERIVATIONS: dict[str, tuple[tuple[str, Callable[[Ctx, int], str | None]], ...]] = {  # source kind -> ways
    INTS: ((INTS, _li_map), (INTS, _li_filter), (INTS, _li_sorted), (INT, _i_aggregate), (FLOAT, _f_average),
           (INTS, _li_slice), (INTS, _li_zip), (INT, _i_sum_generator)),
    STRS: ((STRS, _ls_map), (STRS, _ls_filter), (STRS, _ls_sorted), (SET, _set_comprehension), (SET, _set_from),
           (DICT, _d_comprehension), (PAIRS, _p_comprehension), (STR, _s_join), (PAIRS, _p_zip)),
    DICT: ((PAIRS, _p_sorted_items), (DICT, _d_comprehension), (STRS, _ls_keys), (INTS, _li_values)),
    SET: ((STRS, _ls_keys), (SET, _set_ops), (SET, _set_comprehension)),
    PAIRS: ((DICT, _d_zip), (STRS, _ls_map), (PAIRS, _p_slice)),
    GRID: ((INTS, _li_row), (INT, _i_cell), (GRID, _g_copy)),
}
CONDITION_FORMS = tuple((w, f) for w, f in FORMS[BOOL] if f is not _b_literal)
SHALLOW_CONDITION_FORMS = tuple((w, f) for w, f in CONDITION_FORMS if f is not _b_logic)
PREDICATE_FORMS = (_b_call, _b_str_test)  # bool-valued calls, sometimes compared with True / False


# ----------------------------------------------------------------------------- simple statements

def pick_kind(ctx: Ctx) -> str:
    """The kind of a new variable: one of the base kinds or a class of the program."""
    table = list(KIND_WEIGHTS) + [(name, 1.2) for name in ctx.classes if name != ctx.current_class]
    return choose_kind(ctx, table)


def bind(ctx: Ctx, kind: str, value: str, preferred: tuple[str, ...] = ()) -> str:
    """Emit `name = value` for a new name of a kind; return the name."""
    name = fresh_name(ctx, kind, preferred)
    emit(ctx, f"{name} = {value}")
    define(ctx, name, kind)
    return name


def st_assign(ctx: Ctx) -> bool:
    """`name = <expr>` binding a new name."""
    kind = pick_kind(ctx)
    if chance(ctx, 0.2):
        name = fresh_name(ctx, kind)
        value = literal(ctx, kind, name)  # fits the name: a file name for `path`, a color for `color`
    else:
        value = expr(ctx, kind)
        name = fresh_name(ctx, kind)
    emit(ctx, f"{name} = {value}")
    define(ctx, name, kind)
    return True


def st_derive(ctx: Ctx) -> bool:
    """`name = <expr>` computing a new value from a collection in scope (a comprehension, sorted, ...)."""
    found = any_name(ctx, tuple(DERIVATIONS))
    if not found:
        return False
    kind, production = pick(ctx, DERIVATIONS[found[1]])
    value = production(ctx, 1)
    if not value:
        return False
    bind(ctx, kind, value)
    return True


def st_reassign(ctx: Ctx) -> bool:
    """`name = <expr>` rebinding a name or attribute in scope."""
    found = [(t, k) for k in (INT, STR, FLOAT, BOOL, INTS, STRS) for t in targets_of(ctx, k)]
    if not found:
        return False
    target, kind = pick(ctx, found)
    value = expr(ctx, kind, 1)
    if value == target:
        return False
    emit(ctx, f"{target} = {value}")
    return True


def st_augment(ctx: Ctx) -> bool:
    """`x += ...` and friends on a number, string or list in scope."""
    found = [(t, k) for k in (INT, INT, FLOAT, STR) for t in targets_of(ctx, k)[:3]]
    if not found:
        return False
    target, kind = pick(ctx, found)
    other = atom(ctx, kind)
    if other == target:
        other = literal(ctx, kind)
    if kind == INT:
        line = pick(ctx, (f"{target} += 1", f"{target} += {other}", f"{target} -= 1", f"{target} *= 2",
                          f"{target} -= {other}", f"{target} //= 2"))
    elif kind == FLOAT:
        line = pick(ctx, (f"{target} *= {other}", f"{target} += {other}", f"{target} /= 2"))
    else:
        line = f"{target} += {pick(ctx, (str_literal(ctx), other, lit(ctx, chr(92) + 'n')))}"
    emit(ctx, line)
    return True


def st_mutate(ctx: Ctx) -> bool:
    """A method call or item assignment that changes a list, dict or set in scope."""
    found = any_target(ctx, (INTS, STRS, DICT, SET, PAIRS, GRID))
    if not found:
        return False
    target, kind = found
    if kind == GRID:
        i, j = pick(ctx, ("0", "1", "-1", *plain_names(ctx, INT)[:1])), pick(ctx, ("0", "1"))
        line = pick(ctx, (f"{target}[{i}][{j}] = {atom(ctx, INT)}", f"{target}[{i}][{j}] += 1",
                          f"{target}.append({pick(ctx, (row_literal(ctx, 2), atom(ctx, INTS)))})"))
    elif kind in (INTS, STRS):
        item = INT if kind == INTS else STR
        line = pick(ctx, (f"{target}.append({expr(ctx, item, 1)})", f"{target}.append({atom(ctx, item)})",
                          f"{target}.sort()", f"{target}.extend({literal(ctx, kind)})",
                          f"{target}.insert(0, {atom(ctx, item)})", f"{target}.pop()", f"{target}.reverse()"))
    elif kind == DICT:
        key = atom(ctx, STR)
        line = pick(ctx, (f"{target}[{key}] = {expr(ctx, INT, 1)}", f"{target}[{key}] = {target}.get({key}, 0) + 1",
                          f"{target}[{key}] += 1", f"{target}.pop({key}, None)", f"del {target}[{key}]",
                          f"{target}.update({collection_literal(ctx, DICT)})", f"{target}.setdefault({key}, 0)"))
    elif kind == SET:
        line = pick(ctx, (f"{target}.add({atom(ctx, STR)})", f"{target}.add({atom(ctx, STR)})",
                          f"{target}.discard({atom(ctx, STR)})", f"{target}.update({atom(ctx, STRS)})"))
    else:
        line = f"{target}.append(({atom(ctx, STR)}, {atom(ctx, INT)}))"
    emit(ctx, line)
    return True


def any_target(ctx: Ctx, kinds: Sequence[str]) -> tuple[str, str] | None:
    """(assignable expression, kind) of one of the kinds, most recent favoured."""
    found = [(t, k) for k in kinds for t in targets_of(ctx, k)[:3]]
    return pick(ctx, found) if found else None


def st_print(ctx: Ctx) -> bool:
    """A print call: of a value, a label and a value, an f-string, with sep=/end=/file= sometimes."""
    form = ctx.rng.random()
    if form < 0.35:
        text = interpolate(ctx, "format" if chance(ctx, 0.15) else "f") or str_literal(ctx)
        emit(ctx, f"print({text})")
    elif form < 0.6:
        kind = pick(ctx, (INT, STR, FLOAT, INTS, STRS, DICT, BOOL, *ctx.classes))
        emit(ctx, f"print({expr(ctx, kind, 1)})")
    elif form < 0.8:
        found = any_name(ctx, (INT, STR, FLOAT, INTS, DICT))
        value = found[0] if found else atom(ctx, INT)
        emit(ctx, f"print({lit(ctx, pick(ctx, LABELS) + ':')}, {value})")
    elif form < 0.9:
        found = any_name(ctx, (INTS, STRS))
        if not found:
            return False
        emit(ctx, f"print(*{found[0]}, sep={lit(ctx, pick(ctx, (', ', ' ', chr(92) + 'n')))})")
    else:
        end = f"end={lit(ctx, pick(ctx, (' ', '', ', ')))}"
        if "sys" in ctx.imports:
            end = "file=sys.stderr"
        emit(ctx, f"print({atom(ctx, pick(ctx, (INT, STR)))}, {end})")
    return True


def st_call(ctx: Ctx) -> bool:
    """A call of a function or method of the program: as a statement, printed, or stored."""
    found = [("", f) for f in ctx.funcs]
    for obj, klass in objects(ctx):
        found.extend((obj + ".", m) for m in public(klass))
    if not found:
        return False
    fresh = [(p, f) for p, f in found if f.name not in ctx.used]
    prefix, func = pick(ctx, fresh) if fresh and chance(ctx, 0.7) else pick(ctx, found)
    return call_stmt(ctx, prefix, func)


def call_stmt(ctx: Ctx, prefix: str, func: Func) -> bool:
    """Emit a statement calling func: alone when it returns nothing, else stored or printed."""
    mark_used(ctx, func.name)
    call = f"{prefix}{func.name}({arguments(ctx, func.params, 0)})"
    if not func.ret:
        emit(ctx, call)
    elif chance(ctx, 0.3):
        emit(ctx, f"print({call})")
    else:
        bind(ctx, func.ret, call, (func.noun, "result") if chance(ctx, 0.7) else ())
    return True


def st_instantiate(ctx: Ctx) -> bool:
    """`obj = ClassName(...)` for a class of the program, favouring unused ones."""
    names = [n for n in ctx.classes if n != ctx.current_class]
    if not names:
        return False
    fresh = [n for n in names if n not in ctx.used]
    cls = pick(ctx, fresh or names)
    mark_used(ctx, cls)
    bind(ctx, cls, construct(ctx, cls, 0))
    return True


def st_swap(ctx: Ctx) -> bool:
    """`a, b = b, a` for two names of a kind, or two items of a list."""
    for kind in distinct(ctx, (INT, STR, INTS, FLOAT), 4):
        names = targets_of(ctx, kind)
        if len(names) >= 2:
            a, b = names[0], pick(ctx, names[1:])
            emit(ctx, f"{a}, {b} = {b}, {a}")
            return True
    src, idx = name_in_scope(ctx, INTS), plain_names(ctx, INT)
    if src and idx:
        i = idx[0]
        emit(ctx, f"{src}[{i}], {src}[{i} + 1] = {src}[{i} + 1], {src}[{i}]")
        return True
    return False


def st_unpack(ctx: Ctx) -> bool:
    """Tuple unpacking into new names: of a tuple display, divmod, a pair, or a list head."""
    form = ctx.rng.random()
    pairs, seq = name_in_scope(ctx, PAIRS), any_name(ctx, (INTS, STRS))
    if form < 0.25 and pairs:
        names, kinds = pick(ctx, PAIR_NAMES), (STR, INT)
        rhs = f"{pairs}[{pick(ctx, ('0', '-1'))}]"
    elif form < 0.45:
        kinds = (INT, INT)
        names = pick(ctx, (("quotient", "remainder"), ("minutes", "seconds"), ("q", "r"), ("rows", "cols")))
        rhs = f"divmod({atom(ctx, INT)}, {pick(ctx, ('60', '2', '10', '7'))})"
    elif form < 0.6 and seq:
        src, kind = seq
        names = (SINGULAR.get(src.split(".")[-1], "first"), pick(ctx, ("rest", "others", "tail")))
        kinds, rhs = (INT if kind == INTS else STR, kind), src
    else:
        names = pick(ctx, (("low", "high"), ("x", "y"), ("width", "height"), ("start", "end"), ("first", "last"),
                           ("name", "age"), ("key", "value"), ("left", "right")))
        kinds = (STR, INT) if names[0] in ("name", "key") else (INT, INT)
        first, second = expr(ctx, kinds[0], 1), expr(ctx, kinds[1], 1)
        rhs = f"{first}, {second if second != first else literal(ctx, kinds[1])}"
    if not all(is_free(ctx, n) or lookup(ctx, n) == k for n, k in zip(names, kinds)):
        return False
    lhs = f"{names[0]}, *{names[1]}" if rhs == (seq or ("",))[0] else f"{names[0]}, {names[1]}"
    emit(ctx, f"{lhs} = {rhs}")
    for n, k in zip(names, kinds):
        define(ctx, n, k)
    return True


def st_assert(ctx: Ctx) -> bool:
    """An assert, sometimes with a message."""
    test = condition(ctx)
    if not test:
        return False
    if chance(ctx, 0.3):
        emit(ctx, f"assert {test}, {interpolate(ctx, 'f') or str_literal(ctx)}")
    else:
        emit(ctx, f"assert {test}")
    return True


def st_lambda(ctx: Ctx) -> bool:
    """`name = lambda x: ...` at module level, callable later like a function."""
    name, param, kind, ret, body = pick(ctx, LAMBDAS)
    if ctx.ret is not None or ctx.nest or not is_free(ctx, name):
        return False
    emit(ctx, f"{name} = lambda {param}: {body}")
    ctx.funcs.append(Func(name, [Param(param, kind)], ret))
    return True


def st_comment(ctx: Ctx) -> bool:
    """A short comment line above the next statement."""
    emit(ctx, f"# {pick(ctx, COMMENTS)}")
    return simple(ctx)


def guard(ctx: Ctx, line: str) -> bool:
    """Emit `if <cond>:` with a single terminating statement inside; False when nothing can be tested."""
    test = condition(ctx)
    if not test:
        return False
    open_block(ctx, f"if {test}:")
    emit(ctx, line)
    close_block(ctx)
    return True


def st_continue(ctx: Ctx) -> bool:
    """`if ...: continue` inside a for loop."""
    if ctx.loop != "for":
        return False
    return guard(ctx, "continue")


def st_break(ctx: Ctx) -> bool:
    """`if ...: break` inside a loop."""
    return bool(ctx.loop) and guard(ctx, "break")


def st_return(ctx: Ctx) -> bool:
    """An early `if ...: return ...` inside a def."""
    if ctx.ret is None or ctx.nest == 0 and chance(ctx, 0.5):
        return False
    return guard(ctx, f"return {expr(ctx, ctx.ret, 1)}" if ctx.ret else "return")


def st_raise(ctx: Ctx) -> bool:
    """`if ...: raise SomeError(...)`, mostly inside defs."""
    if ctx.ret is None and chance(ctx, 0.7):
        return False
    return guard(ctx, raise_line(ctx))


def raise_line(ctx: Ctx) -> str:
    """`raise SomeError(message)`."""
    error = pick(ctx, ERRORS)
    if error == "KeyError":
        return f"raise KeyError({atom(ctx, STR)})"
    message = interpolate(ctx, "f") if chance(ctx, 0.5) else None
    return f"raise {error}({message or lit(ctx, pick(ctx, RAISE_MESSAGES))})"


SIMPLE: tuple[tuple[float, Callable[[Ctx], bool]], ...] = (
    (6.0, st_assign), (2.5, st_derive), (1.2, st_reassign), (3.0, st_augment), (3.0, st_mutate), (3.0, st_print),
    (3.5, st_call), (1.0, st_instantiate), (0.8, st_swap), (1.0, st_unpack), (0.8, st_assert),
    (0.4, st_lambda), (0.25, st_comment), (1.2, st_continue), (0.8, st_break), (0.8, st_return),
    (0.6, st_raise),
)
SIMPLE_NESTED = tuple((w * 0.4 if f is st_assign else w, f) for w, f in SIMPLE)  # fewer dead stores in blocks


def simple(ctx: Ctx) -> bool:
    """Emit one simple statement (an assignment when nothing is in scope yet)."""
    if not names_of_any(ctx) and not ctx.funcs and not ctx.classes:
        return st_assign(ctx)
    table = SIMPLE_NESTED if ctx.nest else SIMPLE
    for _ in range(SIMPLE_TRIES):
        if attempt(ctx, choose(ctx, table)):
            return True
    return st_assign(ctx)


def attempt(ctx: Ctx, production: Callable[[Ctx], bool]) -> bool:
    """Run a simple-statement production; undo it and return False if it fails or writes a line too long."""
    mark = snapshot(ctx)
    if production(ctx) and max(map(len, ctx.lines[mark[0]:]), default=0) <= MAX_LINE:
        return True
    restore(ctx, mark)
    return False


def snapshot(ctx: Ctx) -> tuple:
    """What a simple statement may change: lines, the innermost frame, functions, uses, imports."""
    return len(ctx.lines), dict(ctx.frames[-1].names), len(ctx.funcs), len(ctx.used), len(ctx.imports)


def restore(ctx: Ctx, mark: tuple) -> None:
    """Undo a simple statement (see snapshot)."""
    n_lines, names, n_funcs, n_used, n_imports = mark
    del ctx.lines[n_lines:], ctx.funcs[n_funcs:], ctx.used[n_used:], ctx.imports[n_imports:]
    ctx.frames[-1].names = names


# ----------------------------------------------------------------------------- compound statements

def body(ctx: Ctx, n: int) -> None:
    """Emit up to n statements into the open block (at least one)."""
    for i in range(n):
        if i and room(ctx) <= 0:
            break
        statement(ctx)


def st_if(ctx: Ctx) -> bool:
    """An if / elif / else chain; sometimes every branch binds the same name, used afterwards."""
    if not can_nest(ctx):
        return False
    n_elif = choose(ctx, ((6, 0), (3, 1), (1, 2)))
    has_else = chance(ctx, 0.5) or n_elif > 0 and chance(ctx, 0.5)
    shared = None
    if has_else and chance(ctx, 0.4):
        kind = pick(ctx, (STR, INT, STR, FLOAT, BOOL))
        shared = (fresh_name(ctx, kind), kind)
    tests = chain_tests(ctx, 1 + n_elif)
    if not tests:
        return False
    headers = [f"if {tests[0]}:"] + [f"elif {t}:" for t in tests[1:]] + (["else:"] if has_else else [])
    for header in headers:
        open_block(ctx, header)
        body(ctx, sizes(ctx, 2) - (shared is not None))
        if shared:
            emit(ctx, f"{shared[0]} = {shared_value(ctx, *shared)}")
        close_block(ctx)
    if shared:
        define(ctx, *shared)
    return True


def shared_value(ctx: Ctx, name: str, kind: str) -> str:
    """The value a branch of an if chain gives to the name all branches bind."""
    if kind == STR and chance(ctx, 0.7):
        return str_literal(ctx, name)
    return literal(ctx, kind) if chance(ctx, 0.6) else expr(ctx, kind, 1)


def chain_tests(ctx: Ctx, n: int) -> list[str]:
    """Conditions of an if/elif chain: thresholds on one number, or independent tests."""
    subjects = names_of(ctx, INT) + names_of(ctx, FLOAT)
    if n > 1 and subjects and chance(ctx, 0.5):
        x = recent(ctx, subjects)
        bounds = sorted(distinct(ctx, (0, 1, 5, 10, 18, 50, 60, 90, 100), n), reverse=True)
        op = pick(ctx, (">=", ">"))
        return [f"{x} {op} {b}" for b in bounds]
    if n > 1 and chance(ctx, 0.3):
        s = name_in_scope(ctx, STR)
        if s:
            return [f"{s} == {lit(ctx, w)}" for w in distinct(ctx, WORDS[:30], n)]
    tests = [condition(ctx) for _ in range(n)]
    return tests if all(tests) else []


def st_for(ctx: Ctx) -> bool:
    """A for loop over range, a collection, enumerate, zip or .items(), maybe with an accumulator."""
    if not can_nest(ctx):
        return False
    header, bound = loop_header(ctx)
    acc = accumulator(ctx, bound) if chance(ctx, 0.4) else None
    saved = ctx.loop
    open_block(ctx, header, bound, fixed=True)
    ctx.loop = "for"
    if acc:
        accumulate(ctx, *acc, bound)
    body(ctx, sizes(ctx, 3) - (acc is not None))
    ctx.loop = saved
    close_block(ctx)
    if acc and room(ctx) > 0:
        use_accumulator(ctx, *acc)
    return True


def loop_header(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """A for-loop header and the names it binds."""
    forms = [("range", 2.0)]
    seqs = names_of(ctx, INTS) + names_of(ctx, STRS) + names_of(ctx, SET)
    if seqs:
        forms.append(("each", 4.0))
    if names_of(ctx, INTS) or names_of(ctx, STRS):
        forms.append(("enumerate", 1.5))
    if names_of(ctx, DICT):
        forms += [("items", 2.0), ("keys", 0.7)]
    if len(names_of(ctx, INTS) + names_of(ctx, STRS)) >= 2:
        forms.append(("zip", 2.0))
    if names_of(ctx, PAIRS):
        forms.append(("pairs", 1.5))
    if names_of(ctx, STR):
        forms.append(("chars", 0.3))
    if names_of(ctx, GRID):
        forms.append(("rows", 2.5))
    return LOOP_HEADERS[choose_kind(ctx, forms)](ctx)


def element_kind(ctx: Ctx, src: str) -> str:
    """The kind of the elements of a list or set expression in scope."""
    return INT if src in names_of(ctx, INTS) else STR


def _loop_range(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for i in range(...)`."""
    seq = any_name(ctx, (INTS, STRS))
    i = fresh_name(ctx, INT, INDEX_NAMES[:2] + ("step", "attempt"))
    n = other_int(ctx, i)
    forms = [f"range({n})", f"range(1, {n} + 1)", f"range(0, {n}, 2)", f"range({n})"]
    if seq:
        forms += [f"range(len({seq[0]}))", f"range(len({seq[0]}))"]
    return f"for {i} in {pick(ctx, forms)}:", {i: INT}


def _loop_each(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for item in items` (sometimes sorted or reversed)."""
    src = recent(ctx, names_of(ctx, INTS) + names_of(ctx, STRS) + names_of(ctx, SET))
    kind = element_kind(ctx, src)
    v = loop_name(ctx, src, kind)
    it = src
    if chance(ctx, 0.15):
        it = f"reversed({src})" if chance(ctx, 0.3) and src not in names_of(ctx, SET) else f"sorted({src})"
    return f"for {v} in {it}:", {v: kind}


def _loop_enumerate(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for i, item in enumerate(items)`."""
    src = recent(ctx, names_of(ctx, INTS) + names_of(ctx, STRS))
    kind = element_kind(ctx, src)
    i = fresh_name(ctx, INT, INDEX_NAMES)
    define(ctx, i, INT)  # reserve it while naming the element
    v = loop_name(ctx, src, kind)
    del ctx.frames[-1].names[i]
    start = pick(ctx, ("", "", ", start=1"))
    return f"for {i}, {v} in enumerate({src}{start}):", {i: INT, v: kind}


def _loop_items(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for key, value in d.items()`."""
    src = name_in_scope(ctx, DICT)
    k, v = pair_names(ctx)
    it = f"sorted({src}.items())" if chance(ctx, 0.1) else f"{src}.items()"
    return f"for {k}, {v} in {it}:", {k: STR, v: INT}


def _loop_keys(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for key in d`."""
    src = name_in_scope(ctx, DICT)
    k = fresh_name(ctx, STR, ("key", "name", "word"))
    return f"for {k} in {pick(ctx, (src, f'sorted({src})', f'{src}.keys()'))}:", {k: STR}


def _loop_zip(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for a, b in zip(xs, ys)`."""
    a, b = distinct(ctx, names_of(ctx, INTS) + names_of(ctx, STRS), 2)
    ka, kb = element_kind(ctx, a), element_kind(ctx, b)
    va = loop_name(ctx, a, ka)
    define(ctx, va, ka)
    vb = loop_name(ctx, b, kb)
    del ctx.frames[-1].names[va]
    return f"for {va}, {vb} in zip({a}, {b}):", {va: ka, vb: kb}


def _loop_pairs(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for name, count in pairs`."""
    src = name_in_scope(ctx, PAIRS)
    k, v = pair_names(ctx)
    return f"for {k}, {v} in {src}:", {k: STR, v: INT}


def _loop_chars(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for char in text`."""
    s = name_in_scope(ctx, STR)
    c = fresh_name(ctx, STR, ("char", "ch", "c", "letter"))
    return f"for {c} in {s}:", {c: STR}


def _loop_rows(ctx: Ctx) -> tuple[str, dict[str, str]]:
    """`for row in grid` (sometimes with enumerate): each row is a list of ints."""
    src = name_in_scope(ctx, GRID)
    row = fresh_name(ctx, INTS, ("row", "current_row", "line_values"))
    if chance(ctx, 0.75):
        return f"for {row} in {src}:", {row: INTS}
    i = fresh_name(ctx, INT, ("i", "r", "row_index"))
    return f"for {i}, {row} in enumerate({src}):", {i: INT, row: INTS}


LOOP_HEADERS = {"range": _loop_range, "each": _loop_each, "enumerate": _loop_enumerate,
                "items": _loop_items, "keys": _loop_keys, "zip": _loop_zip, "pairs": _loop_pairs,
                "chars": _loop_chars, "rows": _loop_rows}


def pair_names(ctx: Ctx) -> tuple[str, str]:
    """Two free names for the key and value of a mapping or pair."""
    for _ in range(4):
        k, v = pick(ctx, PAIR_NAMES)
        if is_free(ctx, k) and is_free(ctx, v):
            return k, v
    k = fresh_name(ctx, STR)
    define(ctx, k, STR)
    v = fresh_name(ctx, INT)
    del ctx.frames[-1].names[k]
    return k, v


def accumulator(ctx: Ctx, bound: dict[str, str]) -> tuple[str, str]:
    """Emit and return (name, kind) of a fresh accumulator initialised before a loop binding bound."""
    kind = choose_kind(ctx, ACCUMULATORS)
    names = ACCUMULATOR_NAMES[kind]
    preferred = (pick(ctx, names), *names) if chance(ctx, 0.5) else names
    ctx.frames.append(Frame(dict(bound)))  # not the name of a loop variable
    name = fresh_name(ctx, kind, preferred)
    ctx.frames.pop()
    emit(ctx, f"{name} = {empty(ctx, kind)}")
    define(ctx, name, kind)
    return name, kind


def accumulate(ctx: Ctx, name: str, kind: str, bound: dict[str, str]) -> None:
    """Emit the statement that folds a loop variable into an accumulator (sometimes guarded)."""
    loop_vars = list(bound.items())
    ints = [v for v, k in loop_vars if k == INT] or [atom(ctx, INT)]
    strs = [v for v, k in loop_vars if k == STR] or [atom(ctx, STR)]
    x, s = ints[-1], strs[-1]
    line = f"{name} += {str_piece(ctx, name, bound)}" if kind == STR else {
        INT: pick(ctx, (f"{name} += {x}", f"{name} += 1", f"{name} += len({s})")),
        FLOAT: f"{name} += {x} * {atom(ctx, FLOAT)}",
        INTS: f"{name}.append({pick(ctx, (x, int_map(ctx, x)))})",
        STRS: f"{name}.append({pick(ctx, (s, str_map(ctx, s)))})",
        DICT: pick(ctx, (f"{name}[{s}] = {name}.get({s}, 0) + 1", f"{name}[{s}] = {x}")),
        SET: f"{name}.add({s})",
        BOOL: f"{name} = True",
    }[kind]
    if chance(ctx, 0.35) and can_nest(ctx):
        open_block(ctx, f"if {int_test(ctx, x) if x in bound else str_test(ctx, s)}:")
        emit(ctx, line)
        if kind == BOOL:
            emit(ctx, "break")
        close_block(ctx)
    else:
        emit(ctx, line)


def str_piece(ctx: Ctx, name: str, bound: dict[str, str]) -> str:
    """What a loop adds to a string accumulator: a loop variable, maybe formatted or with a separator."""
    strs = [v for v, k in bound.items() if k == STR]
    nums = [v for v, k in bound.items() if k in (INT, FLOAT)]
    if strs and (not nums or chance(ctx, 0.7)):
        s = strs[-1]
        return pick(ctx, (s, s, f"{s} + {lit(ctx, pick(ctx, (' ', ', ', chr(92) + 'n')))}",
                          fstr(ctx, "{" + s + "}" + pick(ctx, (", ", " ", chr(92) + "n"))), f"{s}[0]",
                          str_map(ctx, s)))
    if nums:
        x = nums[-1]
        return pick(ctx, (f"str({x})", fstr(ctx, "{" + x + "}" + pick(ctx, (", ", " "))),
                          f"str({x}) + {lit(ctx, ' ')}"))
    other = atom(ctx, STR)
    return other if other != name else str_literal(ctx)


def use_accumulator(ctx: Ctx, name: str, kind: str) -> None:
    """Sometimes, after the loop: print an accumulator, or test a flag set in it."""
    if kind == BOOL and chance(ctx, 0.7):
        negate = chance(ctx, 0.3)
        open_block(ctx, f"if {flag_test(ctx, name, negate)}:")
        message = pick(ctx, ("not found", "nothing to do") if negate else ("Found!", "Done.", "yes"))
        emit(ctx, f"print({lit(ctx, message)})")
        close_block(ctx)
    elif kind == STR and chance(ctx, 0.6):
        emit(ctx, f"print({pick(ctx, (name, f'{name}.strip()', f'{name}[:-2]'))})")
    elif chance(ctx, 0.4):
        emit(ctx, f"print({name})")


def st_while(ctx: Ctx) -> bool:
    """A while loop: counting up to a bound, `while True` with a break, draining a list, or until a flag flips."""
    if not can_nest(ctx) or room(ctx) < 3:
        return False
    saved = ctx.loop
    form = ctx.rng.random()
    drain = any_target(ctx, (INTS, STRS)) if form < 0.2 else None
    if drain:
        src, kind = drain
        v = loop_name(ctx, src, INT if kind == INTS else STR)
        open_block(ctx, f"while {src}:", {v: INT if kind == INTS else STR})
        emit(ctx, f"{v} = {src}.pop()")
        ctx.loop = "while"
        body(ctx, sizes(ctx, 2))
    elif form < 0.55:
        counter = bind(ctx, INT, "0", ("attempts", "tries", "count", "steps"))
        open_block(ctx, "while True:")
        ctx.loop = "while"
        emit(ctx, f"{counter} += 1")
        body(ctx, sizes(ctx, 2) - 1)
        if not (chance(ctx, 0.5) and guard(ctx, "break")):
            open_guard_break(ctx, counter)
    elif form < 0.75:
        flag_loop(ctx)
    else:
        counter = bind(ctx, INT, pick(ctx, ("0", "0", "1")), ("i", "count", "n", "attempt", "step"))
        open_block(ctx, f"while {counter} < {other_int(ctx, counter)}:")
        ctx.loop = "while"
        body(ctx, sizes(ctx, 2))
        emit(ctx, f"{counter} += {pick(ctx, ('1', '1', '2'))}")
    ctx.loop = saved
    close_block(ctx)
    return True


def flag_loop(ctx: Ctx) -> None:
    """`done = False` / `while not done:` ... `if <test>: done = True` (or a `running` flag set to False)."""
    start = chance(ctx, 0.5)
    flag = bind(ctx, BOOL, str(start), ("running", "active", "keep_going") if start else ("done", "finished", "stop"))
    open_block(ctx, f"while {flag_test(ctx, flag, not start)}:")
    ctx.loop = "while"
    body(ctx, sizes(ctx, 2))
    for _ in range(3):
        test = condition(ctx)
        if test and flag not in identifiers(test):
            open_block(ctx, f"if {test}:")
            emit(ctx, f"{flag} = {not start}")
            close_block(ctx)
            return
    emit(ctx, f"{flag} = {not start}")


def identifiers(code: str) -> list[str]:
    """The names and keywords in a line of code."""
    return "".join(c if c.isalnum() or c == "_" else " " for c in code).split()


def other_int(ctx: Ctx, name: str) -> str:
    """An int name in scope other than name, or a literal."""
    others = [n for n in names_of(ctx, INT) if n != name]
    return recent(ctx, others) if others and chance(ctx, 0.6) else str(pick(ctx, (3, 5, 10, 10, 100)))


def open_guard_break(ctx: Ctx, counter: str) -> None:
    """`if counter >= bound: break`."""
    open_block(ctx, f"if {counter} >= {other_int(ctx, counter)}:")
    emit(ctx, "break")
    close_block(ctx)


def st_with(ctx: Ctx) -> bool:
    """A with-block opening a file to read or write; names read inside stay bound after it."""
    if not can_nest(ctx):
        return False
    writing = chance(ctx, 0.4)
    way = "out" if writing else "in"
    path = file_path(ctx, way)
    handle = file_handle(ctx, way)
    open_block(ctx, f"with {open_call(ctx, path, writing)} as {handle}:", {handle: FILE})
    (write_file if writing else read_file)(ctx, handle)
    frame = close_block(ctx)
    for name, kind in frame.names.items():
        if kind != FILE:
            define(ctx, name, kind)
    return True


def st_open(ctx: Ctx) -> bool:
    """`f = open(path, mode)`, reading or writing it, then `f.close()`: a file opened without a with-block."""
    if not can_nest(ctx) or room(ctx) < 3:
        return False
    writing = chance(ctx, 0.4)
    way = "out" if writing else "in"
    path = file_path(ctx, way)
    handle = file_handle(ctx, way)
    emit(ctx, f"{handle} = {open_call(ctx, path, writing)}")
    define(ctx, handle, FILE)
    (write_file if writing else read_file)(ctx, handle)
    emit(ctx, f"{handle}.close()")
    del ctx.frames[-1].names[handle]  # closed: the name may be bound again
    return True


def open_call(ctx: Ctx, path: str, writing: bool) -> str:
    """`open(path, mode)`: mode "w" or "a" to write; to read, "r", an encoding, or no mode."""
    if writing:
        return f"open({path}, {lit(ctx, pick(ctx, ('w', 'w', 'a')))})"
    extra = pick(ctx, ("", f", {lit(ctx, 'r')}", f", {lit(ctx, 'r')}", f", encoding={lit(ctx, 'utf-8')}"))
    return f"open({path}{extra})"


def file_handle(ctx: Ctx, way: str) -> str:
    """A free name for a file opened to read ("in") or write ("out")."""
    return fresh_name(ctx, FILE, (pick(ctx, HANDLES[way]), *HANDLES[way]))


def file_path(ctx: Ctx, way: str) -> str:
    """A path to read ("in") or write ("out"): a variable named for that way (sometimes bound here), or path_expr's."""
    named = [n for n in names_of(ctx, STR) if path_way(n) == way and is_path(n)]
    if named and chance(ctx, 0.8):
        return recent(ctx, named)
    if chance(ctx, 0.4):
        return bind(ctx, STR, lit(ctx, pick(ctx, FILES_BY_WAY[way])), distinct(ctx, PATH_NAMES[way], 3))
    return path_expr(ctx, way=way)


def is_path(name: str) -> bool:
    """Whether a str's name says it holds a path."""
    return "path" in name or "file" in name or "FILE" in name


def path_way(name: str) -> str:
    """ "in" when a name says its file is read (input_path, src_file), "out" when written (out_file), else ""."""
    words = name.split(".")[-1].lower().split("_")
    if any(w in IN_WORDS for w in words):
        return "in"
    return "out" if any(w in OUT_WORDS for w in words) else ""


def path_expr(ctx: Ctx, folder: bool = False, way: str = "") -> str:
    """A path: a str in scope named like a path (not for the other way), a file-name constant, or a literal."""
    paths = [n for n in names_of(ctx, STR) if is_path(n) and (not way or path_way(n) in ("", way))]
    if paths and chance(ctx, 0.8):
        return recent(ctx, paths)
    return lit(ctx, pick(ctx, FOLDERS if folder else FILENAMES))


def read_file(ctx: Ctx, handle: str) -> None:
    """The body of a with-block reading a file: the whole text, its lines, JSON, or a loop over lines."""
    form = ctx.rng.random()
    if form < 0.3 or form >= 0.6 and not can_nest(ctx):
        bind(ctx, STR, f"{handle}.read()", ("text", "content", "data_text"))
    elif form < 0.5:
        bind(ctx, STRS, pick(ctx, (f"{handle}.readlines()", f"{handle}.read().splitlines()",
                                    f"[line.strip() for line in {handle}]")), ("lines", "rows_text"))
    elif form < 0.6:
        add_import(ctx, "json")
        bind(ctx, DICT, f"json.load({handle})", ("data", "config", "settings"))
    else:
        line = fresh_name(ctx, STR, ("line", "row", "raw_line"))
        saved = ctx.loop
        open_block(ctx, f"for {line} in {handle}:", {line: STR})
        ctx.loop = "for"
        if chance(ctx, 0.6):
            emit(ctx, f"{line} = {line}.strip()")
        body(ctx, sizes(ctx, 2))
        ctx.loop = saved
        close_block(ctx)


def write_file(ctx: Ctx, handle: str) -> None:
    """The body of a with-block writing a file."""
    src = name_in_scope(ctx, STRS)
    form = ctx.rng.random()
    if form < 0.35 and src:
        v = loop_name(ctx, src, STR)
        open_block(ctx, f"for {v} in {src}:", {v: STR}, fixed=True)
        emit(ctx, f"{handle}.write({v} + {lit(ctx, chr(92) + 'n')})")
        close_block(ctx)
    elif form < 0.5:
        emit(ctx, f"print({atom(ctx, pick(ctx, (STR, INT)))}, file={handle})")
    elif form < 0.6 and "json" in ctx.imports:
        emit(ctx, f"json.dump({atom(ctx, DICT)}, {handle}{pick(ctx, ('', ', indent=2'))})")
    else:
        text = interpolate(ctx, "f")
        if text:
            text = text[:-1] + chr(92) + "n" + text[-1]  # a newline before the closing quote
        emit(ctx, f"{handle}.write({text or atom(ctx, STR)})")


RISKS = (  # (risky statement form, exceptions it may raise)
    ("int", ("ValueError",)), ("divide", ("ZeroDivisionError",)), ("key", ("KeyError",)),
    ("index", ("IndexError",)), ("open", ("FileNotFoundError", "OSError")), ("call", ("ValueError", "Exception")),
)


def st_try(ctx: Ctx) -> bool:
    """try / except [as e] / else / finally around a statement that may fail."""
    if not can_nest(ctx) or room(ctx) < 4:
        return False
    form, errors = pick(ctx, RISKS)
    open_block(ctx, "try:")
    bound = risky(ctx, form)
    if chance(ctx, 0.3):
        body(ctx, 1)
    close_block(ctx)
    n_handlers = 1 + chance(ctx, 0.2)
    recovered = True
    for h in range(n_handlers):
        error = errors[0] if h == 0 else "Exception"
        if h == 0 and len(errors) > 1 and chance(ctx, 0.3):
            error = f"({', '.join(errors)})"
        recovered = handler(ctx, error, bound) and recovered
    if chance(ctx, 0.3):
        open_block(ctx, "else:")
        body(ctx, 1)
        close_block(ctx)
    if chance(ctx, 0.3):
        open_block(ctx, "finally:")
        if not (chance(ctx, 0.4) and (st_augment(ctx) or st_mutate(ctx))):  # never return/break in finally
            emit(ctx, f"print({lit(ctx, pick(ctx, ('done', 'Done.', 'finished', 'cleanup')))})")
        close_block(ctx)
    if bound and recovered:
        define(ctx, *bound)
    return True


def risky(ctx: Ctx, form: str) -> tuple[str, str] | None:
    """Emit a statement that may raise; return the (name, kind) it binds, if any."""
    if form == "int":
        return bound_pair(ctx, INT, f"int({digits(ctx)})", ("value", "number", "count"))
    if form == "divide":
        a, b = atom(ctx, INT), atom(ctx, INT)
        return bound_pair(ctx, FLOAT, f"{pick(ctx, (a, atom(ctx, FLOAT)))} / {b}", ("ratio", "average", "rate"))
    if form == "key":
        return bound_pair(ctx, INT, f"{atom(ctx, DICT)}[{atom(ctx, STR)}]", ("value", "count", "score"))
    if form == "index":
        items = name_in_scope(ctx, INTS) or collection_literal(ctx, INTS)
        return bound_pair(ctx, INT, f"{items}[{atom(ctx, INT)}]", ("value", "item", "first"))
    if form == "open":
        handle = fresh_name(ctx, FILE, ("f", "fh"))
        open_block(ctx, f"with open({path_expr(ctx, way='in')}) as {handle}:", {handle: FILE})
        name = fresh_name(ctx, STR, ("text", "content"))
        emit(ctx, f"{name} = {handle}.read()")
        close_block(ctx)
        return name, STR
    found = [f for f in ctx.funcs if f.ret]
    if not found:
        return bound_pair(ctx, INT, f"int({digits(ctx)})", ("value", "number"))
    func = pick(ctx, found)
    mark_used(ctx, func.name)
    return bound_pair(ctx, func.ret, f"{func.name}({arguments(ctx, func.params, 0)})", (func.noun, "result"))


def digits(ctx: Ctx) -> str:
    """A str in scope to convert to a number, or a literal of digits."""
    return name_in_scope(ctx, STR) or lit(ctx, pick(ctx, ("42", "7", "100", "12")))


def bound_pair(ctx: Ctx, kind: str, value: str, preferred: tuple[str, ...]) -> tuple[str, str]:
    """Emit `name = value` without binding name in scope yet; return (name, kind)."""
    name = fresh_name(ctx, kind, preferred)
    emit(ctx, f"{name} = {value}")
    return name, kind


def handler(ctx: Ctx, error: str, bound: tuple[str, str] | None) -> bool:
    """Emit one except clause; True when the name bound in the try body is bound here too."""
    as_name = fresh_name(ctx, EXC, ("e", "err", "exc")) if chance(ctx, 0.5) else ""
    open_block(ctx, f"except {error} as {as_name}:" if as_name else f"except {error}:", {as_name: EXC} if as_name else {})
    form = ctx.rng.random()
    recovered = False
    if bound and form < 0.45:
        if as_name and chance(ctx, 0.5):
            label = pick(ctx, ("Error", "Could not read", "Bad value", "Warning"))
            emit(ctx, f"print({fstr(ctx, label + ': {' + as_name + '}')})")
        emit(ctx, f"{bound[0]} = {literal(ctx, bound[1])}")
        recovered = True
    elif form < 0.6 and ctx.ret is not None:
        emit(ctx, f"return {literal(ctx, ctx.ret)}" if ctx.ret else "return")
    elif form < 0.7 and ctx.loop == "for":
        emit(ctx, "continue")
    elif form < 0.8 and ctx.ret is not None:
        emit(ctx, "raise")
    elif as_name:
        emit(ctx, f"print({fstr(ctx, pick(ctx, ('Error', 'Failed', 'Skipping')) + ': {' + as_name + '}')})")
    elif form < 0.9:
        emit(ctx, "pass")
    else:
        emit(ctx, f"print({lit(ctx, pick(ctx, ('Something went wrong', 'invalid input', 'file not found', 'skipping')))})")
    close_block(ctx)
    return recovered


COMPOUND: tuple[tuple[float, Callable[[Ctx], bool]], ...] = (
    (3.0, st_if), (3.2, st_for), (1.1, st_while), (0.9, st_with), (1.0, st_try), (0.25, st_open),
)


def statement(ctx: Ctx) -> None:
    """Emit one statement: compound when there is room to nest and something to work on, else simple."""
    if can_nest(ctx) and room(ctx) >= 3 and len(names_of_any(ctx)) >= 2 and chance(ctx, 0.38):
        for _ in range(3):
            if choose(ctx, COMPOUND)(ctx):
                return
    simple(ctx)


# ----------------------------------------------------------------------------- definitions

def annotation(ctx: Ctx, kind: str) -> str:
    """The type annotation of a kind."""
    return TYPE_NAMES.get(kind, kind) or "None"


def signature(ctx: Ctx, params: list[Param], method: bool) -> str:
    """A parameter list, with annotations when the program is typed."""
    parts = ["self"] if method else []
    for p in params:
        text = p.name
        if ctx.typed:
            note = annotation(ctx, p.kind) + (" | None" if p.default == "None" else "")
            text += f": {note}"
        if p.default:
            text += f" = {p.default}" if ctx.typed else f"={p.default}"
        parts.append(text)
    return ", ".join(parts)


def make_params(ctx: Ctx, n: int, taken: tuple[str, ...] = ()) -> list[Param]:
    """n parameters with distinct names; the last ones may have defaults."""
    frame = Frame({name: "" for name in taken}, barrier=True)
    ctx.frames.append(frame)
    params = []
    for _ in range(n):
        kind = choose_kind(ctx, PARAM_WEIGHTS + tuple((c, 0.8) for c in ctx.classes))
        name = fresh_name(ctx, kind, param_names(ctx, kind))
        frame.names[name] = kind
        params.append(Param(name, kind))
    ctx.frames.pop()
    for p in reversed(params):
        if not chance(ctx, 0.35) or p.kind in ctx.classes:
            break
        p.default = default_of(ctx, p)
    return params


def param_names(ctx: Ctx, kind: str) -> tuple[str, ...]:
    """Preferred names of a parameter: sometimes, for a str, the path of a file to read or write."""
    if kind == STR and chance(ctx, 0.12):
        return tuple(distinct(ctx, PATH_NAMES[pick(ctx, ("in", "out"))], 2))
    return ()


def default_of(ctx: Ctx, p: Param) -> str:
    """A default value for a parameter: a literal, a constant, or None for mutable kinds."""
    if p.kind in (INTS, STRS, DICT, SET, PAIRS, GRID):
        return "None"
    consts = [c for c, k in ctx.consts.items() if k == p.kind]
    if consts and chance(ctx, 0.4):
        return pick(ctx, consts)
    return literal(ctx, p.kind, p.name)


def func_name(ctx: Ctx, ret: str, params: list[Param]) -> tuple[str, str]:
    """A free verb_noun function name for a return kind, and the noun."""
    for _ in range(8):
        if ret == BOOL:
            prefix = pick(ctx, tuple(BOOL_NAMES))
            name = f"{prefix}_{pick(ctx, BOOL_NAMES[prefix])}"
            noun = pick(ctx, ("ok", "found", "valid", "ready", "result"))
        else:
            noun = pick(ctx, NAMES[ret] if ret else NAMES[pick(ctx, (STRS, INTS, DICT, STR))])
            if ctx.coined and chance(ctx, ctx.coined):
                noun = coin(ctx)
            name = f"{pick(ctx, FUNC_VERBS[ret])}_{noun}"
        if is_free(ctx, name) and all(p.name != name for p in params):
            return name, noun
    return fresh_name(ctx, INT, ("helper", "process", "run_step")), ""


def docstring(ctx: Ctx, name: str) -> None:
    """A one-line docstring derived from a def's name."""
    words = name.strip("_").split("_")
    emit(ctx, f'"""{words[0].capitalize()} the {" ".join(words[1:]) or "value"}."""')


def enter_def(ctx: Ctx, header: str, names: dict[str, str], ret: str) -> tuple:
    """Open a def body: a new barrier frame; return the saved loop/nest/ret state."""
    saved = (ctx.loop, ctx.nest, ctx.ret)
    emit(ctx, header)
    ctx.indent += 1
    ctx.frames.append(Frame(names, barrier=True))
    ctx.loop, ctx.nest, ctx.ret = "", int(bool(ctx.current_class)), ret  # methods sit one level deeper
    return saved


def leave_def(ctx: Ctx, saved: tuple) -> None:
    """Close a def body opened by enter_def."""
    ctx.frames.pop()
    ctx.indent -= 1
    ctx.loop, ctx.nest, ctx.ret = saved


def def_header(ctx: Ctx, name: str, params: list[Param], ret: str, method: bool) -> str:
    """`def name(params) -> T:`."""
    arrow = f" -> {annotation(ctx, ret)}" if ctx.typed else ""
    return f"def {name}({signature(ctx, params, method)}){arrow}:"


def gen_function(ctx: Ctx) -> Func:
    """Emit a top-level function; return it (registered after its body, so not recursive)."""
    ret = choose_kind(ctx, RETURN_WEIGHTS)
    params = make_params(ctx, choose(ctx, ((1, 0), (5, 1), (5, 2), (2, 3))))
    name, noun = func_name(ctx, ret, params)
    saved = enter_def(ctx, def_header(ctx, name, params, ret, False), {p.name: p.kind for p in params}, ret)
    function_body(ctx, name, params, ret)
    leave_def(ctx, saved)
    func = Func(name, params, ret, noun if ret else "")
    ctx.funcs.append(func)
    return func


def function_body(ctx: Ctx, name: str, params: list[Param], ret: str) -> None:
    """Docstring, default fix-ups, guards, statements and the final return of a def."""
    if chance(ctx, 0.05):
        docstring(ctx, name)
    for p in params:
        if p.default == "None":
            open_block(ctx, f"if {p.name} is None:")
            emit(ctx, f"{p.name} = {literal(ctx, p.kind, p.name) if chance(ctx, 0.3) else EMPTY[p.kind]}")
            close_block(ctx)
    checked = [p for p in params if p.kind in (INT, STR, FLOAT, INTS)]
    if checked and chance(ctx, 0.2):
        guard_param(ctx, pick(ctx, checked))
    if ret == BOOL and chance(ctx, 0.7) and search(ctx):
        return
    body(ctx, sizes(ctx, 4))
    if ret:
        emit(ctx, f"return {return_value(ctx, ret)}")


def guard_param(ctx: Ctx, p: Param) -> None:
    """`if <bad p>: raise ValueError(...)` at the top of a def."""
    test = {INT: f"{p.name} < 0", FLOAT: f"{p.name} <= 0", STR: f"not {p.name}", INTS: f"not {p.name}"}[p.kind]
    open_block(ctx, f"if {test}:")
    error = "ValueError" if chance(ctx, 0.8) else "TypeError"
    message = fstr(ctx, f"invalid {p.name}: {{{p.name}!r}}") if chance(ctx, 0.6) else lit(ctx, f"invalid {p.name}")
    emit(ctx, f"raise {error}({message})")
    close_block(ctx)


def search(ctx: Ctx) -> bool:
    """A predicate body: loop, `return True` on a match, `return False` after the loop."""
    src = any_name(ctx, (INTS, STRS, DICT))
    if not src or not can_nest(ctx):
        return False
    kind = INT if src[1] == INTS else STR
    v = loop_name(ctx, src[0], kind)
    found = chance(ctx, 0.7)
    open_block(ctx, f"for {v} in {src[0]}:", {v: kind}, fixed=True)
    ctx.loop = "for"
    open_block(ctx, f"if {int_test(ctx, v) if kind == INT else str_test(ctx, v)}:")
    emit(ctx, f"return {found}")
    close_block(ctx)
    ctx.loop = ""
    close_block(ctx)
    emit(ctx, f"return {not found}")
    return True


def return_value(ctx: Ctx, ret: str) -> str:
    """The value of a def's final return: mostly a local computed in its body."""
    local = plain_names(ctx, ret)
    if local and chance(ctx, 0.7):
        return recent(ctx, local)
    return expr(ctx, ret)


def class_name(ctx: Ctx) -> str:
    """A free CamelCase class name."""
    for _ in range(8):
        tail = pick(ctx, CLASS_TAILS)
        head = pick(ctx, CLASS_HEADS) if chance(ctx, 0.5) else ""
        if ctx.coined and chance(ctx, ctx.coined):
            head, tail = (head, coin(ctx).capitalize()) if head else (coin(ctx).capitalize(), tail)
        name = head + tail if head != tail else tail
        if is_free(ctx, name):
            return name
    return "Thing" + str(len(ctx.classes) + 1)


def gen_class(ctx: Ctx) -> Klass:
    """Emit a class: __init__ storing its arguments on self (or a @dataclass), then methods."""
    name = class_name(ctx)
    as_dataclass = chance(ctx, 0.12)
    params = make_params(ctx, choose(ctx, ((1, 1), (4, 2), (3, 3))))
    private = "_" if not as_dataclass and chance(ctx, 0.25) else ""
    attrs = {private + p.name: p.kind for p in params}
    extras = extra_attrs(ctx, attrs) if not as_dataclass else {}
    klass = Klass(name, params, {**attrs, **extras})
    ctx.classes[name] = klass
    ctx.current_class = name
    if as_dataclass:
        add_import(ctx, "dataclass")
        emit(ctx, "@dataclass")
    emit(ctx, f"class {name}:")
    ctx.indent += 1
    if chance(ctx, 0.1):
        emit(ctx, f'"""A {snake(name).replace("_", " ")}."""')
    if as_dataclass:
        dataclass_fields(ctx, params)
    else:
        init_method(ctx, klass, extras)
    for _ in range(choose(ctx, ((3, 1), (4, 2), (2, 3)))):
        blank(ctx)
        gen_method(ctx, klass)
    ctx.indent -= 1
    ctx.current_class = ""
    return klass


def extra_attrs(ctx: Ctx, attrs: dict[str, str]) -> dict[str, str]:
    """Attributes __init__ sets from a literal rather than an argument."""
    if not chance(ctx, 0.4):
        return {}
    kind = pick(ctx, (INTS, STRS, INT, DICT, BOOL))
    ctx.frames.append(Frame(dict(attrs), barrier=True))
    name = fresh_name(ctx, kind, {INTS: ("history", "items"), STRS: ("items", "log"), INT: ("count",),
                                 DICT: ("totals",), BOOL: ("active", "closed")}[kind])
    ctx.frames.pop()
    return {name: kind}


def dataclass_fields(ctx: Ctx, params: list[Param]) -> None:
    """The annotated fields of a @dataclass."""
    for p in params:
        default = f" = {p.default}" if p.default and p.default != "None" else ""
        if p.default == "None":
            default = " = None"
            emit(ctx, f"{p.name}: {annotation(ctx, p.kind)} | None{default}")
            continue
        emit(ctx, f"{p.name}: {annotation(ctx, p.kind)}{default}")


def init_method(ctx: Ctx, klass: Klass, extras: dict[str, str]) -> None:
    """`def __init__(self, a, b): self.a = a ...`."""
    header = f"def __init__({signature(ctx, klass.params, True)}){' -> None' if ctx.typed else ''}:"
    saved = enter_def(ctx, header, {"self": klass.name, **{p.name: p.kind for p in klass.params}}, "")
    order = list(klass.params)
    if chance(ctx, 0.35):
        ctx.rng.shuffle(order)
    for p in order:
        value = p.name
        if p.default == "None":
            value = f"{p.name} if {p.name} is not None else {EMPTY[p.kind]}"
        attr = p.name if p.name in klass.attrs else "_" + p.name
        emit(ctx, f"self.{attr} = {value}")
    for attr, kind in extras.items():
        emit(ctx, f"self.{attr} = {EMPTY[kind]}")
    leave_def(ctx, saved)


def gen_method(ctx: Ctx, klass: Klass) -> None:
    """Emit one method (or property) using the attributes of self; register it on the class."""
    form = choose(ctx, ((3, "getter"), (3, "mutator"), (1.5, "repr"), (1.5, "predicate"), (3, "general")))
    if form == "repr" and any(m.name in ("__repr__", "__str__") for m in klass.methods):
        form = "general"
    METHOD_FORMS[form](ctx, klass)


def method_def(ctx: Ctx, klass: Klass, name: str, params: list[Param], ret: str) -> tuple:
    """Open a method body with self and params in scope."""
    header = def_header(ctx, name, params, ret, True)
    return enter_def(ctx, header, {"self": klass.name, **{p.name: p.kind for p in params}}, ret)


def method_name(ctx: Ctx, klass: Klass, options: tuple[str, ...]) -> str | None:
    """The first free method name among options."""
    taken = {m.name for m in klass.methods} | set(klass.attrs) | set(klass.props)
    for name in options:
        if name not in taken:
            return name
    return None


def _m_getter(ctx: Ctx, klass: Klass) -> None:
    """A method (or property) returning a value computed from self."""
    ret = pick(ctx, (INT, INT, FLOAT, STR, INTS))
    attrs = [a for a, k in klass.attrs.items() if k == ret]
    noun = pick(ctx, attrs) if attrs else pick(ctx, NAMES[ret])
    first = (pick(ctx, ("total", "size", "area", "count_items", "score")),) if ret == INT else ()
    name = method_name(ctx, klass, (*first, f"get_{noun}", f"compute_{noun}", f"current_{noun}"))
    name = name or f"get_{noun}_{len(klass.methods)}"
    as_property = chance(ctx, 0.2) and not name.startswith("get_")
    if as_property:
        emit(ctx, "@property")
    saved = method_def(ctx, klass, name, [], ret)
    if chance(ctx, 0.3):
        body(ctx, 1)
    emit(ctx, f"return {return_value(ctx, ret)}")
    leave_def(ctx, saved)
    if as_property:
        klass.props[name] = ret
    else:
        klass.methods.append(Func(name, [], ret, noun if noun in NAMES[ret] else ""))


def _m_mutator(ctx: Ctx, klass: Klass) -> None:
    """A method updating one attribute from its argument."""
    mutable = [(a, k) for a, k in klass.attrs.items() if k in (INT, FLOAT, INTS, STRS, DICT, STR)]
    if not mutable:
        return _m_general(ctx, klass)
    attr, kind = pick(ctx, mutable)
    item = {INTS: INT, STRS: STR}.get(kind, kind if kind != DICT else STR)
    singular = SINGULAR.get(attr, "item")
    name = method_name(ctx, klass, {
        INT: ("increment", f"add_{attr}", f"update_{attr}"), FLOAT: ("apply", f"update_{attr}"),
        INTS: (f"add_{singular}", f"add_{attr}"), STRS: (f"add_{singular}", f"add_{attr}"),
        DICT: ("record", f"add_{singular}"), STR: (f"set_{attr}", f"rename_{attr}"),
    }[kind] + (f"update_{attr}_{len(klass.methods)}",))
    pname = fresh_name_in(ctx, klass, item, ("amount", "value") if kind in (INT, FLOAT) else (singular, "item", "value"))
    params = [Param(pname, item, literal(ctx, INT) if kind == INT and chance(ctx, 0.3) else "")]
    if kind == DICT:
        params.append(Param(fresh_name_in(ctx, klass, INT, ("amount", "count", "value")), INT))
    saved = method_def(ctx, klass, name, params, "")
    if kind in (INT, FLOAT) and chance(ctx, 0.4):
        open_block(ctx, f"if {pname} <= 0:")
        emit(ctx, f"raise ValueError({lit(ctx, pick(ctx, ('amount must be positive', 'invalid amount')))})")
        close_block(ctx)
    line = {INT: f"self.{attr} += {pname}", FLOAT: f"self.{attr} *= {pname}", STR: f"self.{attr} = {pname}",
            INTS: f"self.{attr}.append({pname})", STRS: f"self.{attr}.append({pname})",
            DICT: f"self.{attr}[{pname}] = self.{attr}.get({pname}, 0) + {params[-1].name}"}[kind]
    emit(ctx, line)
    if chance(ctx, 0.25):
        simple(ctx)
    leave_def(ctx, saved)
    klass.methods.append(Func(name, params, ""))


def fresh_name_in(ctx: Ctx, klass: Klass, kind: str, preferred: tuple[str, ...]) -> str:
    """A parameter name for a method: free, and not an attribute name (to keep `self.x = x` readable)."""
    ctx.frames.append(Frame({a: k for a, k in klass.attrs.items()}, barrier=True))
    name = fresh_name(ctx, kind, preferred)
    ctx.frames.pop()
    return name


def _m_repr(ctx: Ctx, klass: Klass) -> None:
    """__repr__, __str__ or describe(), as an f-string over the attributes."""
    name = pick(ctx, ("__repr__", "__str__", "describe"))
    saved = method_def(ctx, klass, name, [], STR)
    attrs = list(klass.params)[:3]
    if name == "__repr__":
        inner = ", ".join(f"{p.name}={{self.{p.name}!r}}" for p in attrs)
        if len(inner) > 60:
            inner = ", ".join(f"{{self.{p.name}!r}}" for p in attrs)
        emit(ctx, f"return {fstr(ctx, klass.name + '(' + inner + ')')}")
    else:
        text = interpolate(ctx, "f") or lit(ctx, klass.name)
        emit(ctx, f"return {text}")
    leave_def(ctx, saved)
    klass.methods.append(Func(name, [], STR, "description"))


def _m_predicate(ctx: Ctx, klass: Klass) -> None:
    """A method testing an attribute (is_empty, has_x, is_valid)."""
    sized = [a for a, k in klass.attrs.items() if k in (INTS, STRS, DICT, STR)]
    nums = [a for a, k in klass.attrs.items() if k in (INT, FLOAT)]
    if sized and (not nums or chance(ctx, 0.5)):
        attr = pick(ctx, sized)
        name = method_name(ctx, klass, ("is_empty", f"has_{attr}"))
        test = f"len(self.{attr}) == 0" if name == "is_empty" else f"len(self.{attr}) > 0"
    elif nums:
        attr = pick(ctx, nums)
        name = method_name(ctx, klass, (pick(ctx, ("is_valid", "is_positive", "is_ready")), f"has_{attr}"))
        test = f"self.{attr} {pick(ctx, ('>', '>=', '<'))} {atom(ctx, INT)}"
    else:
        return _m_general(ctx, klass)
    if not name:
        return _m_general(ctx, klass)
    saved = method_def(ctx, klass, name, [], BOOL)
    if chance(ctx, 0.5):
        open_block(ctx, f"if {test}:")
        emit(ctx, "return True")
        close_block(ctx)
        emit(ctx, "return False")
    else:
        emit(ctx, f"return {test}")
    leave_def(ctx, saved)
    klass.methods.append(Func(name, [], BOOL))


def _m_general(ctx: Ctx, klass: Klass) -> None:
    """A method with a general body, like a function's."""
    ret = choose_kind(ctx, RETURN_WEIGHTS)
    params = make_params(ctx, choose(ctx, ((3, 0), (4, 1), (2, 2))), tuple(klass.attrs))
    name, noun = func_name(ctx, ret, params)
    name = method_name(ctx, klass, (name,)) or f"{name}_{len(klass.methods)}"
    saved = method_def(ctx, klass, name, params, ret)
    function_body(ctx, name, params, ret)
    leave_def(ctx, saved)
    klass.methods.append(Func(name, params, ret, noun if ret else ""))


METHOD_FORMS = {"getter": _m_getter, "mutator": _m_mutator, "repr": _m_repr, "predicate": _m_predicate,
                "general": _m_general}


# ----------------------------------------------------------------------------- programs

def constants(ctx: Ctx) -> None:
    """Module-level UPPER_CASE constants."""
    for _ in range(1 + chance(ctx, 0.3)):
        kind = pick(ctx, (INT, INT, STR, FLOAT, STRS))
        name = pick(ctx, CONSTANTS[kind])
        if name in ctx.consts:
            continue
        value = collection_literal(ctx, STRS, name.lower()) if kind == STRS else literal(ctx, kind, name.lower())
        emit(ctx, f"{name} = {value}")
        ctx.consts[name] = kind


def definition(ctx: Ctx, cls: bool) -> None:
    """A top-level def or class, surrounded by two blank lines."""
    blank(ctx, 2)
    if cls:
        gen_class(ctx)
    else:
        gen_function(ctx)


def use_definitions(ctx: Ctx) -> None:
    """Statements that use every function and class defined so far, with others in between."""
    ctx.used.clear()  # uses inside other definitions do not count
    for name in [f.name for f in ctx.funcs] + list(ctx.classes):
        if name in ctx.used:
            continue
        use = partial(use_definition, name=name)
        if not any(attempt(ctx, use) for _ in range(SIMPLE_TRIES)):
            use(ctx)
        if chance(ctx, 0.35):
            statement(ctx)


def use_definition(ctx: Ctx, name: str) -> bool:
    """Statements using one function or class of the program."""
    if name in ctx.classes:
        return use_class(ctx, name)
    return call_stmt(ctx, "", next(f for f in ctx.funcs if f.name == name))


def use_class(ctx: Ctx, cls: str) -> bool:
    """Instantiate a class, then call its methods or read its attributes."""
    mark_used(ctx, cls)
    obj = bind(ctx, cls, construct(ctx, cls, 0))
    klass = ctx.classes[cls]
    for _ in range(1 + ctx.rng.randrange(3)):
        if public(klass) and chance(ctx, 0.75):
            call_stmt(ctx, obj + ".", pick(ctx, public(klass)))
        elif len(public(klass)) < len(klass.methods) and chance(ctx, 0.5):
            emit(ctx, f"print({obj})")  # uses __repr__ / __str__
        elif visible_attrs(obj, klass) or klass.props:
            readable = visible_attrs(obj, klass) + list(klass.props)
            emit(ctx, f"print({obj}.{pick(ctx, readable)})")
        else:
            emit(ctx, f"print({obj})")
    return True


def fill(ctx: Ctx) -> None:
    """Statements until the program is long enough (at least one)."""
    for i in range(60):
        if i and room(ctx) <= 0:
            return
        statement(ctx)


def layout(ctx: Ctx) -> str:
    """The overall shape of a program."""
    return choose(ctx, ((3, "script"), (3.5, "functions"), (2.5, "class"), (1.2, "main")))


def build(ctx: Ctx) -> None:
    """Generate the body of a program into ctx.lines."""
    shape = layout(ctx)
    if chance(ctx, 0.25):
        constants(ctx)
    if shape == "functions":
        for _ in range(choose(ctx, ((5, 1), (4, 2), (1, 3)))):
            definition(ctx, False)
    elif shape in ("class", "main"):
        if chance(ctx, 0.3):
            definition(ctx, False)
        definition(ctx, shape == "class" or chance(ctx, 0.5))
    if shape == "main":
        blank(ctx, 2)
        saved = enter_def(ctx, "def main():" if not ctx.typed else "def main() -> None:", {}, "")
        use_definitions(ctx)
        fill(ctx)
        leave_def(ctx, saved)
        blank(ctx, 2)
        emit(ctx, f"if __name__ == {lit(ctx, '__main__')}:")
        emit(ctx, INDENT + "main()")
        return
    if ctx.funcs or ctx.classes:
        blank(ctx, 2)
    use_definitions(ctx)
    fill(ctx)


COPY_SUFFIXES = ("_v2", "2", "_copy", "_new", "_old", "_fast", "_safe")  # names of a copy-pasted definition


def repeat_definition(ctx: Ctx) -> None:
    """Copy one top-level def or class (with its decorators) to the end of the program under a new name."""
    starts = [i for i, line in enumerate(ctx.lines) if line.startswith(("def ", "class "))]
    if not starts or ctx.indent:
        return
    top = pick(ctx, starts)
    start, end = top, top + 1
    while start and ctx.lines[start - 1].startswith("@"):
        start -= 1
    while end < len(ctx.lines) and (not ctx.lines[end] or ctx.lines[end].startswith((" ", ")"))):
        end += 1
    block = ctx.lines[start:end]
    while block[-1] == "":
        block.pop()
    keyword, rest = ctx.lines[top].split(" ", 1)
    name = rest.split("(")[0].rstrip(":")
    new = name + pick(ctx, COPY_SUFFIXES)
    if any(new in line for line in ctx.lines):
        return
    copy = [f"{keyword} {new}{rest[len(name):]}" if i == top - start else line for i, line in enumerate(block)]
    blank(ctx, 2)
    ctx.lines.extend(copy)


def header_lines(ctx: Ctx) -> list[str]:
    """Import lines for the names used, in a fixed order: `import x` first, then `from x import y`."""
    plain = sorted(IMPORTS[n][0] for n in ctx.imports if not IMPORTS[n][1])
    lines = [f"import {m}" for m in plain]
    modules = sorted({IMPORTS[n][0]: None for n in ctx.imports if IMPORTS[n][1]})
    for module in modules:
        names = sorted(n for n in ctx.imports if IMPORTS[n] == (module, True))
        lines.append(f"from {module} import {', '.join(names)}")
    return lines


def program(rng: random.Random, coined: float = 0.0, repeat: float = 0.0) -> str:
    """One program, ending with a newline; coined: the share of new names made up; repeat: the chance that it
    copy-pastes one of its definitions."""
    quote_style = rng.choice(("'", "'", "'", '"', '"', '"', '"', '"', ""))  # "": per literal
    target = 5 + rng.randrange(8) + rng.randrange(24)
    ctx = Ctx(rng=rng, quote=quote_style, typed=rng.random() < 0.2, target=target, coined=coined, repeat=repeat)
    build(ctx)
    if repeat and chance(ctx, repeat):
        repeat_definition(ctx)
    head = header_lines(ctx)
    if chance(ctx, 0.04):
        topic = f"{pick(ctx, ('Small helpers', 'A tiny example', 'Utilities', 'Demo'))} for {pick(ctx, NAMES[STRS])}."
        head = [f'"""{topic}"""', *([""] if head else []), *head]
    if head:
        head.extend([""] * (2 if ctx.lines[0].startswith(("def ", "class ", "@")) else 1))
    return "\n".join(head + ctx.lines) + "\n"


def documents(seed: int, coined: float = 0.0, repeat: float = 0.0) -> Iterator[str]:
    """An endless stream of programs; document i depends only on (seed, coined, repeat, i)."""
    i = 0
    while True:
        yield program(random.Random(f"{seed}:{i}"), coined, repeat)
        i += 1


def text(seed: int, n_bytes: int, coined: float = 0.0, repeat: float = 0.0) -> str:
    """The first documents of a seed joined by one blank line, until at least n_bytes long."""
    parts, size = [], 0
    for doc in documents(seed, coined, repeat):
        if size >= n_bytes:
            break
        size += len(doc) + bool(parts)
        parts.append(doc)
    return "\n".join(parts)
