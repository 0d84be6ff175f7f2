"""The task suite: the paper's 20 binary next-token tasks, by name, with their encoding and loss."""

from __future__ import annotations

from trainer.errors import UserError
from trainer.tasks import binding, lexical, syntax
from trainer.tasks.base import (
    SPLITS,
    Task,
    TaskBatch,
    TaskPair,
    encode_pairs,
    last_logits,
    pair_accuracy,
    pair_loss,
    prompt_split,
)

__all__ = ["SPLITS", "TASKS", "Task", "TaskBatch", "TaskPair", "encode_pairs", "get_task", "last_logits",
           "pair_accuracy", "pair_loss", "prompt_split"]

# Answers are adapted to stdlib-2k: a line-ending colon is the one token ":\n"; "]]\n" is "]" + "]\n";
# ")\n" is one token; " enumerate" starts with the token " en"; an indent of d spaces starts with d - 1.
_TABLE = (
    Task("single_double_quote", "a string opened with (\" closes with \"), one opened with (' with ')",
         '")', "')", lexical.single_double_quote,
         adversarial=('print("don\'t stop', "msg = 'say \"hi\" to", 'parser.error("quote \' and')),
    Task("final_kwarg", "after parameters with defaults the next takes a default; after plain ones the def closes",
         "=None", "):\n", syntax.final_kwarg),
    Task("set_or_string", "a collector made with set() takes .add, one made with \"\" takes += (names vary)",
         ".add", " +=", binding.set_or_string,
         adversarial=('def f(items):\n    seen = ""\n    names = set()\n    for x in items:\n        seen',)),
    Task("set_or_string_fixedvarname", "the same as set_or_string with the variable always named current",
         ".add", " +=", binding.set_or_string_fixedvarname,
         adversarial=('def f(items):\n    current = set()\n    current = ""\n    for x in items:\n        current',)),
    Task("class_init", "in __init__, `self.x =` is followed by the argument named x",
         "right argument", "wrong argument", binding.class_init),
    Task("with_as", "`with open(...` continues after `)` with ` as`; `f = open(...` ends the line at `)`",
         ")", ")\n", syntax.with_as),
    Task("bracket_brace", "inside a dict literal a key is followed by `:`, inside a list by `,`",
         ":", ",", lexical.bracket_brace),
    Task("with_open", "the file mode follows the variable's name: r for an input, w for an output",
         "r", "w", lexical.with_open),
    Task("bracket_counting", "a list nested two deep closes with `]` then `]\\n`; a flat list with `]\\n`",
         "]", "]\n", lexical.bracket_counting,
         adversarial=("# the first [ row\nvalues = [1, 2, 3",
                      "data = [" + ", ".join(str(i % 10) for i in range(60)),
                      "grid = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], 15, 16")),
    Task("for_while", "`for x` continues with ` in`, `while x` ends the line with a colon",
         " in", ":\n", syntax.for_while),
    Task("else_elif", "`else` ends the line with a colon, `elif` goes on with a condition",
         ":\n", "a condition token", syntax.else_elif),
    Task("fstring_brace", "a string with a `{name}` field closes the call as an f-string, goes on to .format when plain",
         '")', '"', lexical.fstring_brace),
    Task("if_ternary", "a statement `if c` ends with a colon, a ternary `a if c` continues with ` else`",
         ":\n", " else", syntax.if_ternary),
    Task("var_swap", "`a, b = b,` completes the swap with ` a`", "first name", "second name", binding.var_swap),
    Task("indent_for", "after `for ...:` the next line is one level deeper, after a statement it is not",
         "deeper indent", "same indent", lexical.indent_for),
    Task("lambda_func", "`lambda x` continues with `:`, a method's `def f` with `(self`", ":", "(self", syntax.lambda_func),
    Task("if_equals", "`if x` continues with ` ==`, a line-start `x` with ` =`", " ==", " =", syntax.if_equals),
    Task("enumerate_range", "`for i, x in` takes enumerate (first token ` en`), `for i in` takes ` range`",
         " en", " range", syntax.enumerate_range),
    Task("var_if", "`if flag == True` ends with a colon, `flag = True` with a newline",
         ":\n", "\n", syntax.var_if),
    Task("while_return_true", "`while True` ends with a colon, `return True` with a newline",
         ":\n", "\n", syntax.while_return_true),
)
TASKS: dict[str, Task] = {t.name: t for t in _TABLE}


def get_task(name: str) -> Task:
    """The task of that name, or a UserError listing the known ones."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]
