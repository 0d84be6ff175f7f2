"""Tests of trainer/tasks: the 20 generators, their splits, single-token answers, encoding, loss and accuracy."""

from __future__ import annotations

import math
import random
import re
from importlib import resources

import pytest
import torch
from tokenizers import Tokenizer

from trainer.errors import UserError
from trainer.tasks import (
    SPLITS,
    TASKS,
    Task,
    TaskBatch,
    TaskPair,
    encode_pairs,
    get_task,
    last_logits,
    pair_accuracy,
    pair_loss,
    prompt_split,
)

ORDER = [  # the suite's order (the paper's task list)
    "single_double_quote", "final_kwarg", "set_or_string", "set_or_string_fixedvarname", "class_init",
    "with_as", "bracket_brace", "with_open", "bracket_counting", "for_while", "else_elif", "fstring_brace",
    "if_ternary", "var_swap", "indent_for", "lambda_func", "if_equals", "enumerate_range", "var_if",
    "while_return_true",
]
LABELLED = {"class_init", "else_elif", "var_swap", "indent_for"}  # answers vary per pair
N_PAIRS = 300
N_CTX = 64  # the smallest shipped config (tiny.toml); every prompt must fit it
EOT_ID = 2047
SHIPPED = resources.files("trainer") / "assets" / "stdlib-2k.json"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    """The shipped stdlib-2k tokenizer (tests that need it skip when it has not been trained yet)."""
    if not SHIPPED.is_file():
        pytest.skip("trainer/assets/stdlib-2k.json is absent: run `python -m trainer.tokenizer` to train it")
    from trainer.tokenizer import load_tokenizer

    return load_tokenizer("stdlib-2k")


@pytest.fixture(scope="module")
def suite_pairs() -> dict[tuple[str, str], list[TaskPair]]:
    """N_PAIRS pairs of every task and split, seed 0."""
    return {(name, split): task.pairs(split, N_PAIRS) for name, task in TASKS.items() for split in SPLITS}


def test_all_twenty_tasks_in_tasks_md_order() -> None:
    assert list(TASKS) == ORDER
    for name, task in TASKS.items():
        assert isinstance(task, Task) and task.name == name
        assert task.description and "\n" not in task.description
        assert task.target != task.alternative


def test_get_task_and_unknown_task_error() -> None:
    assert get_task("bracket_counting") is TASKS["bracket_counting"]
    with pytest.raises(UserError, match=r"unknown task 'brackets' \(known: single_double_quote, final_kwarg, "):
        get_task("brackets")
    with pytest.raises(UserError, match="unknown split 'valid'"):
        TASKS["var_if"].pairs("valid", 3)


def test_pairs_are_deterministic_and_ignore_global_random_state() -> None:
    task = TASKS["set_or_string"]
    random.seed(1)
    first = task.pairs("train", 20, seed=3)
    random.seed(2)
    assert task.pairs("train", 20, seed=3) == first
    assert task.pairs("train", 20, seed=4) != first
    assert task.pairs("train", 5, seed=3) == first[:5]  # a longer request extends a shorter one
    assert all(p.task == "set_or_string" for p in first)


def test_generators_draw_only_from_the_rng_passed_in() -> None:
    for task in TASKS.values():
        random.seed(0)
        a = task.generate(random.Random(9))
        random.seed(1)
        assert task.generate(random.Random(9)) == a, task.name


def test_splits_are_disjoint_by_prompt_and_pairs_distinct(suite_pairs: dict) -> None:
    for name in TASKS:
        prompts = {split: {p for pair in suite_pairs[name, split] for p in pair.prompts} for split in SPLITS}
        assert not prompts["train"] & prompts["eval"], name
        assert not prompts["train"] & prompts["test"], name
        assert not prompts["eval"] & prompts["test"], name
        for split in SPLITS:
            pairs = suite_pairs[name, split]
            assert len(pairs) == N_PAIRS and len({p.prompts for p in pairs}) == N_PAIRS, name
            assert all(prompt_split(p) == split for pair in pairs for p in pair.prompts), name


def test_pairs_are_minimal_binary_choices(suite_pairs: dict) -> None:
    for name, task in TASKS.items():
        for pair in suite_pairs[name, "train"]:
            assert pair.prompts[0] != pair.prompts[1] and pair.answers[0] != pair.answers[1], name
            if name not in LABELLED:
                assert pair.answers == (task.target, task.alternative), name


def test_labelled_answers_mean_what_the_task_says(suite_pairs: dict) -> None:
    for pair in suite_pairs["class_init", "train"]:  # `self.x =` -> " x"
        for prompt, answer in zip(pair.prompts, pair.answers):
            assert prompt.rsplit("self.", 1)[1].lstrip("_") == answer.strip() + " ="
    for pair in suite_pairs["var_swap", "train"]:  # `a, b = b,` -> " a"
        for prompt, answer in zip(pair.prompts, pair.answers):
            assert prompt.rsplit("\n", 1)[1].strip().startswith(answer.strip() + ",")
    for pair in suite_pairs["indent_for", "train"]:  # one more level after the for line
        assert len(pair.answers[0]) == len(pair.answers[1]) + 4 and set("".join(pair.answers)) == {" "}
        assert pair.prompts[0].rstrip().endswith(":") and not pair.prompts[1].rstrip().endswith(":")
    for pair in suite_pairs["else_elif", "train"]:
        assert pair.prompts[0].endswith("else") and pair.prompts[1].endswith("elif") and pair.answers[0] == ":\n"
    for pair in suite_pairs["fstring_brace", "train"]:  # the same prompt but for the f prefix; a named field
        assert pair.answers == ('")', '"') and pair.prompts[0].replace('f"', '"') == pair.prompts[1]
        assert re.search(r'f"[^"\n]*\{\w+\}[^"\n]*$', pair.prompts[0])
    for pair in suite_pairs["lambda_func", "train"]:  # a lambda in a method vs a method's def
        assert pair.answers == (":", "(self") and "lambda " in pair.prompts[0].rsplit("\n", 1)[1]
        assert re.fullmatch(r"    def \w+", pair.prompts[1].rsplit("\n", 1)[1])


def test_prompts_vary(suite_pairs: dict) -> None:
    for name in TASKS:
        pairs = suite_pairs[name, "train"]
        firsts = [p.prompts[0] for p in pairs]
        assert len(set(firsts)) >= 0.9 * len(firsts), name
        assert len({len(p) for p in firsts}) >= 20, name  # the answer is not at a fixed offset
        assert len({p.count("\n") for p in firsts}) >= 3, name  # nor after a fixed number of lines


def test_every_answer_is_one_clean_token_and_prompts_fit(tok: Tokenizer, suite_pairs: dict) -> None:
    for name in TASKS:
        for split in SPLITS:
            batch = encode_pairs(suite_pairs[name, split][:200], tok, N_CTX)  # raises on any problem
            assert batch.tokens.shape[0] == 400 and batch.tokens.shape[1] <= N_CTX, name
            assert bool((batch.correct != batch.wrong).all()), name


def test_adversarial_prompts_encode(tok: Tokenizer) -> None:
    assert len(TASKS["bracket_counting"].adversarial) >= 2
    for task in TASKS.values():
        for prompt in task.adversarial:
            assert isinstance(prompt, str) and tok.encode(prompt).ids


def test_encode_pairs_shapes_padding_and_rows(tok: Tokenizer) -> None:
    pairs = [TaskPair(("x = [1, 2", "y = [[1, 2], [3"), ("]\n", "]")),
             TaskPair(("while True", "def f():\n    return True"), (":\n", "\n"))]
    batch = encode_pairs(pairs, tok, N_CTX)
    lengths = [len(tok.encode(p).ids) for pair in pairs for p in pair.prompts]
    assert batch.tokens.shape == (4, max(lengths)) and batch.tokens.dtype == torch.long
    assert batch.last.tolist() == [n - 1 for n in lengths]
    for r, n in enumerate(lengths):
        prompt = pairs[r // 2].prompts[r % 2]
        assert batch.tokens[r, :n].tolist() == tok.encode(prompt).ids
        assert batch.tokens[r, n:].tolist() == [EOT_ID] * (batch.tokens.shape[1] - n)
    ids = {s: tok.encode(s).ids[0] for s in ("]\n", "]", ":\n", "\n")}
    assert batch.correct.tolist() == [ids["]\n"], ids["]"], ids[":\n"], ids["\n"]]
    assert batch.wrong.tolist() == [ids["]"], ids["]\n"], ids["\n"], ids[":\n"]]


def test_encode_pairs_errors(tok: Tokenizer) -> None:
    multi = TaskPair(("for i, x in", "for i in"), (" enumerate", " range"), task="enumerate_range")
    with pytest.raises(UserError, match=r"enumerate_range: answer ' enumerate' is 4 tokens \['Ġen', .*\] in this "
                                        r"tokenizer; the task needs single-token answers"):
        encode_pairs([multi], tok, N_CTX)
    merged = TaskPair(("x = [1, 2]", "y = [[1, 2]"), ("\n", "]\n"), task="bracket_counting")
    with pytest.raises(UserError, match=r"bracket_counting: answer '\\n' merges with the end of prompt 'x = \[1, 2\]' "
                                        r"\(prompt \+ answer ends in tokens .*token boundary"):
        encode_pairs([merged], tok, N_CTX)
    long = TaskPair(("x = [" + ", ".join("1" * 40), "y = [1"), ("]\n", "]"), task="bracket_counting")
    with pytest.raises(UserError, match=r"bracket_counting: a prompt is \d+ tokens but the model's n_ctx is 64"):
        encode_pairs([long], tok, N_CTX)
    with pytest.raises(UserError, match="no task pairs"):
        encode_pairs([], tok, N_CTX)


def hand_batch(correct: list[int], wrong: list[int]) -> TaskBatch:
    """A batch with only answer ids filled in (the loss never looks at tokens)."""
    n = len(correct)
    return TaskBatch(torch.zeros(n, 1, dtype=torch.long), torch.zeros(n, dtype=torch.long),
                     torch.tensor(correct), torch.tensor(wrong))


def test_pair_loss_equal_logits_is_ln2() -> None:
    batch = hand_batch([1, 2, 0, 3], [2, 1, 3, 0])
    assert pair_loss(torch.zeros(4, 5), batch).item() == pytest.approx(math.log(2))


def test_pair_loss_by_hand() -> None:
    logits = torch.tensor([[0.0, 2.0, 0.0, 9.0],    # correct 1 beats wrong 0 by 2; token 3 is ignored
                           [1.0, 0.0, -5.0, 0.0]])  # correct 1 loses to wrong 0 by 1
    batch = hand_batch([1, 1], [0, 0])
    by_hand = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2
    assert pair_loss(logits, batch).item() == pytest.approx(by_hand, rel=1e-6)
    # four rows = two pairs: the mean over rows is the mean over pairs of each pair's two-prompt mean
    four = hand_batch([1, 1, 1, 1], [0, 0, 0, 0])
    both = torch.cat([logits, logits.flip(0)])
    assert pair_loss(both, four).item() == pytest.approx(by_hand, rel=1e-6)


def test_pair_accuracy_counts_strict_wins() -> None:
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.0, 3.0]])
    batch = hand_batch([1, 1, 1, 1], [0, 0, 0, 0])
    assert pair_accuracy(logits, batch) == pytest.approx(0.5)  # rows 0 and 3 win, a tie does not


def test_last_logits_picks_each_rows_last_position() -> None:
    logits = torch.arange(2 * 3 * 4, dtype=torch.float).reshape(2, 3, 4)  # [N, T, vocab]
    batch = TaskBatch(torch.zeros(2, 3, dtype=torch.long), torch.tensor([2, 0]), torch.tensor([0, 0]),
                      torch.tensor([1, 1]))
    assert last_logits(logits, batch).tolist() == [logits[0, 2].tolist(), logits[1, 0].tolist()]
