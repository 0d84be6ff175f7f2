"""Weight sparsity: which tensors are pruned, their annealed top-k budgets, the masking, and the sharkfin LR."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from trainer.config import SparsityConfig
from trainer.errors import UserError

# Embedding-like matrices (a row is a token or a position): they get embed_density_mult times the
# block density. The bigram table is dense by design (recipe: excluded from sparsity and decay).
EMBEDDING_NAMES = ("wte.weight", "wpe.weight", "lm_head.weight")
DENSE_NAMES = ("bigram.weight",)


@dataclass(frozen=True)
class SparsityPlan:
    """Per-tensor nonzero budgets: `dense` = numel, `target` = k once L0 annealing is over.

    `density` is the block-matrix density f solved for; embeddings use min(1, mult * f), sparse
    biases f. A 2-D tensor's target is never below min_per_row * rows, so `total_target` (the
    realized L0) can exceed sparsity.l0 when that floor binds; otherwise it equals l0 exactly.
    """

    dense: dict[str, int]
    target: dict[str, int]
    density: float = 1.0

    @property
    def total_dense(self) -> int:
        """Number of entries over all sparsified tensors."""
        return sum(self.dense.values())

    @property
    def total_target(self) -> int:
        """Realized nonzero count at the end of annealing (== l0 unless the row floor binds)."""
        return sum(self.target.values())

    def k_at(self, progress: float) -> dict[str, int]:
        """Per-tensor k at annealing progress in [0, 1]: linear from dense to target, non-increasing."""
        p = min(1.0, max(0.0, progress))
        return {name: n - math.floor(p * (n - self.target[name])) for name, n in self.dense.items()}

    def l0_at(self, progress: float) -> int:
        """Total nonzero count over all sparsified tensors at annealing progress in [0, 1]."""
        return sum(self.k_at(progress).values())


def is_sparsified(name: str, param: torch.Tensor, sparse_biases: bool) -> bool:
    """True for every 2-D weight except the bigram table, and for biases when sparse_biases."""
    if any(_matches(name, dense) for dense in DENSE_NAMES):
        return False
    if param.ndim == 2:
        return True
    return sparse_biases and param.ndim == 1 and name.endswith(".bias")  # never norms or sinks


def plan_sparsity(
    named_params: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]], cfg: SparsityConfig
) -> SparsityPlan:
    """Solve the block density f whose per-tensor budgets sum to cfg.l0, and return the plan."""
    params = {name: p for name, p in dict(named_params).items() if is_sparsified(name, p, cfg.sparse_biases)}
    dense = {name: p.numel() for name, p in params.items()}
    total = sum(dense.values())
    if cfg.l0 > total:
        raise UserError(
            f"sparsity.l0 = {cfg.l0} exceeds the {total} weights that can be sparse in this model; "
            "lower it or set sparsity.enabled = false"
        )
    # (density multiplier, lowest k, numel) per tensor
    specs = {name: _spec(name, p, cfg) for name, p in params.items()}
    f = _solve_density(list(specs.values()), cfg.l0)
    real = {name: _budget(f, *spec) for name, spec in specs.items()}
    return SparsityPlan(dense=dense, target=_round_to_total(real, cfg.l0), density=f)


def _matches(name: str, short: str) -> bool:
    """True when name is short, possibly behind a wrapper prefix (module., _orig_mod.)."""
    return name == short or name.endswith("." + short)


def _spec(name: str, p: torch.Tensor, cfg: SparsityConfig) -> tuple[float, int, int]:
    """(density multiplier, row-protection floor on k, numel) of one sparsified tensor."""
    mult = cfg.embed_density_mult if any(_matches(name, e) for e in EMBEDDING_NAMES) else 1.0
    floor = p.shape[0] * min(cfg.min_per_row, p.shape[1]) if p.ndim == 2 else 0  # rows * r
    return mult, floor, p.numel()


def _budget(f: float, mult: float, floor: int, numel: int) -> float:
    """Unrounded k of one tensor at block density f."""
    return min(float(numel), max(float(floor), min(1.0, mult * f) * numel))


def _solve_density(specs: list[tuple[float, int, int]], l0: int) -> float:
    """Smallest block density f in [0, 1] whose unrounded total reaches l0 (bisection; total is monotone)."""
    lo, hi = 0.0, 1.0
    if sum(_budget(lo, *s) for s in specs) >= l0:
        return lo  # the row floors alone already reach l0
    for _ in range(100):
        mid = (lo + hi) / 2
        if sum(_budget(mid, *s) for s in specs) >= l0:
            hi = mid
        else:
            lo = mid
    return hi


def _round_to_total(real: dict[str, float], l0: int) -> dict[str, int]:
    """Floor every budget, then give +1 to the largest fractional parts until the sum is l0."""
    k = {name: math.floor(x) for name, x in real.items()}
    deficit = max(0, l0 - sum(k.values()))
    by_fraction = sorted(real, key=lambda name: real[name] - k[name], reverse=True)  # stable ties
    for name in by_fraction[:deficit]:
        k[name] += 1
    return k


def anneal_progress(step: int, total_steps: int, start_frac: float, end_frac: float) -> float:
    """L0 annealing progress after `step` completed optimizer steps: 0 until start, linear, 1 from end."""
    start, end = start_frac * total_steps, end_frac * total_steps
    if step >= end:
        return 1.0
    if step <= start:
        return 0.0
    return (step - start) / (end - start)


@torch.no_grad()
def apply_topk_(params: Mapping[str, torch.Tensor], ks: Mapping[str, int], min_per_row: int) -> None:
    """In place, keep exactly ks[name] entries of largest |w| per tensor; each row's top min_per_row always kept."""
    for name, k in ks.items():
        _topk_one_(params[name], k, min_per_row)


def _topk_one_(w: torch.Tensor, k: int, min_per_row: int) -> None:
    """Keep exactly k entries of w by |w|, protecting the top-r of each row of a 2-D w; zero the rest."""
    n = w.numel()
    if k >= n:
        return
    flat = w.view(-1)  # [n]; parameters are contiguous
    score = w.detach().abs()  # [rows, cols] or [n]
    r = min(min_per_row, w.shape[1]) if w.ndim == 2 else 0
    if r > 0:
        assert k >= w.shape[0] * r, "k below the row-protection floor (plan_sparsity prevents this)"
        protected = score.topk(r, dim=1, sorted=False).indices  # [rows, r]
        score.scatter_(1, protected, math.inf)
    score = score.view(-1)  # [n]
    if 2 * k >= n:  # cheaper to find the n - k entries to drop; +inf scores are never among them
        drop = score.topk(n - k, largest=False, sorted=False).indices  # [n - k]
        flat.index_fill_(0, drop, 0.0)
    else:
        keep = score.topk(k, sorted=False).indices  # [k]
        mask = torch.ones(n, dtype=torch.bool, device=w.device)  # True = zero it
        mask[keep] = False
        flat.masked_fill_(mask, 0.0)


@torch.no_grad()
def count_nonzero(params: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Number of nonzero entries of each tensor (one device sync for all)."""
    if not params:
        return {}
    counts = torch.stack([torch.count_nonzero(p) for p in params.values()]).tolist()
    return dict(zip(params, counts))


def lr_at(step: int, total_steps: int, base_lr: float, warmup_frac: float, l0_now: int, l0_target: int) -> float:
    """Sharkfin LR of 0-based optimizer step `step`: warmup * linear decay * sqrt(l0_target / l0_now).

    warmup_steps = max(1, round(warmup_frac * total_steps)); warm = min(1, (step + 1) / warmup_steps),
    so step 0 gets base_lr / warmup_steps and step warmup_steps - 1 the full base_lr. From step
    warmup_steps on, decay = (total_steps - step) / (total_steps - warmup_steps): 1 there, 0 at
    step == total_steps. Pass l0_now == l0_target for a dense run (factor 1).
    """
    assert l0_now > 0 and l0_target > 0, "L0 counts must be positive"
    warmup_steps = max(1, round(warmup_frac * total_steps))
    warm = min(1.0, (step + 1) / warmup_steps)
    decay = 1.0 if step < warmup_steps else max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return base_lr * warm * decay * math.sqrt(l0_target / l0_now)


@torch.no_grad()
def normalize_grad_rms_(params: Iterable[torch.nn.Parameter]) -> float:
    """Scale all gradients so their global RMS over every element is 1; return the RMS before (0 = no-op)."""
    grads = [p.grad for p in params if p.grad is not None]
    count = sum(g.numel() for g in grads)
    if count == 0:
        return 0.0
    sq = torch.stack([g.detach().float().pow(2).sum() for g in grads]).sum()  # scalar
    rms = float(torch.sqrt(sq / count))
    if rms > 0:
        for g in grads:
            g.mul_(1.0 / rms)
    return rms
