"""A build's inputs: run directories and their circuits, each file read and validated before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from trainer.circuit import check_circuit_fits, read_circuit
from trainer.errors import UserError
from trainer.fileio import file_sha256, read_json
from trainer.masks import Kept, kept_from_ids
from trainer.means import means_metadata, read_means
from trainer.run import Run, load_run, read_metrics, read_run_tokenizer
from trainer.schema import CIRCUITS, MEANS, METRICS, MODEL, TASKS_FILE, read_task_table

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
    tok = read_run_tokenizer(run_dir, run.cfg, run.provenance)
    model_sha = file_sha256(run_dir / MODEL)
    circuits = read_circuits(run, model_sha)
    means = check_means(run, model_sha, circuits) if circuits else None
    return RunInput(slug=slug(run_dir.resolve().name, run_dir), run=run, model_sha=model_sha, tokenizer=tok,
                    metrics=read_metrics(run_dir / METRICS), task_table=task_rows(run_dir / TASKS_FILE, model_sha),
                    means=means, circuits=circuits)


def slug(name: str, where: Path) -> str:
    """A name as a site folder name ([A-Za-z0-9._-]; other characters become '-')."""
    s = re.sub(r"[^A-Za-z0-9._-]", "-", name)
    if not s.strip(".-"):
        raise UserError(f"{where}: the name {name!r} gives no usable folder name; rename it")
    return s


def task_rows(path: Path, model_sha: str) -> dict[str, dict[str, Any]]:
    """tasks.json's per-task rows, checked, of the run's model (empty when the run has not been evaluated)."""
    if not path.exists():
        return {}
    table = read_task_table(read_json(path), path)
    if table["model_sha256"] != model_sha:
        raise UserError(f"{path}: field model_sha256: the table is of another model ({table['model_sha256'][:12]}…, "
                        f"the run's model.safetensors is {model_sha[:12]}…); re-run circexport prune RUN or delete it")
    return table["tasks"]


def read_circuits(run: Run, model_sha: str) -> list[CircuitInput]:
    """Every circuits/<task>.json of a run, checked for format, model sha256, and node ids, answer tokens and heads
    that the model has."""
    folder = run.path / CIRCUITS
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: a file where the circuits folder should be; move it away")
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = read_circuit(path, model_sha)
        check_circuit_fits(record, run.model, path)
        kept = kept_from_ids(run.model, [n["id"] for n in record["nodes"]])
        out.append(CircuitInput(slug=slug(path.stem, path), path=path, record=record, kept=kept))
    return out


def check_means(run: Run, model_sha: str, circuits: list[CircuitInput]) -> dict[str, torch.Tensor]:
    """means.safetensors, checked to be of this model and of the token count the circuits were pruned with."""
    path = run.path / MEANS
    means, tokens = read_means(path, run.model, model_sha), means_metadata(path)["tokens"]
    for c in circuits:
        if str(c.record["ablation"]["tokens"]) != tokens:
            raise UserError(f"{c.path}: pruned with means over {c.record['ablation']['tokens']} tokens, but {path} "
                            f"holds means over {tokens} tokens; re-run circexport prune")
    return means
