"""A build's inputs: run directories and their circuits, each file read and validated before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from tokenizers import Tokenizer

from trainer.circuit import read_circuit
from trainer.errors import UserError
from trainer.fileio import file_sha256, read_json
from trainer.masks import Kept, kept_from_ids
from trainer.run import METRICS, MODEL, TOKENIZER, Run, load_run, load_tensors, read_metrics
from trainer.tokenizer import load_tokenizer

MEANS, CIRCUITS, TASKS_FILE = "means.safetensors", "circuits", "tasks.json"
SLUG = re.compile(r"[A-Za-z0-9._-]+")  # file names that unzip on every OS
RESERVED = frozenset({"data", "onnx", "assets", "standalone", "index.html", "manifest.json", ".nojekyll"})


@dataclass(frozen=True)
class CircuitInput:
    """One circuit file of a run, validated against the run's model."""

    slug: str  # the task's folder name in the site
    path: Path
    record: dict[str, Any]
    kept: Kept  # the circuit's nodes as a keep-set

    @property
    def node_ids(self) -> list[str]:
        """The circuit's node ids in file order (location order, then index)."""
        return [n["id"] for n in self.record["nodes"]]


@dataclass(frozen=True)
class RunInput:
    """One run directory: model, tokenizer, training log, task table, means and circuits."""

    slug: str  # the model's folder name in the site
    run: Run
    model_sha: str
    tokenizer: Tokenizer
    metrics: list[dict[str, Any]]
    task_table: dict[str, dict[str, Any]]  # tasks.json: the unpruned model's loss per task (may be empty)
    means: dict[str, torch.Tensor] | None  # None when the run has no circuits yet
    circuits: list[CircuitInput]

    @property
    def dense_bytes(self) -> int:
        """The model's tensors stored densely, in bytes."""
        return sum(t.numel() * t.element_size() for t in self.run.model.state_dict().values())


def zoo_dir() -> Path:
    """Where the package keeps its demo runs."""
    return Path(str(resources.files("trainer") / "zoo"))


def demo_runs() -> list[Path]:
    """The run directories shipped in the package (trainer/zoo/), or a UserError when there are none."""
    zoo = zoo_dir()
    runs = sorted(p for p in zoo.iterdir() if (p / "config.json").is_file()) if zoo.is_dir() else []
    if not runs:
        raise UserError(f"no RUN_DIR given and the package ships no demo runs yet ({zoo} is empty): "
                        "give run directories, e.g. circexport build runs/tiny")
    return runs


def read_runs(run_dirs: list[Path]) -> list[RunInput]:
    """Read every run; model folder names must be unique and not clash with the site's own folders."""
    runs = [read_run(Path(d)) for d in run_dirs]
    seen: dict[str, Path] = {}
    for r in runs:
        if r.slug in RESERVED:
            raise UserError(f"{r.run.path}: the folder name {r.slug!r} clashes with the site's own {r.slug}; rename the run directory")
        if r.slug in seen:
            raise UserError(f"{r.run.path} and {seen[r.slug]} would both be the site's model {r.slug!r}; "
                            "rename one run directory (each model needs its own folder name)")
        seen[r.slug] = r.run.path
    return runs


def read_run(run_dir: Path) -> RunInput:
    """Load and check one run directory (config, weights, tokenizer, metrics, tasks, means, circuits)."""
    run = load_run(run_dir)
    tok = load_tokenizer(str(run_dir / TOKENIZER))
    if tok.get_vocab_size() > run.cfg.model.vocab_size:
        raise UserError(f"{run_dir / TOKENIZER}: {tok.get_vocab_size()} tokens, more than the model's vocab_size "
                        f"{run.cfg.model.vocab_size}; this tokenizer does not belong to the run")
    model_sha = file_sha256(run_dir / MODEL)
    circuits = read_circuits(run, model_sha)
    means = read_means(run, model_sha, circuits) if circuits else None
    return RunInput(slug=slug(run_dir.resolve().name, run_dir), run=run, model_sha=model_sha, tokenizer=tok,
                    metrics=read_metrics(run_dir / METRICS), task_table=read_task_table(run_dir / TASKS_FILE),
                    means=means, circuits=circuits)


def slug(name: str, where: Path) -> str:
    """A name as a site folder name ([A-Za-z0-9._-]; other characters become '-')."""
    s = re.sub(r"[^A-Za-z0-9._-]", "-", name)
    if not s.strip(".-"):
        raise UserError(f"{where}: the name {name!r} gives no usable folder name; rename it")
    return s


def read_task_table(path: Path) -> dict[str, dict[str, Any]]:
    """tasks.json's per-task rows (empty when the run has not been pruned)."""
    if not path.is_file():
        return {}
    table = read_json(path)
    if not isinstance(table, dict) or not isinstance(table.get("tasks", {}), dict):
        raise UserError(f"{path}: expected {{'tasks': {{name: row}}}}; re-run circexport prune")
    return table.get("tasks", {})


def read_circuits(run: Run, model_sha: str) -> list[CircuitInput]:
    """Every circuits/<task>.json of a run, checked for format, model sha256 and node ids."""
    folder = run.path / CIRCUITS
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = read_circuit(path, model_sha)
        for key in ("name", "target", "alternative"):
            if key not in record["task"]:
                raise UserError(f"{path}: field task.{key} is missing; re-run circexport prune")
        try:
            kept = kept_from_ids(run.model, [n["id"] for n in record["nodes"]])
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"{path}: node {e} is not a node of this model; re-run circexport prune") from None
        out.append(CircuitInput(slug=slug(path.stem, path), path=path, record=record, kept=kept))
    return out


def read_means(run: Run, model_sha: str, circuits: list[CircuitInput]) -> dict[str, torch.Tensor]:
    """means.safetensors, checked to be of this model and of the token count the circuits were pruned with."""
    path = run.path / MEANS
    if not path.is_file():
        raise UserError(f"{path}: file not found; the circuits need the mean activations they were pruned with "
                        "(re-run circexport prune)")
    means = load_tensors(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if meta.get("model_sha256") != model_sha:
        raise UserError(f"{path}: computed for a different model.safetensors; re-run circexport prune")
    missing = sorted(set(run.model.node_locations()) - set(means))
    if missing:
        raise UserError(f"{path}: no means for {missing[0]!r}; re-run circexport prune")
    for c in circuits:
        tokens = c.record.get("ablation", {}).get("tokens")
        if tokens is not None and str(tokens) != meta.get("tokens"):
            raise UserError(f"{c.path}: pruned with means over {tokens} tokens, but {path} holds means over "
                            f"{meta.get('tokens')} tokens; re-run circexport prune")
    return means
