"""Where training text shows what each task asks: per task, a regex for the context that calls for its target answer
and one for its alternative's (None for tasks whose answers are labels, such as "the right argument")."""

from __future__ import annotations

NAME = r"[A-Za-z_]\w*"
PATTERNS: dict[str, tuple[str, str | None]] = {
    "single_double_quote": (r'\("[^"\n]*"\)', r"\('[^'\n]*'\)"),
    "final_kwarg": (rf"def {NAME}\(({NAME}=[^,()\n]*, )+{NAME}=", rf"def {NAME}\(({NAME}, )*{NAME}\):"),
    "set_or_string": (rf"({NAME}) = set\(\)\n(?:.*\n){{0,12}}?\s*\1\.add\(",
                      rf"({NAME}) = (?:\"\"|'')\n(?:.*\n){{0,12}}?\s*\1 \+="),
    "set_or_string_fixedvarname": (r"current = set\(\)\n(?:.*\n){0,12}?\s*current\.add\(",
                                   r"current = (?:\"\"|'')\n(?:.*\n){0,12}?\s*current \+="),
    "class_init": (rf"self\.({NAME}) = \1\n", None),
    "with_as": (r"with open\([^\n]*\) as ", rf"{NAME} = open\([^\n]*\)\n"),
    "bracket_brace": (rf"\{{\s*(?:[\"']\w+[\"']|{NAME})\s*:", rf"\[\s*(?:[\"']\w+[\"']|{NAME})\s*,"),
    "with_open": (r"open\(\w*in\w*, [\"']r", r"open\(\w*out\w*, [\"']w"),
    "bracket_counting": (r"\]\]\n", r"[^\]]\]\n"),
    "for_while": (rf"^\s*for {NAME}(?:, {NAME})* in ", rf"^\s*while {NAME}:\n"),
    "else_elif": (r"^\s*else:\n", r"^\s*elif "),
    "fstring_brace": (r"\bf\"[^\"\n]*\{\w+\}[^\"\n]*\"\)", r"(?<!f)\"[^\"\n]*\{\w+\}[^\"\n]*\"\.format\("),
    "if_ternary": (r"^\s*if [^\n]*:\n", r"=[^\n]* if [^\n]* else "),
    "var_swap": (rf"({NAME}), ({NAME}) = \2, \1\b", None),
    "indent_for": (r"^( *)for [^\n]*:\n\1    \S", None),
    "lambda_func": (rf"lambda {NAME}(?:, {NAME})*:", rf"^\s+def {NAME}\(self"),
    "if_equals": (r"^\s*if [\w.]+ ==", r"^\s*[\w.]+ = "),
    "enumerate_range": (rf"for {NAME}, {NAME} in enumerate\(", rf"for {NAME} in range\("),
    "var_if": (rf"if {NAME} == True:\n", rf"^\s*{NAME} = True\n"),
    "while_return_true": (r"while True:\n", r"return True\n"),
}
