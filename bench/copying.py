"""Can a model copy? Its loss on a window of held-out text, and on the same window repeated right after it.

Usage: python bench/copying.py RUN [RUN ...] [--windows 64] [--length 60] [--heads]
Each window is `length` tokens of the run's validation text (its own mixture), followed by the same tokens again.
A model that copies (induction) predicts the second copy far better than the first; the target for the demo is a
second-copy loss at most half the first-copy loss. Prints both mean losses and their ratio per run, then (--heads)
each layer's strongest previous-token head (mean attention from a token to the one before it, in the first copy) and
strongest induction head (mean attention from a token of the second copy to the token after its first occurrence):
induction needs both, and a layer whose heads all score about 1/position attends uniformly.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree, not an older installed copy

from trainer import data  # noqa: E402
from trainer.mixture import load_text  # noqa: E402
from trainer.run import TOKENIZER, Run, load_run  # noqa: E402
from trainer.tokenizer import load_tokenizer  # noqa: E402

SEED = 5


@torch.no_grad()
def copy_losses(run: Run, seq: torch.Tensor, length: int) -> tuple[float, float]:
    """Mean next-token loss on the first copy and on the second copy of repeated windows seq [N, 2 * length]."""
    logits = run.model(seq[:, :-1])  # [N, 2 * length - 1, vocab]
    loss = F.cross_entropy(logits.flatten(0, 1), seq[:, 1:].flatten(), reduction="none").view(len(seq), -1)
    first = loss[:, :length - 1].mean()  # predicting tokens 2..length of the first copy
    second = loss[:, length:].mean()  # predicting tokens 2..length of the second copy
    return float(first), float(second)


@torch.no_grad()
def head_scores(run: Run, seq: torch.Tensor, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, each head's previous-token score and induction score [H] on repeated windows seq [N, 2 * length]
    (patterns from the cached q and k, without the attention sink)."""
    m = run.cfg.model
    names = [f"{layer}.attn.{part}" for layer in range(m.n_layer) for part in "qk"]
    _, cache = run.model.run_with_cache(seq[:, :-1], names)
    scores = []
    for layer in range(m.n_layer):
        q, k = (cache[f"{layer}.attn.{part}"].unflatten(-1, (m.n_head, m.d_head)).transpose(1, 2) for part in "qk")
        T = q.size(2)  # q, k [N, H, T, dh]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(m.d_head)  # [N, H, T, T]
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        first, second = torch.arange(1, length), torch.arange(length, T)  # query positions
        prev = att[:, :, first, first - 1].mean((0, 2))  # [H]
        induction = att[:, :, second, second - length + 1].mean((0, 2))  # [H]
        scores.append((prev, induction))
    return scores


def repeated_windows(run_dir: Path, run: Run, n_windows: int, length: int) -> torch.Tensor:
    """n_windows windows of `length` validation tokens, each followed by itself: [N, 2 * length]."""
    if 2 * length > run.cfg.model.n_ctx:
        raise SystemExit(f"{run_dir}: two windows of {length} tokens exceed the context of {run.cfg.model.n_ctx}")
    text = load_text(run.cfg.data, load_tokenizer(str(run_dir / TOKENIZER)), None, shards=False)
    pool = text.pool("val", 4 * n_windows * length, SEED)
    windows = data.sample_batch(pool, length - 1, n_windows, SEED, 0)  # [N, length]
    return torch.cat([windows, windows], dim=1)


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--length", type=int, default=60)
    ap.add_argument("--heads", action="store_true", help="also each layer's best previous-token and induction head")
    args = ap.parse_args()
    print(f"{'run':<40}{'first copy':>12}{'second copy':>13}{'ratio':>8}")
    for run_dir in args.runs:
        run = load_run(run_dir)
        seq = repeated_windows(run_dir, run, args.windows, args.length)
        first, second = copy_losses(run, seq, args.length)
        verdict = "copies" if second <= first / 2 else "does not copy"
        print(f"{str(run_dir):<40}{first:>12.3f}{second:>13.3f}{second / first:>8.2f}  {verdict} (target ratio <= 0.5)")
        if args.heads:
            for layer, (prev, induction) in enumerate(head_scores(run, seq, args.length)):
                print(f"  layer {layer}: previous-token head {int(prev.argmax())} {float(prev.max()):.2f}, "
                      f"induction head {int(induction.argmax())} {float(induction.max()):.2f}")


if __name__ == "__main__":
    main()
