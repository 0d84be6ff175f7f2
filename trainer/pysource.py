"""Python source without its comments and docstrings (the standard library's text as a corpus of code alone)."""

from __future__ import annotations

import ast
import io
import tokenize

STRIP_VERSION = 1  # bump when strip_comments's output for a text changes (it is part of the corpus fingerprint)


def strip_comments(text: str) -> str:
    """The text without comments and docstrings; lines left empty by that go too. A docstring that is its block's
    only statement becomes `pass`. Text that does not parse is returned as it is."""
    try:
        tree = ast.parse(text)
        comments = _comment_spans(text)
    except (SyntaxError, ValueError, tokenize.TokenError):
        return text
    lines = text.splitlines(keepends=True)
    cut: dict[int, tuple[int, int]] = {}  # 0-based line -> (start col, end col) of a comment to drop
    for row, col in comments:
        cut[row] = (col, len(lines[row].rstrip("\r\n")))
    dropped: set[int] = set()  # 0-based lines of docstrings
    replaced: dict[int, str] = {}  # 0-based line -> its new text (a lone docstring's `pass`)
    for owner, body in _docstring_blocks(tree):
        doc = body[0]
        first, last = doc.lineno - 1, doc.end_lineno - 1
        if not _owns_lines(lines, doc):
            continue  # shares a line with code (`def f(): "doc"`): left alone
        dropped.update(range(first, last + 1))
        if not isinstance(owner, ast.Module) and len(body) > 1 and last + 1 < len(lines) and not lines[last + 1].strip():
            dropped.add(last + 1)  # the blank line after a def's or class's docstring
        if len(body) == 1:
            replaced[first] = lines[first][:len(lines[first]) - len(lines[first].lstrip())] + "pass\n"
    out = []
    for i, line in enumerate(lines):
        if i in replaced:
            out.append(replaced[i])
            continue
        if i in dropped:
            continue
        if i in cut:
            start, end = cut[i]
            kept = line[:start].rstrip()
            if not kept:
                continue  # a comment line
            line = kept + line[end:]
        out.append(line)
    return "".join(out).lstrip("\n")


def _comment_spans(text: str) -> list[tuple[int, int]]:
    """(0-based line, column) where each comment starts."""
    return [(tok.start[0] - 1, tok.start[1]) for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.COMMENT]


def _docstring_blocks(tree: ast.AST) -> list[tuple[ast.AST, list[ast.stmt]]]:
    """The module, classes and functions whose body starts with a string literal statement, with their bodies."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.append((node, node.body))
    return out


def _owns_lines(lines: list[str], node: ast.stmt) -> bool:
    """Whether a statement alone fills its lines (nothing but spaces before it, and nothing but a comment after)."""
    before = lines[node.lineno - 1].encode("utf-8")[:node.col_offset]  # ast's columns count UTF-8 bytes
    after = lines[node.end_lineno - 1].encode("utf-8")[node.end_col_offset:].decode("utf-8", "replace").strip()
    return not before.strip() and (not after or after.startswith("#"))
