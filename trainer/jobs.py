"""Pruning a whole run: which tasks it has learned, one pruning job per task (in parallel), circuit files."""

from __future__ import annotations

import logging
import math
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from trainer.circuit import check_circuit_fits, faithfulness_checks, read_circuit, write_circuit
from trainer.errors import UserError
from trainer.fileio import check_destination, file_sha256, read_json, write_json
from trainer.means import ablation_record, means_for_run
from trainer.prune import Evaluator, PruneConfig, Splits, prune_task
from trainer.run import Run, load_run, read_run_tokenizer
from trainer.schema import CIRCUITS, MODEL, TASK_TABLE, TASK_TABLE_FORMAT, TASKS_FILE, check, read_task_table
from trainer.tasks import TASKS, Task, encode_pairs, get_task, pair_accuracy, pair_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobConfig:
    """What a pruning command does around the pruner itself."""

    prune: PruneConfig = field(default_factory=PruneConfig)
    train_pairs: int = 512
    eval_pairs: int = 128
    test_pairs: int = 256
    mean_tokens: int = 1 << 20  # tokens of pretraining text behind the mean activations
    jobs: int = 1
    quiet: bool = False
    device: str = "auto"  # auto | cpu | cuda: where the model and everything the pruner makes live
    faithful_only: bool = False  # write only circuits that pass every check on the test split


def resolve_device(name: str) -> torch.device:
    """The torch device for --device auto|cpu|cuda (auto: CUDA when there is one)."""
    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {name!r}: use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu (or auto)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def load_run_on(run_dir: Path | str, device: torch.device) -> Run:
    """Load a run (on CPU, as load_run does) and move its model to the device."""
    run = load_run(run_dir)
    run.model.to(device)
    return run


def resolve_tasks(names: list[str] | str) -> list[Task]:
    """Task objects for `all` or a list of names (UserError on an unknown name)."""
    if names == "all" or names == ["all"]:
        return list(TASKS.values())
    return [get_task(n) for n in ([names] if isinstance(names, str) else names)]


def task_splits(task: Task, run: Run, cfg: JobConfig) -> Splits:
    """The task's train/eval/test pairs encoded with the run's tokenizer."""
    tok = read_run_tokenizer(run.path, run.cfg, run.provenance)
    n_ctx = run.cfg.model.n_ctx
    seed = cfg.prune.seed
    return Splits(*(encode_pairs(task.pairs(split, n, seed), tok, n_ctx)
                    for split, n in (("train", cfg.train_pairs), ("eval", cfg.eval_pairs), ("test", cfg.test_pairs))))


def evaluate_task(run: Run, task: Task, splits: Splits, target: float) -> dict[str, Any]:
    """The unpruned model's loss and accuracy on the task's test split, and whether it has learned it."""
    logits = Evaluator(run.model, {}, splits.test).logits()  # [N, vocab], one pass for both numbers
    loss = float(pair_loss(logits, splits.test))
    return {"task": task.name, "loss": loss, "accuracy": pair_accuracy(logits, splits.test), "learned": loss <= target,
            "target_loss": target}


def prune_run(run_dir: Path, names: list[str] | str, cfg: JobConfig) -> list[dict[str, Any]]:
    """Prune every named task the run has learned; write circuits/<task>.json; return one summary row per task."""
    run = load_run_on(run_dir, resolve_device(cfg.device))
    tasks = resolve_tasks(names)
    check_destination(Path(run_dir), "RUN_DIR")  # its circuits, means and task table are written there
    read_run_tokenizer(run.path, run.cfg, run.provenance)  # checked, as the task table is, before any work
    table = _task_table_kept(run_dir)
    means = means_for_run(run, cfg.mean_tokens, quiet=cfg.quiet)  # computed once, before the jobs fan out
    rows = []
    with tqdm(total=len(tasks), desc="prune", unit="task", disable=cfg.quiet) as bar:
        if cfg.jobs > 1 and len(tasks) > 1:
            with multiprocessing.get_context("spawn").Pool(min(cfg.jobs, len(tasks))) as pool:
                for row in pool.imap(_prune_in_process, [(str(run_dir), t.name, cfg) for t in tasks]):
                    rows.append(row)
                    bar.update(1)
        else:
            for task in tasks:
                rows.append(_prune_one(run, task, cfg, means))  # the run and means already loaded
                bar.update(1)
    table.update((r["task"], r) for r in rows)
    for task in TASKS.values():  # the table holds every task: one neither pruned now nor kept is evaluated
        if task.name not in table:
            table[task.name] = evaluate_task(run, task, task_splits(task, run, cfg), cfg.prune.target_loss)
    _write_task_table(run_dir, table)
    return rows


def _prune_in_process(job: tuple[str, str, JobConfig]) -> dict[str, Any]:
    """One task in a pool process: share the cores, load the run and its means (written by prune_run), prune."""
    run_dir, name, cfg = job
    torch.set_num_threads(max(1, torch.get_num_threads() // cfg.jobs))  # share the cores (or OMP_NUM_THREADS)
    run = load_run_on(run_dir, resolve_device(cfg.device))
    return _prune_one(run, get_task(name), cfg, means_for_run(run, cfg.mean_tokens))


def _prune_one(run: Run, task: Task, cfg: JobConfig, means: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One task: check it is learned, prune, write the circuit file; returns its summary row."""
    splits = task_splits(task, run, cfg)
    row = evaluate_task(run, task, splits, cfg.prune.target_loss)
    if not row["learned"]:
        return row
    record = {**prune_task(run.model, means, splits, cfg.prune), **circuit_header(run, task, cfg)}
    m = record["metrics"]
    checks = faithfulness_checks(m, cfg.prune.target_loss)
    written = all(checks.values()) or not cfg.faithful_only
    if written:
        write_circuit(run.path / CIRCUITS / f"{task.name}.json", record)
    return {**row, "nodes": record["counts"]["nodes"], "edges": record["counts"]["edges"],
            "meets_target": record["prune"]["meets_target"], "loss_circuit": m["loss_circuit"],
            "loss_inverse": m["loss_inverse"], "loss_random": m["loss_random_mean"],
            "checks": checks, "written": written, "seconds": record["prune"]["seconds"]}


def circuit_header(run: Run, task: Task, cfg: JobConfig) -> dict[str, Any]:
    """The fields of a circuit file that say what was pruned: model, task, ablation and splits."""
    return {
        "model": {"run": run.cfg.name, "sha256": file_sha256(run.path / MODEL)},
        "task": {"name": task.name, "description": task.description, "target": task.target,
                 "alternative": task.alternative, "target_loss": cfg.prune.target_loss},
        "ablation": ablation_record(run, cfg.mean_tokens),
        "splits": {"train_pairs": cfg.train_pairs, "eval_pairs": cfg.eval_pairs, "test_pairs": cfg.test_pairs},
    }


def _task_table_kept(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The rows of <run>/tasks.json that a prune keeps: those of a table of the run's current model (a table of
    another model, or of the previous format, is replaced); a broken table is a UserError."""
    path = run_dir / TASKS_FILE
    if not path.exists():
        return {}
    old = read_json(path)
    if isinstance(old, dict) and old.get("format_version") == TASK_TABLE_FORMAT - 1:
        return {}
    table = read_task_table(old, path)
    return table["tasks"] if table["model_sha256"] == file_sha256(run_dir / MODEL) else {}


def _write_task_table(run_dir: Path, rows: dict[str, dict[str, Any]]) -> None:
    """Write <run>/tasks.json: task -> the unpruned model's loss, accuracy, learned and target_loss."""
    path, model_sha = run_dir / TASKS_FILE, file_sha256(run_dir / MODEL)
    table = {name: {k: r[k] for k in ("loss", "accuracy", "learned", "target_loss")} for name, r in sorted(rows.items())}
    record = {"format_version": TASK_TABLE_FORMAT, "model_sha256": model_sha, "tasks": table}
    write_json(path, check(TASK_TABLE, record, path, "check the run's model.safetensors (retrain or restore it)"))


def list_tasks(run_dir: Path | None, cfg: JobConfig) -> list[dict[str, Any]]:
    """Every task; with a run, the unpruned model's loss and accuracy and any existing circuit's size."""
    if run_dir is None:
        return [{"task": t.name, "target": t.target, "alternative": t.alternative, "description": t.description}
                for t in TASKS.values()]
    run = load_run_on(run_dir, resolve_device(cfg.device))
    model_sha = file_sha256(run.path / MODEL)
    read_run_tokenizer(run.path, run.cfg, run.provenance)  # checked, as the circuits are, before any work
    circuits = {}
    for task in TASKS.values():
        path = run.path / CIRCUITS / f"{task.name}.json"
        if path.exists():
            circuits[task.name] = read_circuit(path, model_sha)
            check_circuit_fits(circuits[task.name], run.model, path)
    rows = []
    for task in tqdm(TASKS.values(), desc="tasks", unit="task", disable=cfg.quiet):
        row = evaluate_task(run, task, task_splits(task, run, cfg), cfg.prune.target_loss)
        if task.name in circuits:
            row.update(nodes=circuits[task.name]["counts"]["nodes"], edges=circuits[task.name]["counts"]["edges"])
        rows.append(row)
    return rows


def job_config(**kw: Any) -> JobConfig:
    """A JobConfig from CLI options (target_loss goes into the prune config; a bad --device fails here, first)."""
    target = kw.pop("target_loss", PruneConfig.target_loss)
    if not 0 < target < math.log(2):
        raise UserError(f"--target-loss {target}: must be in (0, ln 2 = 0.693); at ln 2 a circuit that knows nothing "
                        "meets it")
    cfg = JobConfig(prune=PruneConfig(target_loss=target), **kw)
    resolve_device(cfg.device)
    return cfg


def summary_table(rows: list[dict[str, Any]], target: float) -> str:
    """A plain-text table: task, learned?, nodes, edges, losses (circuit / inverse / random)."""
    if rows and "loss" not in rows[0]:
        width = max(len(r["task"]) for r in rows)
        return "\n".join(f"{r['task']:<{width}}  {r['target']!r} vs {r['alternative']!r}: {r['description']}" for r in rows)
    header = (f"{'task':<28}{'learned':>8}{'loss':>8}{'acc':>6}{'nodes':>7}{'edges':>7}{'circuit':>9}{'inverse':>9}"
              f"{'random':>8}  checks")
    lines = [header]
    for r in rows:
        learned = "yes" if r["learned"] else "no"
        cells = [f"{r.get('nodes', '-'):>7}", f"{r.get('edges', '-'):>7}"]
        cells += [f"{r[k]:>9.3f}" if k in r else f"{'-':>9}" for k in ("loss_circuit", "loss_inverse")]
        cells += [f"{r['loss_random']:>8.3f}" if "loss_random" in r else f"{'-':>8}"]
        if "checks" in r:
            failed = [name for name, ok in r["checks"].items() if not ok]
            verdict = "  fails: " + ", ".join(failed) if failed else "  pass"
            cells.append(verdict if r["written"] else verdict + " (not written)")
        lines.append(f"{r['task']:<28}{learned:>8}{r['loss']:>8.3f}{r['accuracy']:>6.2f}" + "".join(cells))
    n_learned = sum(r["learned"] for r in rows)
    pruned = any("checks" in r for r in rows)  # prune's rows; `tasks` only evaluates
    lines.append(f"{n_learned} of {len(rows)} tasks learned (unpruned loss <= {target})"
                 + ("; the others were not pruned" if pruned and n_learned < len(rows) else ""))
    return "\n".join(lines)
