"""Weight sparsity: which tensors are pruned, their annealed top-k budgets, the masking, and the sharkfin LR."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from trainer.config import SparsityConfig
from trainer.errors import UserError

# Embedding-like matrices (a row is a token or a position): they get embed_density_mult times the
# block density. The bigram table is dense by design (recipe: excluded from sparsity and decay).
EMBEDDING_NAMES = ("wte.weight", "wpe.weight", "lm_head.weight")
DENSE_NAMES = ("bigram.weight",)
FUSED_QKV = ("attn.c_attn.weight", "attn.c_attn.bias")  # rows: W_Q, then W_K, then W_V
QKV = ("q", "k", "v")


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
    split_qkv: bool = False

    def tensors(self, named_params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensor each budget applies to: a parameter, or with split_qkv a third of a fused c_attn (a view)."""
        return {name: t for name, t in sparse_tensors(named_params, self.split_qkv) if name in self.dense}

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
    is_norm = any(part.startswith("ln_") for part in name.split("."))  # a LayerNorm's bias stays dense too
    return sparse_biases and param.ndim == 1 and name.endswith(".bias") and not is_norm  # never norms or sinks


def sparse_tensors(
    named_params: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]], split_qkv: bool
) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter, with each fused c_attn tensor as its W_Q, W_K, W_V thirds (`name[q]`...) when split_qkv."""
    for name, p in dict(named_params).items():
        if split_qkv and any(_matches(name, fused) for fused in FUSED_QKV):
            yield from ((f"{name}[{part}]", third) for part, third in zip(QKV, p.chunk(3, dim=0)))  # row views
        else:
            yield name, p


def plan_sparsity(
    named_params: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]], cfg: SparsityConfig
) -> SparsityPlan:
    """Solve the block density f whose per-tensor budgets sum to cfg.l0, and return the plan."""
    kept = ((name, p) for name, p in dict(named_params).items() if is_sparsified(name, p, cfg.sparse_biases))
    params = dict(sparse_tensors(kept, cfg.split_qkv))
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
    return SparsityPlan(dense=dense, target=_round_to_total(real, cfg.l0), density=f, split_qkv=cfg.split_qkv)


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
        w = params[name]
        if k >= w.numel():
            continue  # dense phase: nothing to drop
        r = min(min_per_row, w.shape[1]) if w.ndim == 2 else 0
        assert k >= w.shape[0] * r, "k below the row-protection floor (plan_sparsity prevents this)"
        if w.device.type == "cpu":
            _topk_cpu_(w, k, r)
        else:
            _topk_torch_(w, k, r)


def _topk_cpu_(w: torch.Tensor, k: int, r: int) -> None:
    """Top-k by thresholds: numpy's introselect is several times faster than torch.topk on CPU."""
    a = w.detach().abs().float().numpy()  # [rows, cols] or [n]; a fresh copy of |w|
    if _keeps_every_nonzero(a, k, r):
        return  # e.g. already sparse: every choice of the k keeps all nonzeros
    keep = _protected_topk_mask(a, k, r) if r > 0 else _topk_mask(a.reshape(-1), k)  # bool, a's shape or [n]
    w.mul_(torch.from_numpy(keep.view(np.uint8)).view(w.shape))  # uint8 multiplies faster than bool; -0.0 where w < 0


def _keeps_every_nonzero(a: np.ndarray, k: int, r: int) -> bool:
    """True when k covers every nonzero plus the exact zeros that protection keeps in rows with < r nonzeros."""
    nonzero = a != 0  # a's shape; counting a bool array is branch-free, so fast at any density
    total = np.count_nonzero(nonzero)
    if total > k or r == 0:
        return total <= k
    per_row = np.count_nonzero(nonzero, axis=1)  # [rows]
    return total + int(np.maximum(r - per_row, 0).sum()) <= k


def _protected_topk_mask(a: np.ndarray, k: int, r: int) -> np.ndarray:
    """Bool mask of exactly k entries of a [rows, cols]: each row's top r, then the largest of the rest."""
    rows, cols = a.shape
    part = np.partition(a, cols - r, axis=1)  # [rows, cols]; each row's r largest last
    threshold = part[:, cols - r:cols - r + 1]  # [rows, 1]; each row's r-th largest
    m = k - rows * r  # entries kept beyond the protected ones
    if m > 0:
        rest = part[:, :cols - r].reshape(-1)  # [rows * (cols - r)] unprotected values (exact even with row ties)
        rest.partition(rest.size - m)
        threshold = np.minimum(threshold, rest[rest.size - m])  # keep a row's top r or the m largest of the rest
    keep = a >= threshold  # [rows, cols]; exactly k unless some values tie
    if np.count_nonzero(keep) == k:
        return keep  # no ties, or only ties kept whole: then this is the one exact answer
    return _settle_ties(a, k, r)


def _settle_ties(a: np.ndarray, k: int, r: int) -> np.ndarray:
    """Exact protected top-k mask of a [rows, cols] whose ties are broken toward lower indices (row-major)."""
    score = np.where(_row_top_mask(a, r), np.float32(np.inf), a)  # [rows, cols]; protected entries outrank all
    return _topk_mask(score.reshape(-1), k)  # [n]


def _row_top_mask(a: np.ndarray, r: int) -> np.ndarray:
    """Bool mask of exactly r entries per row of largest a; among entries tied at the r-th value, lowest columns."""
    cols = a.shape[1]
    threshold = np.partition(a, cols - r, axis=1)[:, cols - r:cols - r + 1]  # [rows, 1], each row's r-th largest
    mask = a >= threshold  # [rows, cols]; at least r per row
    if np.count_nonzero(mask) != mask.shape[0] * r:  # some rows tie at their threshold
        rows = np.flatnonzero(np.count_nonzero(mask, axis=1) != r)  # [m]
        order = np.argsort(-a[rows], axis=1, kind="stable")[:, :r]  # [m, r]; stable: ties by column
        fixed = np.zeros((len(rows), cols), dtype=bool)  # [m, cols]
        np.put_along_axis(fixed, order, True, axis=1)
        mask[rows] = fixed
    return mask


def _topk_mask(score: np.ndarray, k: int) -> np.ndarray:
    """Bool mask of exactly k entries of largest score (1-D); among entries tied at the k-th value, lowest indices."""
    n = score.size
    if k == 0:
        return np.zeros(n, dtype=bool)
    threshold = np.partition(score, n - k)[n - k]  # the k-th largest
    keep = score >= threshold  # [n]; at least k
    extra = int(np.count_nonzero(keep)) - k
    if extra > 0:  # ties at the threshold: drop the last `extra` of them
        tied = np.flatnonzero(score == threshold)
        keep[tied[len(tied) - extra:]] = False
    return keep


def _topk_torch_(w: torch.Tensor, k: int, r: int) -> None:
    """Keep exactly k entries of w by |w| with torch.topk (fast on GPUs), protecting the top-r of each row."""
    n = w.numel()
    flat = w.view(-1)  # [n]; parameters are contiguous
    score = w.detach().abs()  # [rows, cols] or [n]
    if r > 0:
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
def normalize_grad_rms_(params: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """Scale all gradients so their global RMS over every element is 1; return the RMS before (0: left as they were),
    a 0-dim tensor on the gradients' device: nothing here waits for the device."""
    grads = [p.grad for p in params if p.grad is not None]
    count = sum(g.numel() for g in grads)
    if count == 0:
        return torch.zeros(())
    sq = torch.stack([g.detach().float().pow(2).sum() for g in grads]).sum()  # scalar
    rms = torch.sqrt(sq / count)
    scale = torch.where(rms > 0, 1.0 / rms, torch.ones_like(rms))  # scalar
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return rms
