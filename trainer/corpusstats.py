"""`circexport corpus stats`: how often a run's training text shows each task's decisive pattern, per component."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from trainer import data, tinypython
from trainer.config import DataConfig
from trainer.tasks import TASKS
from trainer.tasks.patterns import PATTERNS


@dataclass(frozen=True)
class PatternCounts:
    """One task's pattern counts per MB of each component, and per MB of the mixture (by its shares)."""

    task: str
    per_mb: dict[str, tuple[float, float | None]]  # component -> (target side, alternative side or None)
    mixed: tuple[float, float | None]

    @property
    def unseen(self) -> bool:
        """Whether the mixture never shows one side of the task."""
        return any(x is not None and x == 0 for x in self.mixed)


def component_texts(cfg: DataConfig, n_bytes: int, seed: int = 0) -> dict[str, tuple[str, float]]:
    """About n_bytes of each component's training text (stdlib files in a seeded order), with its share."""
    out: dict[str, tuple[str, float]] = {}
    if cfg.tinypython < 1:
        corpus = data.load_corpus(cfg)
        files = corpus.split_files("train")
        random.Random(seed).shuffle(files)
        parts, held = [], 0
        for rel in files:
            if held >= n_bytes:
                break
            parts.append(corpus.text(rel))
            held += len(parts[-1].encode("utf-8"))
        out["stdlib"] = ("\n".join(parts), 1 - cfg.tinypython)
    if cfg.tinypython > 0:
        out["tinypython"] = (tinypython.text(cfg.tinypython_seed, n_bytes, cfg.tinypython_coined, cfg.tinypython_repeat), cfg.tinypython)
    return out


def pattern_counts(texts: dict[str, tuple[str, float]]) -> list[PatternCounts]:
    """Per task (in suite order), matches per MB of each component and of the mixture."""
    rows = []
    for name in TASKS:
        per_mb = {comp: tuple(_rate(p, text) for p in PATTERNS[name]) for comp, (text, _) in texts.items()}
        mixed = tuple(None if any(v[k] is None for v in per_mb.values())
                      else sum(share * per_mb[comp][k] for comp, (_, share) in texts.items()) for k in range(2))
        rows.append(PatternCounts(name, per_mb, mixed))
    return rows


def _rate(pattern: str | None, text: str) -> float | None:
    """Matches of a pattern per MB of text (None for no pattern)."""
    if pattern is None:
        return None
    n = sum(1 for _ in re.finditer(pattern, text, re.MULTILINE))
    return n / max(1e-9, len(text.encode("utf-8")) / 1e6)


def stats_table(rows: list[PatternCounts], components: list[str]) -> str:
    """The table `corpus stats` prints: per task and component, target / alternative matches per MB."""
    def cell(pair: tuple[float | None, float | None]) -> str:
        return " / ".join("-" if x is None else f"{x:.1f}" for x in pair)

    head = ["task", *components, "mixture", ""]
    lines = [head]
    for r in rows:
        lines.append([r.task, *(cell(r.per_mb[c]) for c in components), cell(r.mixed), "NEVER SHOWN" if r.unseen else ""])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines]
    return "\n".join(text) + "\n(matches per MB: context calling for the target answer / for the alternative; " \
                             "- where the answers are labels)"
