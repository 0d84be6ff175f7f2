"""Activation tables: run a model over a sample of its corpus and keep, per node, only the examples the site shows."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from exporter.inputs import CircuitInput, RunInput
from trainer import data
from trainer.errors import UserError
from trainer.fileio import significant
from trainer.masks import Kept, ablate, model_device
from trainer.schema import parse_node_id
from trainer.mixture import TrainingText
from trainer.model import GPT

log = logging.getLogger(__name__)
PASS_BYTES = 16 << 20  # bytes of one layer's scores or MLP activations in one forward pass of the tables
SAMPLE_SEED = 11  # windows for the tables are drawn with this seed, apart from training and means
POOL_MULT = 4  # the windows are drawn from files holding at least this many times the tokens they need


@dataclass(frozen=True)
class TableConfig:
    """How much text the tables see and how much of it they keep."""

    tokens: int = 32768  # pretraining tokens run through the model (rounded up to whole windows)
    window: int = 64  # tokens per sampled window (at most n_ctx): the left context an activation sees
    examples: int = 8  # examples kept at each end (top and bottom) of a node's distribution
    left: int = 12  # context tokens shown left of the activating token
    right: int = 4  # and right of it
    bins: int = 24  # histogram bins over the nonzero activations
    task_pairs: int = 32  # task pairs behind the class activations and the task examples
    batch: int = 64  # windows per forward pass


def token_strings(tok: Tokenizer, vocab_size: int) -> list[str]:
    """The text of every token id (ids the tokenizer lacks are shown as <id>)."""
    n = tok.get_vocab_size()
    return [tok.decode([i], skip_special_tokens=False) if i < n else f"<{i}>" for i in range(vocab_size)]


def sample_windows(inp: RunInput, text: TrainingText, cfg: TableConfig) -> torch.Tensor:
    """Random windows [N, W] of the run's pretraining text (a seeded sample of train-split files and generated
    documents, in the run's mixture), a function of the text's recipe, the tokenizer and the seed only."""
    run = inp.run
    width = min(cfg.window, run.cfg.model.n_ctx)
    pool = text.pool("train", POOL_MULT * cfg.tokens, SAMPLE_SEED)  # [n]
    if len(pool) <= width:
        raise UserError(f"{run.path}: the corpus has {len(pool)} training tokens, too few for a window of {width}")
    n = max(1, -(-cfg.tokens // width))
    return data.sample_batch(pool, width - 1, n, SAMPLE_SEED, 0)  # [N, W]


@contextmanager
def on_device(model: GPT, device: str | torch.device) -> Iterator[None]:
    """The model on a device for a with-block, then back where it was (the ONNX export reads it on CPU)."""
    home = model_device(model)
    model.to(device)  # moves the weights: no second copy of a large model is kept
    try:
        yield
    finally:
        model.to(home)


@torch.no_grad()
def node_activations(model: GPT, windows: torch.Tensor, node_ids: list[str], batch: int,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """Activations [n_nodes, N, W] of the given nodes over the windows, in the full (unablated) model run on `device`."""
    by_loc: dict[str, list[int]] = defaultdict(list)
    for node in node_ids:
        loc, i = parse_node_id(node)
        by_loc[loc].append(i)
    row = {node: j for j, node in enumerate(node_ids)}
    out = np.zeros((len(node_ids), *windows.shape), dtype=np.float32)
    if not node_ids:
        return out
    batch = rows_per_pass(model, windows.size(1), batch)
    with on_device(model, device):
        picks = {loc: torch.tensor(chans).to(device) for loc, chans in by_loc.items()}  # [n] channels per location
        for start in range(0, windows.size(0), batch):
            idx = windows[start:start + batch].to(device)  # [B, W]
            first = torch.zeros(idx.size(0), dtype=torch.long, device=idx.device)  # [B]: logits of one position only
            _, cache = model.run_with_cache(idx, list(by_loc), first)
            for loc, chans in by_loc.items():
                acts = cache[loc][..., picks[loc]].float().cpu().numpy()  # [B, W, n]
                for k, c in enumerate(chans):
                    out[row[f"{loc}:{c}"], start:start + idx.size(0)] = acts[..., k]
    return out


PERCENTILES = (1, 50, 99)  # of a node's activations, in its shard's stats


def node_table(acts: np.ndarray, windows: np.ndarray, cfg: TableConfig) -> dict[str, Any]:
    """One node's shard: summary stats, a histogram of its nonzero values, and top and bottom examples."""
    flat = acts.reshape(-1)
    n, m = flat.size, min(flat.size, cfg.examples * 16)  # m: candidates for the examples at each end
    ranks = np.array(PERCENTILES) / 100 * (n - 1)  # fractional ranks of the percentiles (numpy's linear method)
    kth = sorted({0, n - 1, m - 1, n - m, *np.floor(ranks).astype(int).tolist(), *np.ceil(ranks).astype(int).tolist()})
    part = np.partition(flat, kth)  # one pass: the order statistics below sit at their sorted positions
    scale = float(max(-part[0], part[-1], 0.0)) or 1.0
    nonzero = flat[flat != 0]
    stats = {"mean": significant(flat.mean()), "sd": significant(flat.std()), "min": significant(part[0]), "max": significant(part[-1]),
             "frac_nonzero": significant(nonzero.size / n), "n": int(n), "scale": significant(scale, 6)}
    for q, r in zip(PERCENTILES, ranks):
        lo, hi = part[int(np.floor(r))], part[int(np.ceil(r))]
        stats[f"p{q:02d}"] = significant(lo + (hi - lo) * (r - np.floor(r)))
    hist = None
    if nonzero.size:
        lo, hi = float(nonzero.min()), float(nonzero.max())
        counts, edges = np.histogram(nonzero, bins=cfg.bins, range=(lo, hi if hi > lo else lo + 1e-6))
        hist = {"counts": counts.tolist(), "edges": [significant(e) for e in edges], "zeros": int(n - nonzero.size)}
    top = _ends(flat, part[n - m], largest=True)[:m]
    bottom = _ends(flat, part[m - 1], largest=False)[:m]
    return {"stats": stats, "hist": hist,
            "top": _examples(acts, windows, top, scale, cfg), "bottom": _examples(acts, windows, bottom, scale, cfg)}


def _ends(flat: np.ndarray, bound: float, largest: bool) -> np.ndarray:
    """Positions of the values beyond `bound` (above it for the largest end, below for the smallest), then those
    equal to it, in order from the end inwards, ties by position: deterministic whatever the selection algorithm."""
    beyond = np.flatnonzero(flat > bound if largest else flat < bound)
    key = -flat[beyond] if largest else flat[beyond]
    return np.concatenate([beyond[np.lexsort((beyond, key))], np.flatnonzero(flat == bound)])


def _examples(acts: np.ndarray, windows: np.ndarray, cand: np.ndarray, scale: float, cfg: TableConfig) -> list[dict[str, Any]]:
    """From candidate positions in order, the first ones at most one per stretch of context, as token heatmaps."""
    n_windows, width = acts.shape
    chosen: list[tuple[int, int]] = []
    for flat_i in cand.tolist():
        w, p = divmod(flat_i, width)
        if all(w != w2 or abs(p - p2) > cfg.left for w2, p2 in chosen):
            chosen.append((w, p))
            if len(chosen) == cfg.examples:
                break
    out = []
    for w, p in chosen:
        lo, hi = max(0, p - cfg.left), min(width, p + cfg.right + 1)
        out.append({"w": w, "p": p, "v": significant(acts[w, p]), "o": p - lo,
                    "t": windows[w, lo:hi].tolist(), "a": np.rint(acts[w, lo:hi] / scale * 127).astype(int).tolist()})
    return out


def context_ids(windows: np.ndarray, example: dict[str, Any]) -> list[int]:
    """Every token id an example's activation depends on: its window up to and including the position."""
    return windows[example["w"], :example["p"] + 1].tolist()


def embedding_view(model: GPT, top: int = 6) -> dict[str, Any]:
    """Per residual channel, the tokens that write to it (wte) and that it writes to (lm_head times the final norm gain)."""
    wte = model.wte.weight.detach().float()  # [V, d]
    out = (model.lm_head.weight.detach() * model.ln_f.weight.detach()).float()  # [V, d]
    view = {}
    for name, w in (("reads", wte), ("writes", out)):
        channels = []
        for c in range(w.size(1)):
            col = w[:, c]
            entry = {}
            for sign, order in (("pos", torch.argsort(-col, stable=True)), ("neg", torch.argsort(col, stable=True))):
                ids = [int(i) for i in order[:top] if (col[i] > 0 if sign == "pos" else col[i] < 0)]
                entry[sign] = [[i, significant(col[i])] for i in ids]
            channels.append(entry)
        view[name] = channels
    return view


@dataclass(frozen=True)
class TaskSample:
    """A task's test pairs encoded for the model (rows 2i, 2i+1 are a pair with different answers)."""

    tokens: torch.Tensor  # [N, T] int64
    last: torch.Tensor  # [N] position of the prediction
    correct: torch.Tensor  # [N] token id
    wrong: torch.Tensor  # [N] token id


def task_sample(inp: RunInput, circuit: CircuitInput, n_pairs: int) -> TaskSample | None:
    """The circuit's task pairs (test split) from the task suite, or None when this install has no such task."""
    from trainer.tasks import TASKS, encode_pairs

    task = TASKS.get(circuit.record["task"]["name"])
    if task is None:
        return None
    seed = circuit.record["prune"]["seed"]
    try:
        batch = encode_pairs(task.pairs("test", n_pairs, seed), inp.tokenizer, inp.run.cfg.model.n_ctx)
    except UserError as e:
        log.warning("%s: no task examples (%s)", circuit.path, e)
        return None
    return TaskSample(tokens=batch.tokens, last=batch.last, correct=batch.correct, wrong=batch.wrong)


def rows_per_pass(model: GPT, width: int, most: int) -> int:
    """Sequences of `width` tokens per forward pass, at most `most`, so that one layer's attention scores [B, H, T, T]
    and MLP activations [B, T, d_mlp] stay under PASS_BYTES each (a paper-sized model has 128 heads)."""
    per_row = 4 * width * max(model.cfg.n_head * width, model.cfg.d_mlp)  # bytes
    return max(1, min(most, PASS_BYTES // per_row))


@torch.no_grad()
def class_activations(model: GPT, sample: TaskSample, node_ids: list[str],
                      device: str | torch.device = "cpu") -> dict[str, list[list[float]]]:
    """Per node, its activation at the prediction position on the first and on the second prompt of each pair
    (the prompts whose answer is the task's target, and those whose answer is its alternative), run on `device`."""
    locs = sorted({parse_node_id(n)[0] for n in node_ids})
    with on_device(model, device):
        parts: dict[str, list[torch.Tensor]] = {loc: [] for loc in locs}
        step = rows_per_pass(model, sample.tokens.size(1), sample.tokens.size(0))
        for start in range(0, sample.tokens.size(0), step):
            tokens = sample.tokens[start:start + step].to(device)  # [n, T]
            last = sample.last[start:start + step].to(device)  # [n]
            _, cache = model.run_with_cache(tokens, locs, last)  # logits at the prediction only
            rows = torch.arange(tokens.size(0), device=tokens.device)
            for loc in locs:
                parts[loc].append(cache[loc][rows, last].cpu())  # [n, dim]
        at_last = {loc: torch.cat(p) for loc, p in parts.items()}  # [N, dim] each
    out = {}
    for node in node_ids:
        loc, i = parse_node_id(node)
        vals = at_last[loc][:, i]  # [N]
        out[node] = [[significant(v) for v in vals[parity::2].tolist()] for parity in (0, 1)]
    return out


@torch.no_grad()
def answer_probabilities(model: GPT, means: dict[str, torch.Tensor], kept: Kept, tokens: torch.Tensor, last: torch.Tensor,
                         first: torch.Tensor, second: torch.Tensor, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """p(first answer) against the second at each prompt's last token [n], in the full model and in the circuit `kept`
    (tokens [n, T], last, first and second [n]; the model run on `device`)."""
    rows = torch.arange(tokens.size(0))
    with on_device(model, device):
        on = {loc: m.to(device) for loc, m in means.items()}  # [dim] each
        full = model(tokens.to(device), last.to(device)).cpu()  # [n, vocab]
        with ablate(model, kept, on):
            circ = model(tokens.to(device), last.to(device)).cpu()
    pick = lambda logits: torch.stack([logits[rows, first], logits[rows, second]], 1).softmax(-1)[:, 0]  # noqa: E731
    return pick(full), pick(circ)


@torch.no_grad()
def task_examples(model: GPT, means: dict[str, torch.Tensor], circuit: CircuitInput, sample: TaskSample,
                  per_class: int = 6, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Prompts of both answers (first and second of each pair) with the full model's and the circuit's
    probability of the correct answer against the alternative (the model run on `device`)."""
    rows = torch.arange(min(sample.tokens.size(0), 2 * per_class))
    tokens, last = sample.tokens[rows], sample.last[rows]
    correct, wrong = sample.correct[rows], sample.wrong[rows]
    pf, pc = answer_probabilities(model, means, circuit.kept, tokens, last, correct, wrong, device)
    return [{"prompt": tokens[r, :int(last[r]) + 1].tolist(), "correct": int(correct[r]), "wrong": int(wrong[r]),
             "role": "target" if r % 2 == 0 else "alternative", "p_full": significant(pf[r], 3), "p_circuit": significant(pc[r], 3)}
            for r in rows.tolist()]
