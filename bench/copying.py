"""Can a model copy? Its loss on a window of held-out text, and on the same window repeated right after it.

Usage: python bench/copying.py RUN [RUN ...] [--windows 64] [--length 60]
Each window is `length` tokens of the run's validation text (its own mixture), followed by the same tokens again.
A model that copies (induction) predicts the second copy far better than the first; the target for the demo is a
second-copy loss at most half the first-copy loss. Prints both mean losses and their ratio per run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source tree, not an older installed copy

from trainer import data  # noqa: E402
from trainer.mixture import load_text  # noqa: E402
from trainer.run import TOKENIZER, load_run  # noqa: E402
from trainer.tokenizer import load_tokenizer  # noqa: E402

SEED = 5


@torch.no_grad()
def copy_losses(run_dir: Path, n_windows: int, length: int) -> tuple[float, float]:
    """Mean next-token loss on the first copy and on the second copy of repeated validation windows."""
    run = load_run(run_dir)
    if 2 * length > run.cfg.model.n_ctx:
        raise SystemExit(f"{run_dir}: two windows of {length} tokens exceed the context of {run.cfg.model.n_ctx}")
    text = load_text(run.cfg.data, load_tokenizer(str(run_dir / TOKENIZER)), None, shards=False)
    pool = text.pool("val", 4 * n_windows * length, SEED)
    windows = data.sample_batch(pool, length - 1, n_windows, SEED, 0)  # [N, length]
    seq = torch.cat([windows, windows], dim=1)  # [N, 2 * length]
    logits = run.model(seq[:, :-1])  # [N, 2 * length - 1, vocab]
    loss = F.cross_entropy(logits.flatten(0, 1), seq[:, 1:].flatten(), reduction="none").view(n_windows, -1)
    first = loss[:, :length - 1].mean()  # predicting tokens 2..length of the first copy
    second = loss[:, length:].mean()  # predicting tokens 2..length of the second copy
    return float(first), float(second)


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--length", type=int, default=60)
    args = ap.parse_args()
    print(f"{'run':<40}{'first copy':>12}{'second copy':>13}{'ratio':>8}")
    for run_dir in args.runs:
        first, second = copy_losses(run_dir, args.windows, args.length)
        verdict = "copies" if second <= first / 2 else "does not copy"
        print(f"{str(run_dir):<40}{first:>12.3f}{second:>13.3f}{second / first:>8.2f}  {verdict} (target ratio <= 0.5)")


if __name__ == "__main__":
    main()
