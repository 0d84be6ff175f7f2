"""Tests of trainer.sparsity: plans, annealing, exact top-k masking with row protection, LR, grad RMS."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.config import SparsityConfig
from trainer import sparsity
from trainer.errors import UserError
from trainer.sparsity import (
    anneal_progress,
    apply_topk_,
    count_nonzero,
    lr_at,
    normalize_grad_rms_,
    plan_sparsity,
)

VOCAB, D, N_LAYER, N_CTX, N_HEAD = 32, 16, 2, 8, 2


class Block(nn.Module):
    """One layer with the model's parameter names; the mixing is simplified, shapes are real."""

    def __init__(self) -> None:
        super().__init__()
        self.ln_1 = nn.RMSNorm(D)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(D, 3 * D)
        self.attn.c_proj = nn.Linear(D, D)
        self.attn.sink = nn.Parameter(torch.zeros(N_HEAD))
        self.ln_2 = nn.RMSNorm(D)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(D, 4 * D)
        self.mlp.c_proj = nn.Linear(4 * D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, D] -> [B, T, D]."""
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(D, dim=-1)  # 3 x [B, T, D]
        gate = torch.sigmoid(q + k + self.attn.sink.repeat_interleave(D // N_HEAD))  # [B, T, D]
        x = x + self.attn.c_proj(gate * v)
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    """Parameter names and shapes as in trainer/model.py (nanoGPT names), with pos emb and bigram."""

    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D)
        self.wpe = nn.Embedding(N_CTX, D)
        self.blocks = nn.ModuleList(Block() for _ in range(N_LAYER))
        self.ln_f = nn.RMSNorm(D)
        self.lm_head = nn.Linear(D, VOCAB)
        self.bigram = nn.Embedding(VOCAB, VOCAB)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx: [B, T] -> logits [B, T, VOCAB]."""
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))  # [B, T, D]
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x)) + self.bigram(idx)


def tiny_model(seed: int = 0) -> TinyGPT:
    """A TinyGPT whose first four rows of every matrix are 1000x smaller, so a global cut empties them."""
    torch.manual_seed(seed)
    model = TinyGPT()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and name != "bigram.weight":
                p[:4] *= 1e-3
            elif name.endswith(".bias"):
                p.normal_(0, 0.1)
    return model


def shapes_only() -> dict[str, torch.Tensor]:
    """Named tensors of the tiny model (values unused by the planner)."""
    return dict(TinyGPT().named_parameters())


# ---------------------------------------------------------------- plan

def test_plan_selects_tensors_and_hits_l0_exactly() -> None:
    params = shapes_only()
    plan = plan_sparsity(params, SparsityConfig(l0=2000, min_per_row=0))
    assert "bigram.weight" not in plan.dense
    assert not any(n.endswith((".bias", "sink")) or ".ln_" in n or n.startswith("ln_f") for n in plan.dense)
    expected = {n for n, p in params.items() if p.ndim == 2 and n not in ("bigram.weight",) and "c_attn" not in n}
    expected |= {f"blocks.{i}.attn.c_attn.weight[{part}]" for i in range(N_LAYER) for part in "qkv"}
    assert set(plan.dense) == expected  # 2 x (W_Q, W_K, W_V + 3 block matrices) + wte + wpe + lm_head
    assert plan.total_dense == 2 * (48 * 16 + 16 * 16 + 64 * 16 + 16 * 64) + 32 * 16 + 8 * 16 + 32 * 16
    assert plan.total_target == 2000
    for name, n in plan.dense.items():  # every tensor at density f, up to rounding
        assert abs(plan.target[name] - plan.density * n) < 1.0


def test_plan_embed_mult_and_sparse_biases() -> None:
    params = shapes_only()
    plan = plan_sparsity(params, SparsityConfig(l0=2500, min_per_row=0, embed_density_mult=4.0, sparse_biases=True))
    assert plan.total_target == 2500
    f = plan.density
    assert 0.05 < f < 0.25
    for name in ("wte.weight", "wpe.weight", "lm_head.weight"):
        assert abs(plan.target[name] - min(1.0, 4 * f) * plan.dense[name]) < 1.0
    biases = [n for n in plan.dense if n.endswith(".bias") or ".bias[" in n]
    assert len(biases) == 2 * 6 + 1  # c_attn's thirds, c_proj, c_fc, mlp.c_proj per layer + lm_head
    for name in biases + ["blocks.0.mlp.c_fc.weight"]:
        assert abs(plan.target[name] - f * plan.dense[name]) < 1.0
    big = plan_sparsity(params, SparsityConfig(l0=6000, min_per_row=0, embed_density_mult=8.0))
    assert big.target["wte.weight"] == big.dense["wte.weight"]  # capped at density 1


def test_plan_row_floor_raises_k_and_reports_realized_total() -> None:
    plan = plan_sparsity(shapes_only(), SparsityConfig(l0=100, min_per_row=4))
    assert plan.target["blocks.0.attn.c_attn.weight[k]"] == 16 * 4
    assert plan.target["blocks.1.mlp.c_proj.weight"] == 16 * 4
    assert plan.target["wte.weight"] == 32 * 4
    rows = 32 + 8 + 2 * (48 + 16 + 64 + 16) + 32  # wte, wpe, 2 layers, lm_head
    assert plan.total_target == 4 * rows == 1440  # realized L0 exceeds l0 = 100: the floor binds


def test_plan_l0_too_large_is_a_user_error() -> None:
    params = shapes_only()
    n = plan_sparsity(params, SparsityConfig(l0=1, min_per_row=0)).total_dense
    with pytest.raises(UserError) as e:
        plan_sparsity(params, SparsityConfig(l0=n + 1))
    assert str(e.value) == (
        f"sparsity.l0 = {n + 1} exceeds the {n} weights that can be sparse in this model; "
        "lower it or set sparsity.enabled = false"
    )
    full = plan_sparsity(params, SparsityConfig(l0=n))
    assert full.target == full.dense


def test_k_at_interpolates_exactly_and_monotonically() -> None:
    plan = plan_sparsity(shapes_only(), SparsityConfig(l0=1500, min_per_row=4))
    assert plan.k_at(0.0) == plan.dense and plan.k_at(1.0) == plan.target
    assert plan.l0_at(0.0) == plan.total_dense and plan.l0_at(1.0) == plan.total_target
    name = "blocks.0.mlp.c_fc.weight"
    n, t = plan.dense[name], plan.target[name]
    assert plan.k_at(0.5)[name] == n - math.floor(0.5 * (n - t))
    prev = plan.k_at(0.0)
    for step in range(1, 101):
        now = plan.k_at(step / 100)
        assert all(now[k] <= prev[k] for k in now)
        prev = now


# ---------------------------------------------------------------- top-k masking

def test_topk_keeps_largest_magnitudes() -> None:
    w = {"w": torch.tensor([[3.0, -1.0, 2.0, 0.5], [-4.0, 0.1, 0.2, 0.3]]), "b": torch.tensor([1.0, -3.0, 2.0])}
    apply_topk_(w, {"w": 3, "b": 1}, min_per_row=0)
    assert w["w"].tolist() == [[3.0, 0.0, 2.0, 0.0], [-4.0, 0.0, 0.0, 0.0]]
    assert w["b"].tolist() == [0.0, -3.0, 0.0]


def test_topk_row_protection_values() -> None:
    w = {"w": torch.tensor([[10.0, 9.0, 8.0, 7.0], [0.125, 0.25, -0.5, 0.375]])}
    apply_topk_(w, {"w": 3}, min_per_row=1)
    assert w["w"].tolist() == [[10.0, 9.0, 0.0, 0.0], [0.0, 0.0, -0.5, 0.0]]
    b = {"b": torch.tensor([5.0, 0.1, 4.0])}  # 1-D: no row protection
    apply_topk_(b, {"b": 2}, min_per_row=4)
    assert b["b"].tolist() == [5.0, 0.0, 4.0]


def test_protection_keeps_rows_that_a_global_cut_empties() -> None:
    torch.manual_seed(0)
    base = torch.randn(32, 64)
    base[:8] *= 1e-3  # 8 quiet rows
    bare = {"w": base.clone()}
    apply_topk_(bare, {"w": 200}, min_per_row=0)
    assert (bare["w"][:8] != 0).sum() == 0  # without protection the quiet rows are emptied
    kept = {"w": base.clone()}
    apply_topk_(kept, {"w": 200}, min_per_row=4)
    assert int((kept["w"] != 0).sum()) == 200
    assert int((kept["w"] != 0).sum(dim=1).min()) >= 4
    assert torch.equal(kept["w"][:8].abs().topk(4, dim=1).values, base[:8].abs().topk(4, dim=1).values)


@pytest.mark.parametrize("k", [1, 37, 100, 200, 255])
def test_topk_exact_with_ties_and_zeros(k: int) -> None:
    signs = torch.randint(0, 2, (16, 16), generator=torch.Generator().manual_seed(k)) * 2.0 - 1.0
    ties = {"w": signs.clone()}  # all |w| equal: a threshold compare would keep all 256
    apply_topk_(ties, {"w": k}, min_per_row=0)
    assert count_nonzero(ties) == {"w": k}
    if k >= 64:
        prot = {"w": signs.clone()}
        apply_topk_(prot, {"w": k}, min_per_row=4)
        assert count_nonzero(prot) == {"w": k}
        assert int((prot["w"] != 0).sum(dim=1).min()) >= 4
    zeros = torch.zeros(256)
    zeros[::2] = 0.5  # 128 equal nonzeros and 128 exact zeros
    z = {"b": zeros}
    apply_topk_(z, {"b": k}, min_per_row=0)
    assert count_nonzero(z) == {"b": min(k, 128)}


def reference_topk(w: torch.Tensor, k: int, r: int) -> torch.Tensor:
    """w masked to the exact answer by full stable sorts: each row's top r, then the k largest; ties to lower index."""
    score = w.abs()  # [rows, cols] or [n]
    if r > 0:
        protected = torch.argsort(-score, dim=1, stable=True)[:, :r]  # [rows, r]
        score = score.scatter(1, protected, math.inf)
    keep = torch.zeros(w.numel(), dtype=torch.bool)
    keep[torch.argsort(-score.reshape(-1), stable=True)[:k]] = True
    return w * keep.view(w.shape)


def assert_exact_topk(before: torch.Tensor, after: torch.Tensor, k: int, r: int) -> None:
    """after keeps k entries of before, each row's top r by |w|, and no dropped |w| above a kept unprotected one."""
    assert torch.equal(after, reference_topk(before, k, r))
    kept = after != 0
    assert int(kept.sum()) == min(k, int((before != 0).sum()))
    if r > 0:
        row_r = before.abs().topk(r, dim=1).values[:, -1:]  # [rows, 1]; each row's r-th largest |w|
        assert bool(((before.abs() > row_r) <= kept).all())  # strictly above a row's r-th largest: always kept
        assert bool(((kept & (before.abs() >= row_r)).sum(dim=1) >= torch.clamp((before != 0).sum(dim=1), max=r)).all())
        free = kept & (before.abs() < row_r)  # kept beyond protection
    else:
        free = kept
    if bool(free.any()) and bool((~kept).any()):
        assert before.abs()[free].min() >= before.abs()[~kept].max()


@pytest.mark.parametrize("shape, r", [((16, 16), 0), ((16, 16), 1), ((16, 16), 4), ((7, 33), 3), ((50,), 4)])
@pytest.mark.parametrize("levels", [3, 1000])
def test_topk_matches_sorting_reference_with_heavy_ties(shape: tuple[int, ...], r: int, levels: int) -> None:
    gen = torch.Generator().manual_seed(levels + sum(shape) + r)
    n = math.prod(shape)
    rr = r if len(shape) == 2 else 0  # 1-D: no row protection
    floor = shape[0] * rr
    for trial in range(12):
        mags = torch.randint(0 if trial % 2 else 1, levels + 1, shape, generator=gen).float()  # odd: exact zeros
        w = mags * (torch.randint(0, 2, shape, generator=gen) * 2.0 - 1.0)  # few distinct |w| when levels = 3
        for k in sorted({floor, floor + 1, (floor + n) // 2, n - 1, max(floor, n // 16)}):
            out = {"w": w.clone()}
            apply_topk_(out, {"w": k}, min_per_row=r)
            assert_exact_topk(w, out["w"], k, rr)


def test_ties_at_a_row_threshold_keep_exactly_r_lowest_columns() -> None:
    w = torch.tensor([[0.5] * 8, [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0], [1.0, 2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 3.0]])
    out = {"w": w.clone()}
    apply_topk_(out, {"w": 9}, min_per_row=2)  # 3 rows x 2 protected + the 3 largest of the rest
    assert out["w"].tolist() == [
        [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # all tied: the two lowest columns
        [9.0, 8.0, 7.0, 6.0, 5.0, 0.0, 0.0, 0.0],  # 9, 8 protected; 7, 6, 5 fill the budget
        [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0],  # 3 and one of the tied 2s (lowest column)
    ]
    flat = {"b": torch.tensor([1.0, -2.0, 2.0, 3.0, -2.0, 0.5])}
    apply_topk_(flat, {"b": 3}, min_per_row=0)  # 3 then two of the three tied 2s, lowest indices first
    assert flat["b"].tolist() == [0.0, -2.0, 2.0, 3.0, 0.0, 0.0]


def test_protected_zeros_cost_budget_and_sparse_input_is_unchanged() -> None:
    w = torch.tensor([[5.0, 4.0, 3.0, 0.0], [0.0, 0.0, 0.0, 1.0]])  # 4 nonzeros, k = 4, r = 2
    out = {"w": w.clone()}
    apply_topk_(out, {"w": 4}, min_per_row=2)  # row 1 protects 1.0 and a zero: only 5, 4 fit in row 0
    assert out["w"].tolist() == [[5.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    again = {"w": out["w"].clone()}
    apply_topk_(again, {"w": 4}, min_per_row=2)  # already sparse: nothing changes
    assert torch.equal(again["w"], out["w"])


def test_torch_topk_path_agrees_without_ties() -> None:
    torch.manual_seed(3)
    for shape, k, r in [((64, 48), 200, 2), ((64, 48), 2000, 4), ((300,), 17, 4)]:
        w = torch.randn(shape)
        cpu, gpu_path = {"w": w.clone()}, w.clone()
        apply_topk_(cpu, {"w": k}, min_per_row=r)
        sparsity._topk_torch_(gpu_path, k, r if len(shape) == 2 else 0)  # the path used on non-CPU devices
        assert torch.equal(cpu["w"], gpu_path)


@pytest.mark.parametrize("split_qkv", [True, False])
def test_split_qkv_keeps_q_and_k_their_budget_when_v_is_larger(split_qkv: bool) -> None:
    model = tiny_model()
    with torch.no_grad():
        model.blocks[0].attn.c_attn.weight[2 * D:] *= 1000  # W_V far larger than W_Q and W_K
    cfg = SparsityConfig(l0=3000, min_per_row=4, split_qkv=split_qkv)
    params = dict(model.named_parameters())
    plan = plan_sparsity(params, cfg)
    apply_topk_(plan.tensors(params), plan.k_at(1.0), cfg.min_per_row)
    q, k, v = ((third != 0).sum().item() for third in params["blocks.0.attn.c_attn.weight"].chunk(3))
    if split_qkv:  # each third at the block density, as every other block matrix
        assert (q, k, v) == tuple(plan.target[f"blocks.0.attn.c_attn.weight[{part}]"] for part in "qkv")
        assert all(abs(n - plan.density * 16 * D) < 1.0 for n in (q, k, v)) and min(q, k) > 16 * 4
    else:  # one cut over the fused matrix: V takes everything above the row floor of Q and K
        assert (q, k) == (16 * 4, 16 * 4) and q + k + v == plan.target["blocks.0.attn.c_attn.weight"]


# ---------------------------------------------------------------- a training loop

@pytest.mark.parametrize("sparse_biases", [False, True])
def test_exact_counts_and_row_floor_every_step(sparse_biases: bool) -> None:
    steps, r = 40, 4
    model = tiny_model()
    cfg = SparsityConfig(l0=1800, anneal_start=0.0, anneal_end=0.75, min_per_row=r,
                         sparse_biases=sparse_biases, embed_density_mult=2.0)
    params = dict(model.named_parameters())
    plan = plan_sparsity(params, cfg)
    assert plan.total_target == 1800
    budgeted = plan.tensors(params)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(1)
    matrices = [n for n in plan.dense if budgeted[n].ndim == 2]
    for step in range(steps):
        idx = torch.randint(0, VOCAB, (4, N_CTX), generator=gen)  # [B, T]
        logits = model(idx)  # [B, T, VOCAB]
        loss = F.cross_entropy(logits.flatten(0, 1), idx.roll(-1, dims=1).flatten())
        opt.zero_grad()
        loss.backward()
        normalize_grad_rms_(model.parameters())
        opt.step()
        ks = plan.k_at(anneal_progress(step + 1, steps, cfg.anneal_start, cfg.anneal_end))
        apply_topk_(budgeted, ks, cfg.min_per_row)
        assert count_nonzero(budgeted) == ks, f"step {step}"
        assert min(int((budgeted[n] != 0).sum(dim=1).min()) for n in matrices) >= r, f"step {step}"
    assert ks == plan.target
    assert int((params["bigram.weight"] != 0).sum()) == VOCAB * VOCAB  # stays dense
    thirds = [plan.target.get(f"blocks.0.attn.c_attn.bias[{part}]", 16) for part in "qkv"]
    assert int((params["blocks.0.attn.c_attn.bias"] != 0).sum()) == sum(thirds)


# ---------------------------------------------------------------- schedules

def test_anneal_progress_values() -> None:
    total, start, end = 1000, 0.01, 0.5  # anneal from step 10 to step 500
    assert anneal_progress(0, total, start, end) == 0.0
    assert anneal_progress(10, total, start, end) == 0.0
    assert anneal_progress(100, total, start, end) == pytest.approx(90 / 490)
    assert anneal_progress(255, total, start, end) == pytest.approx(0.5)
    assert anneal_progress(500, total, start, end) == 1.0
    assert anneal_progress(999, total, start, end) == 1.0
    assert anneal_progress(5, 10, 0.5, 0.5) == 1.0  # start == end: a step change


def test_lr_at_values() -> None:
    total, warm = 1000, 0.01  # warmup_steps = 10
    lr = lambda step, now=100, target=100: lr_at(step, total, 1.0, warm, now, target)  # noqa: E731
    assert lr(0) == pytest.approx(0.1)
    assert lr(4) == pytest.approx(0.5)
    assert lr(9) == pytest.approx(1.0)  # end of warmup
    assert lr(10) == pytest.approx(1.0)  # decay starts at 1
    assert lr(505) == pytest.approx(0.5)  # 495 / 990
    assert lr(999) == pytest.approx(1 / 990)  # last step
    assert lr(1000) == 0.0
    assert lr(255, now=400, target=100) == pytest.approx(745 / 990 * 0.5)  # sharkfin factor sqrt(1/4)
    assert lr_at(0, 50, 3e-3, 0.0, 7, 7) == pytest.approx(3e-3)  # no warmup: one-step warmup of factor 1
    assert lr_at(49, 50, 1.0, 1.0, 7, 7) == pytest.approx(1.0) and lr_at(50, 50, 1.0, 1.0, 7, 7) == 0.0


def test_normalize_grad_rms() -> None:
    a = nn.Parameter(torch.zeros(3, 4))
    b = nn.Parameter(torch.zeros(5))
    c = nn.Parameter(torch.zeros(2))  # no grad: ignored
    a.grad = torch.full((3, 4), 2.0)
    b.grad = torch.tensor([6.0, 0.0, 0.0, 0.0, 0.0])
    before = float(normalize_grad_rms_([a, b, c]))
    assert before == pytest.approx(math.sqrt((12 * 4 + 36) / 17))
    rms = math.sqrt((a.grad.pow(2).sum() + b.grad.pow(2).sum()).item() / 17)
    assert rms == pytest.approx(1.0)
    assert a.grad[0, 0].item() == pytest.approx(2.0 / before)
    a.grad.zero_()
    b.grad.zero_()
    assert float(normalize_grad_rms_([a, b])) == 0.0
    assert a.grad.abs().sum() == 0


def test_layernorm_biases_stay_dense_even_with_sparse_biases():
    from trainer.config import ModelConfig
    from trainer.model import GPT

    model = GPT(ModelConfig(vocab_size=32, n_layer=1, d_model=32, n_ctx=8, norm="layer", tied_unembed=True))
    sparse = {n for n, p in model.named_parameters() if sparsity.is_sparsified(n, p, sparse_biases=True)}
    assert {"blocks.0.ln_1.bias", "ln_f.bias"}.isdisjoint(sparse)
    assert {"blocks.0.attn.c_attn.bias", "lm_head.bias", "wte.weight"} <= sparse and "lm_head.weight" not in sparse
