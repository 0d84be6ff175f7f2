"""Task pairs, their deterministic disjoint splits, and their encoding into a batch with its binary loss."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from trainer.errors import UserError

SPLITS = ("train", "eval", "test")  # a prompt's split: sha256 of its text but the last line, modulo 3
MAX_DRAWS_PER_PAIR = 200  # a split keeps 1 pair in 3 to 9 draws; give up well after that


@dataclass(frozen=True)
class TaskPair:
    """Two minimally different prompts; answers[i] is correct after prompts[i] and the other's alternative."""

    prompts: tuple[str, str]
    answers: tuple[str, str]
    task: str = ""  # the task's name, for error messages; set by Task.pairs


@dataclass(frozen=True)
class Task:
    """One binary next-token task: a name, what decides it, its two answers and a random pair generator."""

    name: str
    description: str  # one line: what decides the answer
    target: str  # the "A" answer (or a label such as "right argument" when answers vary per pair)
    alternative: str  # the "B" answer
    generate: Callable[[random.Random], TaskPair]  # one random pair, from the rng passed in only
    adversarial: tuple[str, ...] = ()  # prompts predicted to break the circuit (no answers)

    def pairs(self, split: str, n: int, seed: int = 0) -> list[TaskPair]:
        """n distinct pairs of one split, deterministic from (task, split, n, seed)."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for task {self.name!r}: use one of {', '.join(SPLITS)}")
        rng = random.Random(f"{self.name}/{seed}")  # str seeds hash with sha512: stable across runs
        out: list[TaskPair] = []
        seen: set[tuple[str, str]] = set()
        for _ in range(MAX_DRAWS_PER_PAIR * max(n, 10)):
            if len(out) == n:
                return out
            pair = self.generate(rng)
            if pair.prompts in seen or not all(prompt_split(p) == split for p in pair.prompts):
                continue
            seen.add(pair.prompts)
            out.append(replace(pair, task=self.name))
        if len(out) < n:
            raise UserError(f"task {self.name!r} yields only {len(out)} distinct {split} pairs: ask for fewer than {n}")
        return out


def prompt_split(prompt: str) -> str:
    """The split of a prompt: a stable hash of its text without the last line (a pair's prompts must agree).

    Leaving out the last line, where most pairs differ, keeps both prompts of a pair and its near-duplicates
    in one split, so a split's contexts are unseen in the others.
    """
    stem = prompt.rstrip("\n").rsplit("\n", 1)[0]
    digest = hashlib.sha256(stem.encode("utf-8")).digest()
    return SPLITS[int.from_bytes(digest[:8], "big") % len(SPLITS)]


@dataclass(frozen=True)
class TaskBatch:
    """Encoded pairs: rows 2i and 2i+1 are the two prompts of pair i."""

    tokens: torch.Tensor  # [N, T] int64, right-padded with the EOT id
    last: torch.Tensor  # [N] int64 index of each row's last prompt token
    correct: torch.Tensor  # [N] int64 token id of the correct answer
    wrong: torch.Tensor  # [N] int64 token id of the alternative


def encode_pairs(pairs: Sequence[TaskPair], tok: Any, n_ctx: int) -> TaskBatch:
    """Tokenize pairs into a batch, checking that answers are single tokens on a clean boundary."""
    from trainer.tokenizer import eot_id

    if not pairs:
        raise UserError("no task pairs to encode: ask for at least one pair")
    prompts = [p for pair in pairs for p in pair.prompts]  # row r = 2 * pair + prompt
    rows = [e.ids for e in tok.encode_batch(prompts)]
    joined = [e.ids for e in tok.encode_batch([p + a for pair in pairs for p in pair.prompts for a in pair.answers])]
    answer_ids: dict[str, int] = {}
    correct: list[int] = []
    wrong: list[int] = []
    for i, pair in enumerate(pairs):
        ids = [answer_ids.setdefault(a, answer_id(tok, a, pair.task)) for a in pair.answers]
        for j in (0, 1):
            r = 2 * i + j
            check_prompt(tok, pair, j, rows[r], joined[2 * r : 2 * r + 2], ids, n_ctx)
            correct.append(ids[j])
            wrong.append(ids[1 - j])
    tokens = torch.full((len(rows), max(len(r) for r in rows)), eot_id(tok), dtype=torch.long)  # [N, T]
    for r, row in enumerate(rows):
        tokens[r, : len(row)] = torch.tensor(row, dtype=torch.long)
    last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)  # [N]
    return TaskBatch(tokens, last, torch.tensor(correct, dtype=torch.long), torch.tensor(wrong, dtype=torch.long))


def answer_id(tok: Any, answer: str, task: str) -> int:
    """The single token id of an answer string, or a UserError saying how it tokenizes."""
    ids = tok.encode(answer).ids
    if len(ids) != 1:
        pieces = [tok.id_to_token(i) for i in ids]
        raise UserError(
            f"task {task or '?'}: answer {answer!r} is {len(ids)} tokens {pieces} in this tokenizer; "
            "the task needs single-token answers"
        )
    return ids[0]


def check_prompt(tok: Any, pair: TaskPair, j: int, ids: list[int], joined: list[list[int]],
                 answer_ids: Sequence[int], n_ctx: int) -> None:
    """Raise a UserError unless prompt j fits n_ctx and each answer appended to it is exactly one more token."""
    if not ids or len(ids) > n_ctx:
        raise UserError(
            f"task {pair.task or '?'}: a prompt is {len(ids)} tokens but the model's n_ctx is {n_ctx}: "
            "use a model with a longer context or shorter prompts"
        )
    for answer, aid, got in zip(pair.answers, answer_ids, joined):
        if got != ids + [aid]:
            tail = [tok.id_to_token(i) for i in got[max(0, len(ids) - 2):]]
            raise UserError(
                f"task {pair.task or '?'}: answer {answer!r} merges with the end of prompt "
                f"{pair.prompts[j][-40:]!r} (prompt + answer ends in tokens {tail}); "
                "the prompt must end on a token boundary"
            )


def last_logits(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Pick each row's logits at its last prompt token: [N, T, vocab] -> [N, vocab]."""
    return logits[torch.arange(logits.shape[0], device=logits.device), batch.last.to(logits.device)]


def pair_loss(logits_last: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean cross-entropy over {correct, wrong} per row: the average over pairs of both prompts' mean."""
    two = binary_logits(logits_last, batch)  # [N, 2], column 0 the correct answer
    target = torch.zeros(two.shape[0], dtype=torch.long, device=two.device)
    return F.cross_entropy(two.float(), target)


def pair_accuracy(logits_last: torch.Tensor, batch: TaskBatch) -> float:
    """Fraction of rows whose correct answer's logit beats the alternative's."""
    two = binary_logits(logits_last, batch)  # [N, 2]
    return float((two[:, 0] > two[:, 1]).float().mean())


def binary_logits(logits_last: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """The logits of the correct and the wrong answer side by side: [N, vocab] -> [N, 2]."""
    ids = torch.stack([batch.correct, batch.wrong], dim=1).to(logits_last.device)  # [N, 2]
    return logits_last.gather(1, ids)
