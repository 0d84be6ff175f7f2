"""Tests of trainer/tinypython.py: determinism, validity, coverage of idioms, name reuse, isolation."""

from __future__ import annotations

import ast
import hashlib
import io
import itertools
import os
import random
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from trainer.tinypython import GENERATOR_VERSION, documents, program, text

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "trainer" / "tinypython.py"
# sha256 of text(0, 20_000) for GENERATOR_VERSION 3. If this test fails, the output for a seed changed:
# bump GENERATOR_VERSION and update both constants.
PINNED_VERSION = 3
PINNED_SHA256 = "d51bb88b24ff67da53598bd3ee62ea995527bcc662f1a2438f1cabff4a3b8a79"


def first(seed: int, n: int) -> list[str]:
    """The first n documents of a seed."""
    return list(itertools.islice(documents(seed), n))


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, ast.Module]]:
    """600 programs (seed 1) with their parse trees."""
    return [(src, ast.parse(src)) for src in first(1, 600)]


# ----------------------------------------------------------------------------- determinism

def test_same_seed_gives_identical_text_and_different_seeds_differ():
    a, b = text(3, 20_000), text(3, 20_000)
    assert a == b and len(a) >= 20_000
    assert text(4, 20_000) != a
    assert program(random.Random("x")) == program(random.Random("x"))
    assert program(random.Random("x")) != program(random.Random("y"))


def test_document_i_depends_only_on_seed_and_index():
    docs = first(7, 12)
    assert len(set(docs)) == 12  # a stream does not repeat itself
    stream = documents(7)
    for _ in range(5):
        next(stream)  # consume others first
    assert next(stream) == docs[5]
    assert next(itertools.islice(documents(7), 9, None)) == docs[9]
    assert docs[5] == program(random.Random("7:5"))  # the documented derivation
    assert first(8, 3)[0] != docs[0]


def test_text_joins_whole_documents_with_a_blank_line_until_long_enough():
    docs = first(2, 60)
    out = text(2, 5_000)
    k = next(i for i in range(1, 61) if len("\n".join(docs[:i])) >= 5_000)
    assert out == "\n".join(docs[:k])
    assert len("\n".join(docs[:k - 1])) < 5_000  # no more documents than needed
    assert text(2, 0) == "" and text(2, 1) == docs[0]
    assert out.isascii()


def test_output_is_pinned_for_this_generator_version():
    digest = hashlib.sha256(text(0, 20_000).encode()).hexdigest()
    assert (GENERATOR_VERSION, digest) == (PINNED_VERSION, PINNED_SHA256), (
        "output for a seed changed: bump GENERATOR_VERSION and update PINNED_VERSION / PINNED_SHA256")


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_output_does_not_depend_on_the_hash_seed(hash_seed):
    code = ("import hashlib; from trainer.tinypython import text; "
            "print(hashlib.sha256(text(11, 30_000).encode()).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == hashlib.sha256(text(11, 30_000).encode()).hexdigest()


# ----------------------------------------------------------------------------- validity and shape

def test_programs_parse_and_compile(corpus):
    for src, _ in corpus:
        assert src.endswith("\n") and not src.endswith("\n\n") and src.isascii()
        compile(src, "<tinypython>", "exec")  # also rejects return/break outside def/loop, duplicate args


def test_programs_are_small_and_indented_with_four_spaces(corpus):
    counts = sorted(src.count("\n") for src, _ in corpus)
    assert 12 <= counts[len(counts) // 2] <= 30  # median
    assert sum(5 <= n <= 45 for n in counts) >= 0.9 * len(counts)
    for src, _ in corpus:
        indents = [len(line) - len(line.lstrip(" ")) for line in src.splitlines() if line.strip()]
        assert all(i % 4 == 0 and i <= 16 for i in indents), src
        assert "\t" not in src


# ----------------------------------------------------------------------------- coverage of idioms

def call_name(node: ast.Call) -> str:
    """The called name: f for f(...), m for x.m(...)."""
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def init_stores_arguments(node: ast.ClassDef) -> bool:
    """Whether the class has an __init__ doing `self.x = x`."""
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            for stmt in item.body:
                if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Attribute)
                        and isinstance(stmt.targets[0].value, ast.Name) and stmt.targets[0].value.id == "self"
                        and isinstance(stmt.value, ast.Name) and stmt.value.id == stmt.targets[0].attr):
                    return True
    return False


def is_swap(node: ast.Assign) -> bool:
    """`a, b = b, a`."""
    target, value = node.targets[0], node.value
    if not (isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == 2 == len(value.elts)):
        return False
    left, right = [ast.unparse(e) for e in target.elts], [ast.unparse(e) for e in value.elts]
    return left == right[::-1] and left[0] != left[1]


IN_WORDS, OUT_WORDS = {"in", "input", "src", "source"}, {"out", "output", "dst", "dest"}


def path_way(node: ast.expr) -> str:
    """ "in" / "out" when the path passed to open() is a name saying it is read / written (input_path, out_file)."""
    words = set(node.id.split("_")) if isinstance(node, ast.Name) else set()
    return "in" if words & IN_WORDS else "out" if words & OUT_WORDS else ""


def open_mode(node: ast.Call) -> str:
    """The mode of an open() call ("" when not given as a constant)."""
    mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
    return mode.value if isinstance(mode, ast.Constant) else ""


def format_styles(node: ast.Call) -> set[str]:
    """For `"...".format(...)` on a str literal: its field styles (keyword, positional {}, indexed {0})."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "format" and isinstance(func.value, ast.Constant)
            and isinstance(func.value.value, str)):
        return set()
    styles = {"format keyword"} if node.keywords else set()
    styles.update({"format {}"} if re.search(r"\{[:!}]", func.value.value) else set())
    styles.update({"format {0}"} if re.search(r"\{0[:!}]", func.value.value) else set())
    return styles


def is_bool_comparison(node: ast.expr) -> bool:
    """`x == True` / `x == False`."""
    return (isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.Eq)
            and isinstance(node.comparators[0], ast.Constant) and isinstance(node.comparators[0].value, bool))


def string_accumulator(tree: ast.Module) -> bool:
    """Whether a name bound to "" is later extended with +=."""
    started = {n.targets[0].id: n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assign)
               and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Constant) and n.value.value == ""}
    return any(isinstance(n, ast.AugAssign) and isinstance(n.op, ast.Add) and isinstance(n.target, ast.Name)
               and n.lineno > started.get(n.target.id, n.lineno) for n in ast.walk(tree))


def constructs(tree: ast.Module) -> set[str]:
    """The idioms a program uses."""
    found = {"string accumulator"} if string_accumulator(tree) else set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.args.defaults:
            found.add("def with defaults")
        elif isinstance(node, ast.Call):
            found.add(f"call {call_name(node)}")
            if node.keywords:
                found.add("keyword argument")
            found.update(format_styles(node))
            if call_name(node) == "open" and node.args:
                found.add(f"open {path_way(node.args[0])} {open_mode(node)}")
        elif isinstance(node, ast.ClassDef) and init_stores_arguments(node):
            found.add("class with __init__ storing self.x = x")
        elif isinstance(node, ast.For):
            found.add("for")
        elif isinstance(node, ast.While):
            found.add("while True" if isinstance(node.test, ast.Constant) and node.test.value is True else "while")
        elif isinstance(node, ast.If) and len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
            found.add("elif")
        elif isinstance(node, ast.If) and node.orelse:
            found.add("else")
        elif isinstance(node, ast.Try) and node.handlers:
            found.add("try/except")
            found.update({"finally"} if node.finalbody else set())
            found.update({"try/else"} if node.orelse else set())
            found.update({"except as"} if any(h.name for h in node.handlers) else set())
        elif isinstance(node, ast.Assign) and is_swap(node):
            found.add("swap")
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):
            found.add("tuple unpacking")
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
            found.add("return bool")
        elif isinstance(node, ast.Compare):
            found.update(f"compare {type(op).__name__}" for op in node.ops)
            found.update({"== True/False"} if is_bool_comparison(node) else set())
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.add("not")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            found.add("slice")
        elif isinstance(node, ast.FormattedValue):
            found.add("f-string !r" if node.conversion == ord("r") else "f-string")
            found.update({"f-string format spec"} if node.format_spec else set())
        elif isinstance(node, ast.List) and any(isinstance(e, ast.List) for e in node.elts):
            found.add("nested list")
        elif isinstance(node, ast.Name) and node.id == "current":
            found.add("name current")
        found.add(type(node).__name__)
    return found


REQUIRED = (
    "def with defaults", "keyword argument", "Return", "class with __init__ storing self.x = x",
    "for", "while", "while True", "Break", "Continue", "elif", "else", "IfExp", "BoolOp", "not",
    "compare In", "compare NotIn", "compare Is", "compare IsNot", "With", "try/except", "except as",
    "try/else", "finally", "Raise", "Assert", "return bool", "JoinedStr", "f-string !r", "f-string format spec",
    "call format", "Lambda", "ListComp", "DictComp", "SetComp", "GeneratorExp", "Dict", "Set", "Tuple",
    "List", "Subscript", "slice", "swap", "tuple unpacking", "AugAssign", "Import", "ImportFrom",
    "call enumerate", "call range", "call zip", "call items", "call open", "call append", "call get",
    "call len", "call sum", "call sorted", "call min", "call max", "call print",
    "string accumulator", "format keyword", "format {}", "format {0}", "open in r", "open out w", "call close",
    "== True/False", "nested list", "name current",
)


def test_every_idiom_appears_in_several_programs(corpus):
    programs = corpus[:300]
    counts = {name: 0 for name in REQUIRED}
    for _, tree in programs:
        for name in constructs(tree) & set(REQUIRED):
            counts[name] += 1
    rare = {name: n for name, n in counts.items() if n < 3}
    assert not rare, f"idioms in fewer than 3 of {len(programs)} programs: {rare}"


def test_files_are_opened_the_way_their_path_names_say(corpus):
    opened = {"in": [], "out": []}
    for _, tree in corpus:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and call_name(node) == "open" and node.args and path_way(node.args[0]):
                opened[path_way(node.args[0])].append(open_mode(node))
    assert len(opened["in"]) >= 20 and len(opened["out"]) >= 20
    assert set(opened["in"]) <= {"", "r"} and set(opened["out"]) <= {"w", "a"}


def test_fstrings_outnumber_format_calls_and_flags_are_mostly_tested_idiomatically(corpus):
    fstrings = formats = beginner = idiomatic = 0
    for _, tree in corpus:
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                fstrings += 1
            elif isinstance(node, ast.Call) and format_styles(node):
                formats += 1
            elif isinstance(node, (ast.If, ast.While)):
                test = node.test.operand if isinstance(node.test, ast.UnaryOp) else node.test
                idiomatic += isinstance(test, ast.Name)
                beginner += is_bool_comparison(test)
    assert 0 < formats < fstrings / 3
    assert 0 < beginner < 0.15 * idiomatic


def test_both_quote_styles_delimit_strings(corpus):
    delimiters = set()
    for src, _ in corpus[:300]:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.STRING:
                delimiters.add(tok.string.lstrip("rbfRBF")[0])
    assert delimiters == {"'", '"'}
    fstring_starts = [s for s, _ in corpus if re.search(r"\bf['\"]", s)]
    assert len(fstring_starts) > 0.3 * len(corpus)


def test_comments_and_docstrings_are_rare(corpus):
    sources = [src for src, _ in corpus]
    comment_lines = sum(line.lstrip().startswith("#") for src in sources for line in src.splitlines())
    all_lines = sum(src.count("\n") for src in sources)
    assert 0 < comment_lines < 0.02 * all_lines
    with_docstring = sum('"""' in src for src in sources)
    assert 0 < with_docstring < 0.25 * len(sources)


# ----------------------------------------------------------------------------- names are reused

def bindings_and_loads(tree: ast.Module) -> tuple[dict[str, tuple[int, int]], list[tuple[str, tuple[int, int]]]]:
    """First binding position of each name/attribute (assignments, defs, classes, params), and all loads."""
    bound: dict[str, tuple[int, int]] = {}
    loads: list[tuple[str, tuple[int, int]]] = []
    for node in ast.walk(tree):
        where = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            name, store = node.name, True
        elif isinstance(node, ast.arg):
            name, store = node.arg, True
        elif isinstance(node, ast.Name):
            name, store = node.id, isinstance(node.ctx, ast.Store)
        elif isinstance(node, ast.Attribute):
            name, store = "." + node.attr, isinstance(node.ctx, ast.Store)
        else:
            continue
        if store:
            bound[name] = min(bound.get(name, where), where)
        else:
            loads.append((name, where))
    return bound, loads


def reuses_a_name(tree: ast.Module) -> bool:
    """Whether some name bound in the program is loaded after it is bound."""
    bound, loads = bindings_and_loads(tree)
    return any(name in bound and where > bound[name] for name, where in loads)


def test_names_defined_earlier_are_used_later(corpus):
    reusing = sum(reuses_a_name(tree) for _, tree in corpus)
    assert reusing >= 0.9 * len(corpus)


def test_functions_and_classes_are_used_after_their_definition(corpus):
    used = total = 0
    for _, tree in corpus:
        defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name != "main"]
        called = {call_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        total += len(defined)
        used += sum(name in called for name in defined)
    assert total > 200 and used >= 0.95 * total


def init_stores(tree: ast.Module) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """Per __init__: its parameters, and the (attribute, argument) of each `self.attr = arg` storing an argument."""
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
            params = [a.arg for a in fn.args.args[1:]]
            stores = [(st.targets[0].attr, st.value.id) for st in fn.body
                      if isinstance(st, ast.Assign) and isinstance(st.targets[0], ast.Attribute)
                      and isinstance(st.value, ast.Name) and st.value.id in params]
            out.append((params, stores))
    return out


def test_init_stores_arguments_by_name_not_by_position(corpus):
    inits = [init for _, tree in corpus for init in init_stores(tree) if len(init[1]) >= 2]
    shuffled = sum([arg for _, arg in stores] != [p for p in params if p in dict(map(reversed, stores))]
                   for params, stores in inits)
    private = sum(all(attr == "_" + arg for attr, arg in stores) for _, stores in inits)
    assert len(inits) > 100 and 0.15 * len(inits) < shuffled < 0.5 * len(inits)
    assert 0.1 * len(inits) < private < 0.4 * len(inits)
    assert all(attr in (arg, "_" + arg) for _, stores in inits for attr, arg in stores)


def test_private_attributes_are_read_only_through_self(corpus):
    outside = [node for _, tree in corpus for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
               and not (isinstance(node.value, ast.Name) and node.value.id == "self")]
    assert outside == []


def name_words(name: str) -> list[str]:
    """The words of a name, lowercased (split at underscores and CamelCase humps)."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+", name)]


def made_up_names(src: str, known: set[str]) -> tuple[set[str], set[str]]:
    """The names a program binds that contain a word outside known, and those of them read after binding."""
    bound, loads = bindings_and_loads(ast.parse(src))
    new = {n for n in bound if not n.startswith("__") and any(w not in known for w in name_words(n))}
    return new, {name for name, where in loads if name in new and where > bound[name]}


def test_coined_names_are_made_up_reused_and_deterministic():
    assert text(0, 20_000, coined=0.0) == text(0, 20_000)  # no made-up names: the plain text
    docs = list(itertools.islice(documents(3, coined=0.5), 200))
    assert docs == list(itertools.islice(documents(3, coined=0.5), 200))
    assert docs[4] == program(random.Random("3:4"), 0.5)
    known = {w for src in first(1, 2000) for name in bindings_and_loads(ast.parse(src))[0] for w in name_words(name)}
    found = [made_up_names(src, known) for src in docs]
    made_up, reused = sum(len(new) for new, _ in found), sum(len(read) for _, read in found)
    assert made_up >= 1000 and reused >= 0.5 * made_up  # made-up names, most of them read again after binding
    assert sum(len(made_up_names(src, known)[0]) for src in first(3, 200)) <= 10  # without coining: (almost) none


def test_reuse_check_detects_programs_without_reuse():
    assert not reuses_a_name(ast.parse("x = 1\nprint(2)\n"))
    assert not reuses_a_name(ast.parse("print(y)\ny = 1\n"))
    assert reuses_a_name(ast.parse("x = 1\nprint(x)\n"))


# ----------------------------------------------------------------------------- isolation from the probes

def test_module_does_not_import_the_task_probes():
    source = SOURCE.read_text()
    assert not re.search(r"^\s*(import|from)\s.*tasks", source, re.MULTILINE)
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"__future__", "random", "collections.abc", "dataclasses", "functools", "typing"}
    code = ("import sys, trainer.tinypython; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('trainer'))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    loaded = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=60).stdout.split()
    assert "trainer.tinypython" in loaded
    assert not [m for m in loaded if m == "trainer.tasks" or m.startswith("trainer.tasks.")]


def test_generation_uses_only_its_own_rng():
    state = random.getstate()
    try:
        random.seed(1)
        a = first(5, 3)
        random.seed(2)
        assert first(5, 3) == a
    finally:
        random.setstate(state)


def test_repeats_copy_a_definition_under_a_new_name():
    assert text(0, 20_000, repeat=0.0) == text(0, 20_000)  # no copies: the plain text
    docs = list(itertools.islice(documents(9, repeat=1.0), 200))
    assert docs == list(itertools.islice(documents(9, repeat=1.0), 200))
    copied = 0
    for src in docs:
        tree = ast.parse(src)
        defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        for a, b in itertools.combinations(defs, 2):
            if b.name.startswith(a.name) and b.name != a.name:
                copied += 1
                assert ast.dump(ast.Module(a.body, [])) == ast.dump(ast.Module(b.body, []))  # the same body
                assert src.rstrip().endswith(ast.get_source_segment(src, b).rstrip())  # pasted at the end
    assert copied >= 100  # most programs have a definition to copy
    plain = sum(any(b.name.startswith(a.name) and b.name != a.name for a, b in itertools.combinations(
        [n for n in ast.parse(src).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))], 2)) for src in first(9, 200))
    assert plain <= 10  # without repeats, (almost) no such pairs: the check can fail
