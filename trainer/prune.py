"""The pruner: learn node masks for one task, cut to the smallest circuit that meets the target, validate it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from trainer.circuit import counts, offset_loss, qk_pairs, refit_offset, resid_links, unembed_edges, weight_edges
from trainer.masks import Kept, NodeMasks, ablate, all_kept, count, kept_ids, model_device, top_k_kept
from trainer.schema import location_layer, parse_node_id
from trainer.model import GPT
from trainer.tasks import TaskBatch, pair_accuracy, pair_loss
from trainer.tasks.base import binary_logits

log = logging.getLogger(__name__)
ATTRIBUTION_CHUNK = 8  # pairs per forward and backward pass of the attribution baseline: bounds its memory


@dataclass(frozen=True)
class PruneConfig:
    """Hyper-parameters of one pruning job (the paper's pruning recipe)."""

    target_loss: float = 0.15
    steps: int = 300  # mask-training steps per sweep point (bench/prune_budget.py: 4x as many change little)
    batch_pairs: int = 16  # pairs per step (recipe: 64; fewer keeps a demo task under two minutes on 2 cores)
    lrs: tuple[float, ...] = (0.1,)  # sweep (recipe: 3e-3 at 64 pairs and many more steps; 1e-2 here did not converge)
    k_coefs: tuple[float, ...] = (1e-3,)  # sweep: penalty per kept node (1e-4 never gave the smaller circuit)
    weight_decay: float = 1e-3
    beta2: float = 0.95
    grad_clip: float = 1.0
    init_mean: float = 0.1  # tau ~ N(0.1, 0.01): every node starts on
    init_sd: float = 0.01
    temperature: float = 1.0  # sigmoid(tau / T) gives the backward pass
    greedy: bool = True  # drop any node whose removal keeps the loss under target
    headroom: float = 0.1  # the search on the eval split aims this fraction under the target, so the test split meets it
    random_draws: int = 20  # random-control circuits
    attribution_pairs: int = 128  # train pairs behind the gradient-attribution baseline
    seed: int = 0


@dataclass(frozen=True)
class Splits:
    """A task's pairs encoded for the model: train (masks), eval (choosing k), test (reported metrics)."""

    train: TaskBatch
    eval: TaskBatch
    test: TaskBatch


def batch_to(batch: TaskBatch, device: torch.device) -> TaskBatch:
    """The batch's tensors on a device."""
    return TaskBatch(tokens=batch.tokens.to(device), last=batch.last.to(device), correct=batch.correct.to(device),
                     wrong=batch.wrong.to(device))


Boundaries = list[list[torch.Tensor]]  # per chunk of prompts: the residual stream entering each block, then leaving the last


class Evaluator:
    """Task loss of the model under a keep-set, on one batch, without gradients, on the model's device. Prompts run
    in chunks of similar length, each cut after its longest prompt (a causal model's logits at a position ignore
    what follows)."""

    CHUNK = 64  # prompts per forward pass

    def __init__(self, model: GPT, means: Mapping[str, torch.Tensor], batch: TaskBatch) -> None:
        device = model_device(model)
        self.model, self.batch = model, batch_to(batch, device)
        self.means = {loc: m.to(device) for loc, m in means.items()}
        last = batch.last.cpu()  # [N]
        order = torch.argsort(last, stable=True)  # [N] rows by prompt length
        self.widths = [int(last[rows].max()) + 1 for rows in order.split(self.CHUNK)]  # tokens kept per chunk
        self.chunks = list(order.to(device).split(self.CHUNK))
        self.inverse = torch.argsort(order).to(device)  # [N] puts the chunks' rows back in batch order

    @torch.no_grad()
    def run(self, kept: Kept | None = None, start: int = 0, before: Boundaries | None = None,
            freeze_norms: bool = False) -> tuple[torch.Tensor, Boundaries]:
        """Logits at each prompt's last token [N, vocab] with the nodes outside `kept` mean-ablated (and with every
        norm's scale frozen to the full model's value on the same prompt when freeze_norms), and each chunk's
        residual stream at the block boundaries. From block `start` on only: the stream entering it comes from
        `before`, the boundaries of a keep-set that differs from this one only in block `start` or later."""
        out, bounds = [], []
        for c, (rows, width) in enumerate(zip(self.chunks, self.widths)):
            last = self.batch.last[rows]  # [n]
            tokens = self.batch.tokens[rows, :width]  # [n, T]
            frozen = frozen_scales(self.model, tokens, last) if freeze_norms else {}
            with ablate(self.model, kept or {}, self.means), self.model.hooks(frozen):
                xs = before[c][:start + 1] if start else [self.model.embed(tokens)]  # [n, T, d] each
                pos = self.model.positions(width)
                for block in self.model.blocks[start:]:
                    xs.append(block(xs[-1], pos))
                out.append(self.model.readout(xs[-1], tokens, last))  # [n, vocab]
            bounds.append(xs)
        return torch.cat(out)[self.inverse], bounds

    def logits(self, kept: Kept | None = None, freeze_norms: bool = False) -> torch.Tensor:
        """Logits at each prompt's last token [N, vocab] under a keep-set (see run)."""
        return self.run(kept, freeze_norms=freeze_norms)[0]

    def loss(self, kept: Kept | None = None, freeze_norms: bool = False) -> float:
        """Pair loss (cross-entropy over the two answers) under a keep-set."""
        return float(pair_loss(self.logits(kept, freeze_norms), self.batch))

    def loss_from(self, kept: Kept, start: int, before: Boundaries) -> tuple[float, Boundaries]:
        """Pair loss under a keep-set that differs from the one behind `before` only in block `start` or later, run
        from that block; and its boundaries."""
        logits, bounds = self.run(kept, start, before)
        return float(pair_loss(logits, self.batch)), bounds


def first_block(nodes: Iterable[tuple[str, int]], n_layer: int) -> int:
    """The first block any of the (location, index) nodes sits in; n_layer when all are final_resid nodes."""
    layers = (location_layer(loc) for loc, _ in nodes)
    return min((n_layer if layer is None else layer for layer in layers), default=n_layer)


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
    """Train one tau per node: task loss + k_coef * kept nodes; returns tau per location (on the model's device)."""
    gen = torch.Generator().manual_seed(cfg.seed)  # on CPU: every device draws the same taus and pairs
    masks = NodeMasks(model, means, cfg.init_mean, cfg.init_sd, cfg.temperature, gen)
    train = batch_to(train, model_device(model))
    opt = torch.optim.AdamW(masks.parameters(), lr=lr, betas=(0.9, cfg.beta2), weight_decay=cfg.weight_decay)
    n_pairs = train.tokens.size(0) // 2
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr * (1 - step / cfg.steps)  # linear decay
        pairs = torch.randint(0, n_pairs, (min(cfg.batch_pairs, n_pairs),), generator=gen)  # [P]
        batch = select_pairs(train, pairs.to(train.tokens.device))
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
    """Drop, lowest score first, every node whose removal keeps the eval loss under the target: runs of nodes at once,
    a run doubling after each success and halving after each failure, so a circuit of n nodes of which m stay costs
    about m log n evaluations instead of n (when removing nodes never lowers the loss, the same nodes go as one by one)."""
    kept = {loc: k.clone() for loc, k in kept.items()}
    host = {loc: s.cpu() for loc, s in scores.items()}  # [dim] each: the order is read on CPU
    order = [parse_node_id(n) for n in kept_ids(kept)]
    order.sort(key=lambda node: float(host[node[0]][node[1]]))
    n_layer = ev.model.cfg.n_layer
    _, bounds = ev.run(kept)  # each trial runs from the first block it changes
    start, run = 0, 1
    while start < len(order):
        block = order[start:start + run]
        for loc, i in block:
            kept[loc][i] = False
        loss, trial = ev.loss_from(kept, first_block(block, n_layer), bounds)
        if loss <= target:
            start, run, bounds = start + len(block), run * 2, trial
            continue
        for loc, i in block:
            kept[loc][i] = True
        if run == 1:
            start += 1  # this node stays
        run = max(1, run // 2)
    return kept


def describe(model: GPT, means: Mapping[str, torch.Tensor], kept: Kept, scores: Mapping[str, torch.Tensor],
             splits: Splits, cfg: PruneConfig) -> dict[str, Any]:
    """Nodes, edges, links and held-out metrics of a circuit."""
    test = Evaluator(model, means, splits.test)
    metrics = faithfulness(model, means, kept, splits, test, cfg)
    host_scores, host_means = ({loc: t[loc].cpu() for loc in kept} for t in (scores, means))  # [dim] each
    _, bounds = test.run(kept)  # each node's ablation runs from its own block
    nodes = []
    for node in kept_ids(kept):
        loc, i = parse_node_id(node)
        without = {loc_: k.clone() for loc_, k in kept.items()}
        without[loc][i] = False
        loss, _ = test.loss_from(without, first_block([(loc, i)], model.cfg.n_layer), bounds)
        nodes.append({"id": node, "tau": float(host_scores[loc][i]), "mean": float(host_means[loc][i]),
                      "ablation_delta": loss - metrics["loss_circuit"]})
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
    ev = Evaluator(model, means, splits.eval)
    offset = refit_offset(binary_logits(ev.logits(inverse), splits.eval))  # fit on the eval split
    inverse_logits = test.logits(inverse)  # [N, vocab]
    random = random_control(model, means, kept, test, cfg)
    n = count(kept)
    n_pairs = min(cfg.attribution_pairs, splits.train.tokens.size(0) // 2)
    attribution = attribution_scores(model, means, select_pairs(splits.train, torch.arange(n_pairs)))
    attr_kept, _ = smallest_circuit(attribution, ev, search_target(cfg))
    metrics = {
        "loss_full": float(pair_loss(full, splits.test)), "acc_full": pair_accuracy(full, splits.test),
        "loss_circuit": float(pair_loss(circuit, splits.test)), "acc_circuit": pair_accuracy(circuit, splits.test),
        "loss_inverse": float(pair_loss(inverse_logits, splits.test)),
        "loss_inverse_refit": offset_loss(binary_logits(inverse_logits, splits.test), offset),
        "inverse_refit_offset": offset,
        "loss_empty": test.loss(all_kept(model, False)),
        "loss_random_mean": random[0], "loss_random_sd": random[1],
        "loss_attribution_same_k": test.loss(top_k_kept(attribution, n)),
        "attribution_nodes_at_target": None if attr_kept is None else count(attr_kept),
        "attribution_edges_at_target": None if attr_kept is None else len(weight_edges(model, attr_kept)),
        "loss_circuit_frozen_norm": test.loss(kept, freeze_norms=True),
    }
    return metrics


def random_control(model: GPT, means: Mapping[str, torch.Tensor], kept: Kept, test: Evaluator, cfg: PruneConfig) -> tuple[float, float]:
    """Mean and sd of the loss of random circuits with as many nodes per location as `kept`."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # draws on CPU, the same on every device
    sizes = {loc: (k.numel(), int(k.sum())) for loc, k in kept.items()}  # nodes per location, kept nodes
    losses = []
    for _ in range(cfg.random_draws):
        draw = {}
        for loc, (dim, n) in sizes.items():
            chosen = torch.zeros(dim, dtype=torch.bool)  # [dim]
            chosen[torch.randperm(dim, generator=gen)[:n]] = True
            draw[loc] = chosen.to(kept[loc].device)
        losses.append(test.loss(draw))
    t = torch.tensor(losses)
    return float(t.mean()), float(t.std()) if len(losses) > 1 else 0.0


def attribution_scores(model: GPT, means: Mapping[str, torch.Tensor], batch: TaskBatch,
                       chunk_pairs: int = ATTRIBUTION_CHUNK) -> dict[str, torch.Tensor]:
    """Gradient attribution per node: |sum over prompts and positions of (mean - x) * dL/dx|, accumulated over
    chunks of pairs, so that only one chunk's activations are held at a time."""
    device = model_device(model)
    batch = batch_to(batch, device)
    locs = model.node_locations()
    means = {loc: means[loc].to(device) for loc in locs}
    # x + (mean - x).detach() * p with p = 0 leaves the forward unchanged, and dL/dp is the sum over prompts and
    # positions of (mean - x) * dL/dx: autograd reduces each location as it goes instead of keeping its dL/dx
    probes = {loc: torch.zeros(model.location_dim(loc), device=device, requires_grad=True) for loc in locs}  # [dim]
    sums = {loc: torch.zeros_like(p) for loc, p in probes.items()}  # [dim]

    def probe(loc: str) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: x + (means[loc] - x).detach() * probes[loc]

    n_pairs = batch.tokens.size(0) // 2
    with torch.enable_grad(), model.hooks({loc: probe(loc) for loc in locs}):
        for start in range(0, n_pairs, chunk_pairs):
            part = select_pairs(batch, torch.arange(start, min(n_pairs, start + chunk_pairs), device=device))
            share = part.tokens.size(0) / (2 * n_pairs)  # the chunk's part of the batch's mean loss
            loss = pair_loss(model(part.tokens, part.last), part) * share
            for total, g in zip(sums.values(), torch.autograd.grad(loss, list(probes.values()))):
                total.add_(g)
    return {loc: s.abs() for loc, s in sums.items()}


def frozen_scales(model: GPT, tokens: torch.Tensor, last: torch.Tensor) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Hooks that replace every norm's scale by the full model's value on these prompts."""
    names = [name for name in model.hook_points if name.endswith(".scale")]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names, last)
    return {name: (lambda value: (lambda x: value))(cache[name]) for name in names}
