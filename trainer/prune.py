"""The pruner: learn node masks for one task, cut to the smallest circuit that meets the target, validate it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from trainer.circuit import counts, qk_pairs, resid_links, unembed_edges, weight_edges
from trainer.masks import Kept, NodeMasks, ablate, all_kept, count, kept_ids, parse_node_id, top_k_kept
from trainer.model import GPT
from trainer.tasks import TaskBatch, pair_accuracy, pair_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneConfig:
    """Hyper-parameters of one pruning job (recipe.md, Pruning)."""

    target_loss: float = 0.15
    steps: int = 150  # mask-training steps per sweep point
    batch_pairs: int = 16  # pairs per step (recipe: 64; fewer keeps a demo task under two minutes on 2 cores)
    lrs: tuple[float, ...] = (1e-2,)  # sweep (recipe: 3e-3 at 64 pairs and many more steps)
    k_coefs: tuple[float, ...] = (1e-4, 1e-3)  # sweep: penalty per kept node
    weight_decay: float = 1e-3
    beta2: float = 0.95
    grad_clip: float = 1.0
    init_mean: float = 0.1  # tau ~ N(0.1, 0.01): every node starts on
    init_sd: float = 0.01
    temperature: float = 1.0  # sigmoid(tau / T) gives the backward pass
    greedy: bool = True  # drop any node whose removal keeps the loss under target
    headroom: float = 0.1  # the search on the eval split aims this fraction under the target, so the test split meets it
    random_draws: int = 20  # random-control circuits
    attribution_pairs: int = 128  # train pairs behind the gradient-attribution baseline (one backward pass)
    seed: int = 0


@dataclass(frozen=True)
class Splits:
    """A task's pairs encoded for the model: train (masks), eval (choosing k), test (reported metrics)."""

    train: TaskBatch
    eval: TaskBatch
    test: TaskBatch


class Evaluator:
    """Task loss of the model under a keep-set, on one batch, without gradients. Prompts run in chunks of
    similar length, each cut after its longest prompt (a causal model's logits at a position ignore what follows)."""

    CHUNK = 64  # prompts per forward pass

    def __init__(self, model: GPT, means: Mapping[str, torch.Tensor], batch: TaskBatch) -> None:
        self.model, self.means, self.batch = model, means, batch
        order = torch.argsort(batch.last, stable=True)  # [N] rows by prompt length
        self.chunks = list(order.split(self.CHUNK))
        self.inverse = torch.argsort(order)  # [N] puts the chunks' rows back in batch order

    @torch.no_grad()
    def logits(self, kept: Kept | None = None, freeze_norms: bool = False) -> torch.Tensor:
        """Logits at each prompt's last token [N, vocab] with the nodes outside `kept` mean-ablated (and with every
        norm's scale frozen to the full model's value on the same prompt when freeze_norms)."""
        out = []
        for rows in self.chunks:
            last = self.batch.last[rows]  # [n]
            tokens = self.batch.tokens[rows, :int(last.max()) + 1]  # [n, T]
            frozen = frozen_scales(self.model, tokens, last) if freeze_norms else {}
            with ablate(self.model, kept or {}, self.means), self.model.hooks(frozen):
                out.append(self.model(tokens, last))  # [n, vocab]
        return torch.cat(out)[self.inverse]

    def loss(self, kept: Kept | None = None, freeze_norms: bool = False) -> float:
        """Pair loss (cross-entropy over the two answers) under a keep-set."""
        return float(pair_loss(self.logits(kept, freeze_norms), self.batch))


def prune_task(model: GPT, means: Mapping[str, torch.Tensor], splits: Splits, cfg: PruneConfig) -> dict[str, Any]:
    """Sweep mask training, bisect k, greedily trim, and return the circuit record (without file header)."""
    t0 = time.perf_counter()
    model.eval().requires_grad_(False)
    ev = Evaluator(model, means, splits.eval)
    aim = search_target(cfg)
    best = None
    for lr in cfg.lrs:
        for k_coef in cfg.k_coefs:
            scores = learn_masks(model, means, splits.train, cfg, lr, k_coef)
            kept, sweep = smallest_circuit(scores, ev, aim)
            size = math.inf if kept is None else count(kept)
            log.info("lr %g k_coef %g: %s nodes", lr, k_coef, size)
            if best is None or size < best[0]:
                best = (size, kept, scores, sweep, {"lr": lr, "k_coef": k_coef})
    size, kept, scores, sweep, chosen = best  # the sweep point with the smallest bisected circuit
    if kept is None:
        kept = all_kept(model)
    elif cfg.greedy:
        kept = greedy_trim(kept, scores, ev, aim)
    record = describe(model, means, kept, scores, splits, cfg)
    record["sweep"] = sweep
    record["prune"] = {**asdict(cfg), **chosen, "seconds": round(time.perf_counter() - t0, 1),
                       "meets_target": size != math.inf}
    return record


def search_target(cfg: PruneConfig) -> float:
    """The eval-split loss the search aims at: the target less the headroom."""
    return cfg.target_loss * (1 - cfg.headroom)


def learn_masks(model: GPT, means: Mapping[str, torch.Tensor], train: TaskBatch, cfg: PruneConfig,
                lr: float, k_coef: float) -> dict[str, torch.Tensor]:
    """Train one tau per node: task loss + k_coef * kept nodes; returns tau per location."""
    gen = torch.Generator().manual_seed(cfg.seed)
    masks = NodeMasks(model, means, cfg.init_mean, cfg.init_sd, cfg.temperature, gen)
    opt = torch.optim.AdamW(masks.parameters(), lr=lr, betas=(0.9, cfg.beta2), weight_decay=cfg.weight_decay)
    n_pairs = train.tokens.size(0) // 2
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr * (1 - step / cfg.steps)  # linear decay
        pairs = torch.randint(0, n_pairs, (min(cfg.batch_pairs, n_pairs),), generator=gen)
        batch = select_pairs(train, pairs)
        with model.hooks(masks.hooks()):
            logits = model(batch.tokens, batch.last)  # [N, vocab]
        loss = pair_loss(logits, batch) + k_coef * masks.n_kept()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(masks.parameters(), cfg.grad_clip)
        opt.step()
        masks.clamp_()
    return masks.scores()


def select_pairs(batch: TaskBatch, pairs: torch.Tensor) -> TaskBatch:
    """The rows of the given pairs (2i, 2i+1), trimmed to their longest prompt."""
    rows = torch.stack([2 * pairs, 2 * pairs + 1], 1).flatten()
    last = batch.last[rows]
    width = int(last.max()) + 1
    return TaskBatch(tokens=batch.tokens[rows, :width], last=last, correct=batch.correct[rows], wrong=batch.wrong[rows])


def smallest_circuit(scores: Mapping[str, torch.Tensor], ev: Evaluator, target: float) -> tuple[Kept | None, list[dict]]:
    """Bisect k (nodes kept by rank of score) for the smallest k whose eval loss meets the target."""
    total = sum(s.numel() for s in scores.values())
    tried: dict[int, float] = {}

    def loss_at(k: int) -> float:
        if k not in tried:
            tried[k] = ev.loss(top_k_kept(scores, k))
        return tried[k]

    grid = sorted({min(total, 2**i) for i in range(int(math.log2(total)) + 2)} | {0})
    for k in grid:  # a coarse curve for the k plot, and a bracket for the bisection
        loss_at(k)
    hi = next((k for k in grid if tried[k] <= target), None)
    if hi is not None:
        lo = max([k for k in grid if k < hi] + [0])
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if loss_at(mid) <= target else (mid, hi)
    sweep = [{"k": k, "loss": tried[k]} for k in sorted(tried)]
    return (None if hi is None else top_k_kept(scores, hi)), sweep


def greedy_trim(kept: Kept, scores: Mapping[str, torch.Tensor], ev: Evaluator, target: float) -> Kept:
    """Drop, lowest score first, every node whose removal keeps the eval loss under the target."""
    kept = {loc: k.clone() for loc, k in kept.items()}
    for node in sorted(kept_ids(kept), key=lambda n: float(scores[parse_node_id(n)[0]][parse_node_id(n)[1]])):
        loc, i = parse_node_id(node)
        kept[loc][i] = False
        if ev.loss(kept) > target:
            kept[loc][i] = True
    return kept


def describe(model: GPT, means: Mapping[str, torch.Tensor], kept: Kept, scores: Mapping[str, torch.Tensor],
             splits: Splits, cfg: PruneConfig) -> dict[str, Any]:
    """Nodes, edges, links and held-out metrics of a circuit."""
    test = Evaluator(model, means, splits.test)
    metrics = faithfulness(model, means, kept, splits, test, cfg)
    nodes = []
    for node in kept_ids(kept):
        loc, i = parse_node_id(node)
        without = {loc_: k.clone() for loc_, k in kept.items()}
        without[loc][i] = False
        nodes.append({"id": node, "tau": float(scores[loc][i]), "mean": float(means[loc][i]),
                      "ablation_delta": test.loss(without) - metrics["loss_circuit"]})
    answers = torch.cat([splits.test.correct, splits.test.wrong]).tolist()
    edges, unembed = weight_edges(model, kept), unembed_edges(model, kept, answers)
    links, pairs = resid_links(model, kept), qk_pairs(model, kept)
    return {
        "metrics": metrics,
        "counts": counts(kept, edges, unembed, links, pairs),
        "nodes": nodes, "edges": edges, "unembed_edges": unembed, "resid_links": links, "qk_pairs": pairs,
    }


def faithfulness(model: GPT, means: Mapping[str, torch.Tensor], kept: Kept, splits: Splits, test: Evaluator,
                 cfg: PruneConfig) -> dict[str, float]:
    """Held-out checks on the test split's evaluator: sufficiency, necessity, empty, random control, attribution
    baseline, frozen norms."""
    full, circuit = test.logits(), test.logits(kept)  # [N, vocab] each
    inverse = {loc: ~k for loc, k in kept.items()}
    random = random_control(model, means, kept, test, cfg)
    n = count(kept)
    n_pairs = min(cfg.attribution_pairs, splits.train.tokens.size(0) // 2)
    attribution = attribution_scores(model, means, select_pairs(splits.train, torch.arange(n_pairs)))
    ev = Evaluator(model, means, splits.eval)
    attr_kept, _ = smallest_circuit(attribution, ev, search_target(cfg))
    metrics = {
        "loss_full": float(pair_loss(full, splits.test)), "acc_full": pair_accuracy(full, splits.test),
        "loss_circuit": float(pair_loss(circuit, splits.test)), "acc_circuit": pair_accuracy(circuit, splits.test),
        "loss_inverse": test.loss(inverse), "loss_empty": test.loss(all_kept(model, False)),
        "loss_random_mean": random[0], "loss_random_sd": random[1],
        "loss_attribution_same_k": test.loss(top_k_kept(attribution, n)),
        "attribution_nodes_at_target": None if attr_kept is None else count(attr_kept),
        "attribution_edges_at_target": None if attr_kept is None else len(weight_edges(model, attr_kept)),
        "loss_circuit_frozen_norm": test.loss(kept, freeze_norms=True),
    }
    return metrics


def random_control(model: GPT, means: Mapping[str, torch.Tensor], kept: Kept, test: Evaluator, cfg: PruneConfig) -> tuple[float, float]:
    """Mean and sd of the loss of random circuits with as many nodes per location as `kept`."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    losses = []
    for _ in range(cfg.random_draws):
        draw = {}
        for loc, k in kept.items():
            chosen = torch.zeros_like(k)
            chosen[torch.randperm(k.numel(), generator=gen)[:int(k.sum())]] = True
            draw[loc] = chosen
        losses.append(test.loss(draw))
    t = torch.tensor(losses)
    return float(t.mean()), float(t.std()) if len(losses) > 1 else 0.0


def attribution_scores(model: GPT, means: Mapping[str, torch.Tensor], batch: TaskBatch) -> dict[str, torch.Tensor]:
    """Gradient attribution per node: |sum over prompts and positions of (mean - x) * dL/dx|."""
    acts: dict[str, torch.Tensor] = {}
    probes: dict[str, torch.Tensor] = {}

    def probe(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def add(x: torch.Tensor) -> torch.Tensor:  # x + 0: the gradient at the zero probe is dL/dx
            acts[name] = x.detach()
            probes[name] = torch.zeros_like(x, requires_grad=True)
            return x + probes[name]
        return add

    with torch.enable_grad(), model.hooks({loc: probe(loc) for loc in model.node_locations()}):
        loss = pair_loss(model(batch.tokens, batch.last), batch)
        grads = torch.autograd.grad(loss, list(probes.values()))
    return {loc: ((means[loc] - acts[loc]) * g).sum(dim=(0, 1)).abs() for loc, g in zip(probes, grads)}


def frozen_scales(model: GPT, tokens: torch.Tensor, last: torch.Tensor) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Hooks that replace every norm's scale by the full model's value on these prompts."""
    names = [name for name in model.hook_points if name.endswith(".scale")]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names, last)
    return {name: (lambda value: (lambda x: value))(cache[name]) for name in names}
