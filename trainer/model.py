"""A weight-sparse GPT (the paper's model recipe) whose every node location is a named hook point."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.config import ModelConfig
from trainer.schema import FINAL_LOCATION, LAYER_LOCATIONS, location

HookFn = Callable[[torch.Tensor], torch.Tensor]
ROWS_PER_THREAD = 2048  # AbsTopK on CPU splits its rows over threads in chunks of at least this many
BLOCK_BYTES = 1 << 20  # and each thread works through blocks of rows about this large, so its passes hit the cache



class HookPoint(nn.Module):
    """Identity on the activation at one location; a hook fn set on it may read or replace it."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # set by GPT from the module path, never typed by hand
        self.fn: HookFn | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x, or fn(x) while a hook is set."""
        return x if self.fn is None else self.fn(x)


def abs_topk(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k entries of largest |x| along the last dim, zero the rest (AbsTopK); among entries tied at the k-th
    |x|, the first by index are kept, on every device. The gradient flows through the kept entries only."""
    if k >= x.shape[-1]:
        return x
    if k <= 0:  # afrac_round = "floor" on a narrow location keeps nothing, as the released code does
        return x * 0
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not _in_graph_capture():
        return _CpuAbsTopK.apply(x, k)
    return x * topk_mask(x.detach(), k)


def _in_graph_capture() -> bool:
    """Whether the forward is being traced or exported (the graph must hold torch ops only)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class _CpuAbsTopK(torch.autograd.Function):
    """AbsTopK on CPU in numpy: the k-th largest |x| of each row by numpy's SIMD selection, the kept entries copied
    in one pass, the backward one masked multiply (no float mask is ever made)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, k: int) -> torch.Tensor:
        """x [..., d] -> x with all but k entries per row zeroed; rows split over torch's intra-op threads (numpy
        releases the GIL while it selects)."""
        xn = x.detach().numpy().reshape(-1, x.shape[-1])  # [n, d], strided as x is (views such as q, k, v read in place)
        out, keep = np.empty(xn.shape, xn.dtype), np.empty(xn.shape, np.bool_)  # [n, d] each

        block = max(1, BLOCK_BYTES // (xn.shape[1] * xn.itemsize))  # rows; halves the time at d 512

        def rows(lo: int, hi: int) -> None:
            for a in range(lo, hi, block):
                b = min(hi, a + block)
                keep[a:b] = _keep_rows(np.abs(xn[a:b]), k)
                np.multiply(xn[a:b], keep[a:b], out=out[a:b])

        _split_rows(rows, len(xn), max(1, min(torch.get_num_threads(), len(xn) // ROWS_PER_THREAD)))
        ctx.keep = keep.reshape(x.shape)
        return torch.from_numpy(out).view(x.shape)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The gradient of the kept entries; zero elsewhere."""
        return torch.from_numpy(np.multiply(grad.numpy(), ctx.keep)), None


def _split_rows(fn: Callable[[int, int], None], n: int, parts: int) -> None:
    """fn(lo, hi) over `parts` consecutive ranges of n rows, each but the first on a thread of its own; an error in
    any part is raised here."""
    bounds = np.linspace(0, n, parts + 1).astype(int).tolist()
    errors: list[BaseException] = []

    def part(lo: int, hi: int) -> None:
        try:
            fn(lo, hi)
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller's thread
            errors.append(e)

    helpers = [threading.Thread(target=part, args=(lo, hi)) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    for t in helpers:
        t.start()
    part(bounds[0], bounds[1])
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]


def _keep_rows(a: np.ndarray, k: int) -> np.ndarray:
    """Bool mask [..., d] of the k largest entries of each row of a (a >= 0), ties at the k-th kept first by index."""
    a = a.view(np.int32 if a.itemsize == 4 else np.int64)  # floats >= 0 order as their bits do; numpy selects ints ~1.7x faster
    d = a.shape[-1]
    th = np.partition(a, d - k, axis=-1)[..., d - k:d - k + 1]  # [..., 1] each row's k-th largest
    keep = a >= th  # [..., d]
    if np.count_nonzero(keep) != keep.size // d * k:  # some row's k-th value is tied: settle those rows by index
        rows = keep.sum(-1) != k  # [...]
        sub, t = a[rows], th[rows]  # [n, d], [n, 1]
        above, tied = sub > t, sub == t
        need = k - above.sum(-1, keepdims=True)  # [n, 1] tied entries to keep
        keep[rows] = above | (tied & (np.cumsum(tied, -1) <= need))
    return keep


def topk_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """0/1 mask in x's dtype of the k entries of largest |x| along the last dim, exactly k per row, ties at the k-th
    kept first by index (a traced or exported graph keeps torch.topk's choice among ties)."""
    a = x.abs()
    if _in_graph_capture():
        return torch.zeros_like(x).scatter_(-1, a.topk(k, dim=-1, sorted=False).indices, 1.0)
    th = a.topk(k, dim=-1, sorted=False).values.amin(-1, keepdim=True)  # [..., 1] the k-th largest |x|
    above, tied = a > th, a == th  # [..., d]
    need = k - above.sum(-1, keepdim=True)  # [..., 1]
    return (above | (tied & (tied.cumsum(-1) <= need))).to(x.dtype)


class Sparsify(nn.Module):
    """AbsTopK at one location when the config sparsifies it, identity otherwise."""

    def __init__(self, cfg: ModelConfig, location: str, dim: int) -> None:
        super().__init__()
        on = location in cfg.afrac_locations and cfg.afrac < 1.0
        if not on:
            self.k = dim
        elif cfg.afrac_round == "floor":
            self.k = int(cfg.afrac * dim)  # the released code's rounding
        else:
            self.k = max(1, math.ceil(cfg.afrac * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """AbsTopK over the last dim."""
        return abs_topk(x, self.k)


class RMSNorm(nn.Module):
    """RMSNorm with a learned gain; its scale 1/rms is a hook point (for frozen-norm checks)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.scale = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * rsqrt(mean(x^2) + eps) * weight."""
        scale = self.scale(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))  # [B, T, 1]
        return x * scale * self.weight


class LayerNorm(nn.Module):
    """LayerNorm with a learned gain and bias; its scale 1/std is a hook point, as in RMSNorm."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.scale = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) * rsqrt(var + eps) * weight + bias."""
        x = x - x.mean(-1, keepdim=True)  # [B, T, d]
        scale = self.scale(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))  # [B, T, 1]
        return x * scale * self.weight + self.bias


def make_norm(cfg: ModelConfig, dim: int) -> nn.Module:
    """The configured norm (RMSNorm or LayerNorm) over dim channels."""
    return (RMSNorm if cfg.norm == "rms" else LayerNorm)(dim, cfg.norm_eps)


class ResidualOut(nn.Module):
    """What the residual stream goes through after a sublayer adds to it: optional ReLU, then AbsTopK."""

    def __init__(self, cfg: ModelConfig, location: str) -> None:
        super().__init__()
        self.relu = cfg.resid_activation == "relu"
        self.top = Sparsify(cfg, location, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, d] -> x [B, T, d]."""
        return self.top(torch.relu(x) if self.relu else x)


def residual_out(cfg: ModelConfig, location: str) -> nn.Module:
    """A ResidualOut where the config changes the residual at `location`, else an identity."""
    if cfg.resid_activation != "identity" or (location in cfg.afrac_locations and cfg.afrac < 1.0):
        return ResidualOut(cfg, location)
    return nn.Identity()


class TiedUnembed(nn.Module):
    """Unembedding that reads the token embedding's matrix (stored once), plus its own logit bias."""

    def __init__(self, wte: nn.Embedding) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(wte.num_embeddings))
        self._tied = (wte,)  # a tuple, so wte is not registered twice and its weight is saved once

    @property
    def weight(self) -> torch.Tensor:
        """The tied matrix [vocab, d]."""
        return self._tied[0].weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., d] -> logits [..., vocab]."""
        return F.linear(x, self.weight, self.bias)


class Attention(nn.Module):
    """Causal multi-head attention with d_head-wide heads and an optional per-head sink."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.d_head, self.d_attn = cfg.n_head, cfg.d_head, cfg.d_attn
        self.c_attn = nn.Linear(cfg.d_in, 3 * cfg.d_attn)
        self.c_proj = nn.Linear(cfg.d_attn, cfg.d_model)
        self.sink = nn.Parameter(torch.zeros(cfg.n_head)) if cfg.attn_sink else None
        self.top_in = Sparsify(cfg, "attn.act_in", cfg.d_in)
        self.top_q, self.top_k, self.top_v = (Sparsify(cfg, f"attn.{loc}", cfg.d_attn) for loc in ("q", "k", "v"))
        self.top_out = Sparsify(cfg, "attn.resid_delta", cfg.d_model)
        self.act_in, self.q, self.k, self.v, self.resid_delta = (HookPoint() for _ in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Read the normalized residual x [B, T, d_in]; return the write to the residual [B, T, d]."""
        B, T, _ = x.size()
        x = self.act_in(self.top_in(x))
        q, k, v = self.c_attn(x).split(self.d_attn, dim=-1)  # 3 x [B, T, d_attn]
        q, k, v = self.q(self.top_q(q)), self.k(self.top_k(k)), self.v(self.top_v(v))  # top-k over all heads
        q, k, v = (t.view(B, T, self.n_head, self.d_head).transpose(1, 2) for t in (q, k, v))  # [B, H, T, dh]
        if self.sink is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = self._attend_with_sink(q, k, v)
        y = y.transpose(1, 2).reshape(B, T, self.d_attn)
        return self.resid_delta(self.top_out(self.c_proj(y)))

    def _attend_with_sink(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention with one extra key per head whose logit is `sink` and whose value is zero, as one causal SDPA
        call (its fused kernel, no [T, T] scores): the sink is key 0 of a sequence one longer, seen by every query,
        and an extra dimension (1 in each query, sink * sqrt(d_head) in the sink key) gives it its logit.
        q, k, v [B, H, T, dh] -> [B, H, T, dh]."""
        B, H, T, dh = q.shape
        sink_key = F.pad((self.sink.to(q.dtype) * math.sqrt(dh)).view(1, H, 1, 1), (dh, 0)).expand(B, H, 1, dh + 1)
        q = F.pad(F.pad(q, (0, 1), value=1.0), (0, 0, 1, 0))  # [B, H, T + 1, dh + 1]: row 0 a query nobody reads
        k = torch.cat([sink_key, F.pad(k, (0, 1))], dim=2)  # [B, H, T + 1, dh + 1]
        v = F.pad(v, (0, 1, 1, 0))  # [B, H, T + 1, dh + 1]: the sink's value 0; q, k and v as wide (the fused kernel)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / math.sqrt(dh))
        return y[:, :, 1:, :dh]


class MLP(nn.Module):
    """GELU (or ReLU) MLP of width d_mlp."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_in, cfg.d_mlp)
        self.c_proj = nn.Linear(cfg.d_mlp, cfg.d_model)
        self.relu = cfg.activation == "relu"
        self.top_in = Sparsify(cfg, "mlp.act_in", cfg.d_in)
        self.top_post = Sparsify(cfg, "mlp.post_act", cfg.d_mlp)
        self.top_out = Sparsify(cfg, "mlp.resid_delta", cfg.d_model)
        self.act_in, self.post_act, self.resid_delta = (HookPoint() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Read the normalized residual x [B, T, d_in]; return the write to the residual [B, T, d]."""
        x = self.act_in(self.top_in(x))
        h = self.c_fc(x)  # [B, T, d_mlp]
        h = self.post_act(self.top_post(F.relu(h) if self.relu else F.gelu(h)))
        return self.resid_delta(self.top_out(self.c_proj(h)))


class Block(nn.Module):
    """Pre-norm transformer block; with d_pos_emb, each sublayer also reads the normalized position embedding."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(cfg, cfg.d_model)
        self.attn = Attention(cfg)
        self.ln_2 = make_norm(cfg, cfg.d_model)
        self.mlp = MLP(cfg)
        if cfg.d_pos_emb:
            self.ln_p1, self.ln_p2 = make_norm(cfg, cfg.d_pos_emb), make_norm(cfg, cfg.d_pos_emb)
        self.post_attn = residual_out(cfg, "resid.post_attn")
        self.post_mlp = residual_out(cfg, "resid.post_mlp")

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, d] (and pos [T, d_pos_emb] to concatenate) -> x [B, T, d]."""
        if pos is None:
            x = self.post_attn(x + self.attn(self.ln_1(x)))
            return self.post_mlp(x + self.mlp(self.ln_2(x)))
        x = self.post_attn(x + self.attn(_cat(self.ln_1(x), self.ln_p1(pos))))
        return self.post_mlp(x + self.mlp(_cat(self.ln_2(x), self.ln_p2(pos))))


def _cat(h: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """[B, T, d] and [T, p] -> [B, T, d + p]."""
    return torch.cat([h, pos.expand(h.size(0), -1, -1)], dim=-1)


class GPT(nn.Module):
    """The decoder: embeddings, blocks, final norm, (un)tied unembedding, optional bigram table."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.n_ctx, cfg.d_pos_emb or cfg.d_model) if cfg.pos_emb else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.final_resid = HookPoint()
        self.ln_f = make_norm(cfg, cfg.d_model)
        self.lm_head = TiedUnembed(self.wte) if cfg.tied_unembed else nn.Linear(cfg.d_model, cfg.vocab_size)
        self.bigram = nn.Embedding(cfg.vocab_size, cfg.vocab_size) if cfg.bigram else None
        self.hook_points: dict[str, HookPoint] = {}
        for path, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = path.removeprefix("blocks.")
                self.hook_points[module.name] = module
        self.apply(self._init_weights)
        out_std = 0.02 / math.sqrt(2 * cfg.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.c_proj.weight, std=out_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=out_std)
        if self.bigram is not None:
            nn.init.zeros_(self.bigram.weight)
            self.bigram.weight.requires_grad_(cfg.bigram_learnable)  # a fixed table when not learnable

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """N(0, 0.02) weights, zero biases."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids [B, T] -> logits [B, T, vocab]; with `last` [B], only the logits at those positions [B, vocab]."""
        x, pos = self.embed(idx), self.positions(idx.size(1))  # [B, T, d], [T, d_pos_emb] or None
        for block in self.blocks:
            x = block(x, pos)
        return self.readout(x, idx, last)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T] -> the residual stream entering the first block [B, T, d]."""
        T = idx.size(1)
        if T > self.cfg.n_ctx:
            raise ValueError(f"sequence of {T} tokens is longer than the context of {self.cfg.n_ctx}")
        x = self.wte(idx)  # [B, T, d]
        if self.wpe is not None and not self.cfg.d_pos_emb:
            x = x + self.wpe(torch.arange(T, device=idx.device))
        return x

    def positions(self, T: int) -> torch.Tensor | None:
        """The position embedding each sublayer reads beside the residual [T, d_pos_emb] (None without d_pos_emb)."""
        return self.wpe.weight[:T] if self.wpe is not None and self.cfg.d_pos_emb else None

    def readout(self, x: torch.Tensor, idx: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        """The residual stream after the last block [B, T, d] -> logits [B, T, vocab] (at `last` [B]: [B, vocab])."""
        x = self.final_resid(x)
        if last is not None:  # read out one position per row
            rows = torch.arange(x.size(0), device=x.device)
            x, idx = x[rows, last], idx[rows, last]  # [B, d], [B]
        logits = self.lm_head(self.ln_f(x))  # [B, T, vocab] or [B, vocab]
        if self.bigram is not None:
            logits = logits + self.bigram(idx)
        return logits

    def node_locations(self) -> list[str]:
        """Every node location in forward order: `L.attn.q`, ..., `final_resid`."""
        layers = [location(i, loc) for i in range(self.cfg.n_layer) for loc in LAYER_LOCATIONS]
        return layers + [FINAL_LOCATION]

    def location_dim(self, location: str) -> int:
        """Number of channels (nodes) at a location."""
        if location.endswith("mlp.post_act"):
            return self.cfg.d_mlp
        if location.endswith(("attn.q", "attn.k", "attn.v")):
            return self.cfg.d_attn
        return self.cfg.d_in if location.endswith("act_in") else self.cfg.d_model

    @contextmanager
    def hooks(self, fns: Mapping[str, HookFn]) -> Iterator[None]:
        """Set hook fns by location name for the duration of a with-block (they compose with outer ones)."""
        unknown = sorted(set(fns) - set(self.hook_points))
        if unknown:
            raise KeyError(f"unknown hook point {unknown[0]!r}")
        saved = {name: self.hook_points[name].fn for name in fns}
        try:
            for name, fn in fns.items():
                self.hook_points[name].fn = _compose(saved[name], fn)
            yield
        finally:
            for name, fn in saved.items():
                self.hook_points[name].fn = fn

    def run_with_cache(
        self, idx: torch.Tensor, names: Sequence[str] | None = None, last: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward pass that also returns the activations at the named hook points (all nodes by default)."""
        cache: dict[str, torch.Tensor] = {}

        def saver(name: str) -> HookFn:
            def save(x: torch.Tensor) -> torch.Tensor:
                cache[name] = x
                return x
            return save

        names = self.node_locations() if names is None else names
        with self.hooks({name: saver(name) for name in names}):
            logits = self(idx, last)
        return logits, cache


def _compose(first: HookFn | None, then: HookFn) -> HookFn:
    """then(first(x)), or then alone."""
    return then if first is None else (lambda x: then(first(x)))


def mask_hook(mask: torch.Tensor, mean: torch.Tensor) -> HookFn:
    """Mean ablation: x' = m * x + (1 - m) * mean, with mask and mean per channel [dim]."""
    return lambda x: mask * x + (1 - mask) * mean


def scale_hook(scale: torch.Tensor) -> HookFn:
    """Multiply each channel by a factor [dim]."""
    return lambda x: x * scale


def replace_hook(channel: int, value: float | torch.Tensor) -> HookFn:
    """Set one channel to a value (a scalar, or a tensor broadcastable to [B, T])."""

    def replace(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[..., channel] = value
        return x

    return replace
