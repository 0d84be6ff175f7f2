"""Training throughput side by side in one process: dense, sparse weights, sparse weights + AbsTopK (ours, and as
openai/circuit_sparsity's train.py does it: torch.topk of |x|, a 0/1 mask by scatter, x times the mask), and the full
recipe with an attention sink.

Usage: python bench/train_throughput.py [--config demo] [--rounds 3] [--steps 5] [--bf16]
Prints tokens/s of each variant on the same shapes, the ratios to dense, and model FLOP
utilization against an fp32 (or bf16) matmul peak measured here first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree, not an older installed copy

from trainer import sparsity  # noqa: E402
from trainer.config import RunConfig, load_config  # noqa: E402
from trainer.cputune import keep_freed_memory  # noqa: E402
from trainer.model import GPT, Sparsify  # noqa: E402
from trainer.train import Dist, forward_backward, make_optimizer  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Measured FLOP/s of an n x n matmul."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def flops_per_token(cfg: RunConfig) -> float:
    """Training FLOPs per token: 6 x matmul parameters + attention (nanoGPT's estimate)."""
    m = cfg.model
    per_layer = 3 * m.d_model**2 + m.d_model**2 + 2 * m.d_model * m.d_mlp
    n_matmul = m.n_layer * per_layer + m.d_model * m.vocab_size
    return 6 * n_matmul + 12 * m.n_layer * m.n_ctx * m.d_model


def reference_abs_topk(module: Sparsify, x: torch.Tensor) -> torch.Tensor:
    """AbsTopK the way the reference implementation computes it: topk indices of |x|, scattered into a 0/1 mask."""
    if module.k >= x.shape[-1]:
        return x
    idx = x.abs().topk(module.k, dim=-1, sorted=False).indices  # [..., k]
    return x * torch.zeros_like(x).scatter_(-1, idx, 1.0)


class Variant:
    """One model + optimizer + (optional) sparsity plan, stepped on shared batches."""

    def __init__(self, name: str, cfg: RunConfig, bf16: bool, reference_topk: bool = False) -> None:
        torch.manual_seed(0)
        self.name, self.cfg = name, cfg
        self.model = GPT(cfg.model)
        if reference_topk:
            for module in self.model.modules():
                if isinstance(module, Sparsify):
                    module.forward = types.MethodType(reference_abs_topk, module)
        params = dict(self.model.named_parameters())
        self.plan = sparsity.plan_sparsity(params, cfg.sparsity) if cfg.sparsity.enabled else None
        self.budgeted = self.plan.tensors(params) if self.plan else {}
        self.opt = make_optimizer(self.model, cfg, torch.device("cpu"))
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
        self.times: list[float] = []

    def step(self, batch: torch.Tensor) -> float:
        """One full optimizer step at the end-of-anneal sparsity; returns seconds."""
        t0 = time.perf_counter()
        forward_backward(self.model, batch, Dist(), self.cfg.train.micro_batch, self.autocast)
        sparsity.normalize_grad_rms_(self.model.parameters())
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.plan:
            sparsity.apply_topk_(self.budgeted, self.plan.k_at(1.0), self.cfg.sparsity.min_per_row)
        return time.perf_counter() - t0


def main() -> None:
    """Measure and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for all variants")
    ap.add_argument("--glibc-defaults", action="store_true", help="skip the trainer's malloc tuning (trainer.cputune)")
    args = ap.parse_args()
    tuned = not args.glibc_defaults and keep_freed_memory()
    base = load_config(args.config)
    m = base.model
    dense = replace(base, model=replace(m, afrac=1.0), sparsity=replace(base.sparsity, enabled=False))
    weights = replace(base, model=replace(m, afrac=1.0), sparsity=replace(base.sparsity, enabled=True))
    full = replace(base, sparsity=replace(base.sparsity, enabled=True))
    sink = replace(full, model=replace(m, attn_sink=True))
    variants = [Variant("dense", dense, args.bf16), Variant("sparse weights", weights, args.bf16),
                Variant("sparse weights + AbsTopK", full, args.bf16),
                Variant("same, AbsTopK as reference", full, args.bf16, reference_topk=True),
                Variant("full + attention sink", sink, args.bf16)]
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, m.vocab_size, (base.train.batch_size, m.n_ctx + 1), generator=gen)
    for v in variants:  # warm-up
        v.step(batch)
    for _ in range(args.rounds):  # interleaved so drift in machine load hits every variant alike
        for v in variants:
            v.times += [v.step(batch) for _ in range(args.steps)]
    peak = matmul_peak(torch.bfloat16 if args.bf16 else torch.float32)
    tokens = base.train.batch_size * m.n_ctx
    fpt = flops_per_token(base)
    dense_t = statistics.median(variants[0].times)
    print(f"config {args.config}: {m.n_layer} layers, d_model {m.d_model}, {tokens} tokens/step, "
          f"{'bf16' if args.bf16 else 'fp32'}, {torch.get_num_threads()} threads, malloc {'tuned' if tuned else 'glibc defaults'}; matmul peak {peak / 1e9:.0f} GFLOP/s")
    print(f"{'variant':<26}{'step s':>9}{'tokens/s':>11}{'x dense time':>14}{'MFU':>8}")
    for v in variants:
        t = statistics.median(v.times)
        print(f"{v.name:<26}{t:>9.3f}{tokens / t:>11.0f}{t / dense_t:>14.3f}{fpt * tokens / t / peak:>8.1%}")


if __name__ == "__main__":
    main()
