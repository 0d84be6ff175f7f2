"""Broken inputs over every command, by class: each is refused with one error line that names the file (or option) and
the field, a non-zero exit and no traceback, and leaves every byte as it was: no file created, changed or deleted,
inputs and outputs alike (the whole case folder is hashed before and after).

Classes: JSON files (config.json, circuits/<task>.json, tasks.json), metrics.jsonl, safetensors files, tokenizer
files, options and paths, snapshot and import-openai sources. Each case copies a prepared folder, breaks one thing
and runs the command line in-process.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from exporter.cli import main
from trainer.run import load_tensors, save_tensors

RUN, RESUMABLE, KEPT, SOURCE, NONE = "run", "resumable", "kept", "source", "none"
LN2 = repr(math.log(2))
CUDA = torch.cuda.is_available()


# ----------------------------------------------------------------------------- prepared folders


@pytest.fixture(scope="module")
def bases(site_runs, tmp_path_factory) -> dict[str, Path]:
    """Valid folders each case copies: a run with circuits, means, tasks.json and its step-10 checkpoint; a run stopped
    at step 10 (resumable); a finished run with kept weights at step 10; an openai/circuit_sparsity model folder."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.paper_scale_models import Shape, write_checkpoint

    root = tmp_path_factory.mktemp("bases")
    run = root / RUN / "r"
    shutil.copytree(site_runs["a"], run)
    resumable = root / RESUMABLE / "r"
    resumable.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "state"):
        (shutil.copytree if (run / name).is_dir() else shutil.copy)(run / name, resumable / name)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (resumable / "metrics.jsonl").write_text("".join(line for line in lines if json.loads(line)["step"] <= 10))
    kept = root / KEPT / "r"
    shutil.copytree(site_runs["b"], kept)
    checkpoint = load_tensors(run / "state" / "checkpoint.safetensors")
    weights = {k.removeprefix("model."): v for k, v in checkpoint.items() if k.startswith("model.")}
    save_tensors(kept / "snapshots" / "step-000010.safetensors", weights, pack=True)
    shape = Shape(n_layer=1, d_model=32, n_head=2, d_head=8, d_mlp=64, block_size=16)
    write_checkpoint(root / SOURCE / "src", shape, density=0.5)
    return {RUN: run.parent, RESUMABLE: resumable.parent, KEPT: kept.parent, SOURCE: root / SOURCE}


@pytest.fixture(autouse=True)
def token_cache_env(token_cache, monkeypatch):
    """Token shards go to the session's cache, never the user's."""
    monkeypatch.setenv("CIRCEXPORT_CACHE", str(token_cache))


# ----------------------------------------------------------------------------- ways to break a file


Break = Callable[[Path], None]  # changes the copied input folder


def write(rel: str, data: bytes) -> Break:
    """Replace a file's bytes."""
    return lambda root: (root / rel).write_bytes(data)


def folder(rel: str) -> Break:
    """A folder where the file should be."""
    def go(root: Path) -> None:
        p = root / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
        p.mkdir()
        (p / "x").write_text("x")
    return go


def remove(rel: str) -> Break:
    """Delete a file."""
    return lambda root: (root / rel).unlink()


def truncate(rel: str, keep: float = 0.5) -> Break:
    """Cut a file to a fraction of its bytes."""
    def go(root: Path) -> None:
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[:int(len(data) * keep)])
    return go


def random_bytes(rel: str) -> Break:
    """Random bytes of the file's size."""
    def go(root: Path) -> None:
        n = (root / rel).stat().st_size
        (root / rel).write_bytes(torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(0),
                                               dtype=torch.uint8).numpy().tobytes())
    return go


def edit_json(rel: str, change: Callable[[Any], Any]) -> Break:
    """Rewrite a JSON file with change(value) (which may edit it in place and return None)."""
    def go(root: Path) -> None:
        value = json.loads((root / rel).read_text())
        new = change(value)
        (root / rel).write_text(json.dumps(value if new is None else new))  # NaN and Infinity written as such
    return go


def at(path: str, value: Any) -> Callable[[Any], None]:
    """Set a dotted path (list indices as numbers) in a JSON value."""
    *parents, leaf = [int(p) if p.isdigit() else p for p in path.split(".")]

    def go(obj: Any) -> None:
        for p in parents:
            obj = obj[p]
        obj[leaf] = value
    return go


def drop(path: str) -> Callable[[Any], None]:
    """Delete a dotted path in a JSON value."""
    *parents, leaf = [int(p) if p.isdigit() else p for p in path.split(".")]

    def go(obj: Any) -> None:
        for p in parents:
            obj = obj[p]
        del obj[leaf]
    return go


def edit_lines(rel: str, change: Callable[[list[str]], list[str]]) -> Break:
    """Rewrite a text file's lines."""
    def go(root: Path) -> None:
        lines = (root / rel).read_text().splitlines()
        (root / rel).write_text("".join(line + "\n" for line in change(lines)))
    return go


def metrics_row(n: int, key: str, raw: str) -> Callable[[list[str]], list[str]]:
    """Line n (from 0) of metrics.jsonl with key's value replaced by raw JSON text."""
    def go(lines: list[str]) -> list[str]:
        row = json.loads(lines[n])
        row[key] = "@@"
        lines[n] = json.dumps(row).replace('"@@"', raw)
        return lines
    return go


def edit_tensors(rel: str, change: Callable[[dict[str, torch.Tensor]], None]) -> Break:
    """Rewrite a safetensors file (unpacked, metadata kept) after change(tensors)."""
    def go(root: Path) -> None:
        path = root / rel
        with safe_open(path, "pt") as f:
            meta = dict(f.metadata() or {})
        tensors = load_tensors(path)
        change(tensors)
        save_tensors(path, tensors, meta)
    return go


def reshape(name: str) -> Callable[[dict[str, torch.Tensor]], None]:
    """One tensor a column short."""
    return lambda t: t.__setitem__(name, t[name][..., :-1].contiguous())


def nan_in(name: str) -> Callable[[dict[str, torch.Tensor]], None]:
    """One value NaN."""
    def go(t: dict[str, torch.Tensor]) -> None:
        t[name] = t[name].clone()
        t[name].view(-1)[0] = float("nan")
    return go


def rename_node(circuit: dict[str, Any], new: str) -> None:
    """Replace the circuit's first node id everywhere it appears."""
    old = circuit["nodes"][0]["id"]
    text = json.dumps(circuit).replace(f'"{old}"', f'"{new}"')
    circuit.clear()
    circuit.update(json.loads(text))


def add_node(circuit: dict[str, Any], node: dict[str, Any]) -> None:
    """Append a node and count it."""
    circuit["nodes"].append(node)
    circuit["counts"]["nodes"] += 1


def new_node_id(circuit: dict[str, Any]) -> str:
    """A valid node id of the model that the circuit does not hold."""
    ids = {n["id"] for n in circuit["nodes"]}
    return next(f"0.attn.q:{i}" for i in range(32) if f"0.attn.q:{i}" not in ids)


def dangling_edge(circuit: dict[str, Any]) -> None:
    """An edge whose end is not one of the circuit's nodes."""
    circuit["edges"][0]["dst"] = new_node_id(circuit)


def duplicate_node(circuit: dict[str, Any]) -> None:
    """The first node listed twice."""
    add_node(circuit, dict(circuit["nodes"][0]))


def tokenizer_edit(change: Callable[[dict[str, Any]], None]) -> Break:
    """Rewrite the run's tokenizer.json."""
    return edit_json("r/tokenizer.json", change)


def without_eot(tok: dict[str, Any]) -> None:
    """A tokenizer with no end-of-text token."""
    tok["added_tokens"] = []
    tok["model"]["vocab"].pop("<|endoftext|>", None)


def extra_tokens(tok: dict[str, Any]) -> None:
    """A tokenizer with more tokens than the model's vocabulary."""
    n = len(tok["model"]["vocab"])
    tok["model"]["vocab"].update({f"zz{i}": n + i for i in range(8)})


def other_merges(tok: dict[str, Any]) -> None:
    """A tokenizer of the same size that encodes differently: two merges swapped."""
    merges = tok["model"]["merges"]
    merges[0], merges[1] = merges[1], merges[0]


def blocker(rel: str) -> Break:
    """A regular file at rel (where an output's parent folder would go)."""
    def go(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("a file, not a folder")
    return go


def occupied(rel: str) -> Break:
    """A non-empty folder that is not a run or a site."""
    def go(root: Path) -> None:
        (root / rel).mkdir(parents=True)
        (root / rel / "thesis.tex").write_text("years of work")
    return go


def both(*breaks: Break) -> Break:
    """Several breaks in a row."""
    def go(root: Path) -> None:
        for b in breaks:
            b(root)
    return go


# ----------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One broken input: the folder it starts from, the break, the command line and what the error line names."""

    base: str
    argv: tuple[str, ...]  # {root}: the case folder (the copied base is in it)
    expect: tuple[str, ...]  # case-sensitive text the error line contains: the file or option, and the field
    breaks: Break | None = None


BUILD = ("build", "-q", "--no-onnx", "-j", "1", "--sample-tokens", "1024", "{root}/r", "-o", "{root}/site")
TASKS = ("tasks", "-q", "{root}/r")
PRUNE = ("prune", "-q", "--device", "cpu", "--mean-tokens", "4096", "--target-loss", "0.69", "{root}/r")
SNAPSHOT = ("snapshot", "{root}/r", "--step", "10", "--out", "{root}/snap")
RESUME = ("train", "--resume", "--out", "{root}/r", "-q", "--device", "cpu")
TRAIN = ("train", "--config", "tiny", "--out", "{root}/new", "-q", "--device", "cpu")
IMPORT = ("import-openai", "{root}/src", "{root}/imported")

CIRCUIT = "r/circuits/lambda_func.json"
CASES: dict[str, Case] = {}


def case(name: str, base: str, argv: tuple[str, ...], expect: tuple[str, ...], breaks: Break | None = None) -> None:
    """Add a case (names are unique)."""
    assert name not in CASES, name
    CASES[name] = Case(base, argv, expect, breaks)


def json_file_cases(prefix: str, base: str, argv: tuple[str, ...], rel: str) -> None:
    """The format-independent ways a JSON file breaks: not JSON, not UTF-8, empty, a folder, deeply nested."""
    name = rel.rpartition("/")[2]
    case(f"{prefix}-not-json", base, argv, (name, "not valid JSON"), write(rel, b'{"format_version": 1,'))
    case(f"{prefix}-not-utf8", base, argv, (name, "UTF-8"), write(rel, b'{"name": "\xff\xfe"}'))
    case(f"{prefix}-empty", base, argv, (name,), write(rel, b""))
    case(f"{prefix}-folder", base, argv, (name, "folder"), folder(rel))
    case(f"{prefix}-nested", base, argv, (name,), write(rel, b"[" * 100_000 + b"]" * 100_000))
    case(f"{prefix}-list", base, argv, (name, "format_version"), write(rel, b"[1, 2]"))
    case(f"{prefix}-null", base, argv, (name, "format_version"), write(rel, b"null"))


# --- 1. config.json: for build, tasks, prune, snapshot and train --resume
for cmd, base, argv in (("build", RUN, BUILD), ("tasks", RUN, TASKS), ("prune", RUN, PRUNE),
                        ("snapshot", KEPT, SNAPSHOT), ("resume", RESUMABLE, RESUME)):
    rel = "r/config.json"
    json_file_cases(f"{cmd}-config", base, argv, rel)
    case(f"{cmd}-config-no-format", base, argv, ("config.json", "format_version"), edit_json(rel, drop("format_version")))
    case(f"{cmd}-config-format-2", base, argv, ("config.json", "format_version"), edit_json(rel, at("format_version", 2)))
    case(f"{cmd}-config-type", base, argv, ("config.json", "model.d_model"), edit_json(rel, at("model.d_model", "32")))
    case(f"{cmd}-config-section-type", base, argv, ("config.json", "train"), edit_json(rel, at("train", 3)))
    case(f"{cmd}-config-nan", base, argv, ("config.json", "model.afrac"), edit_json(rel, at("model.afrac", math.nan)))
    case(f"{cmd}-config-inf", base, argv, ("config.json", "model.norm_eps"),
         edit_json(rel, at("model.norm_eps", math.inf)))
    case(f"{cmd}-config-negative", base, argv, ("config.json", "model.n_layer"), edit_json(rel, at("model.n_layer", -2)))
    case(f"{cmd}-config-name", base, argv, ("config.json", "name"), edit_json(rel, at("name", "../../x")))
    case(f"{cmd}-config-unknown", base, argv, ("config.json", "model.d_modle"), edit_json(rel, at("model.d_modle", 3)))
    case(f"{cmd}-config-huge", base, argv, ("config.json", "model.d_model"), edit_json(rel, at("model.d_model", 2**70)))
    case(f"{cmd}-config-locations", base, argv, ("config.json", "model.afrac_locations"),
         edit_json(rel, at("model.afrac_locations", "attn.q")))
for cmd, argv in (("build", BUILD), ("tasks", TASKS), ("prune", PRUNE)):
    case(f"{cmd}-config-layers", RUN, argv, ("model.safetensors", "config.json"),
         edit_json("r/config.json", at("model.n_layer", 3)))

# --- 1. circuits/<task>.json: for build (whole) and tasks (which shows each circuit's size)
for cmd, argv in (("build", BUILD), ("tasks", TASKS)):
    p = f"{cmd}-circuit"
    json_file_cases(p, RUN, argv, CIRCUIT)
    for name, change, field in (
        ("format-2", at("format_version", 2), "format_version"),
        ("no-task", drop("task"), "field task"),
        ("task-string", at("task", "lambda_func"), "field task"),
        ("model-list", at("model", []), "field model"),
        ("model-sha", at("model.sha256", "abc"), "field model.sha256"),
        ("count-string", at("counts.nodes", "3"), "field counts.nodes"),
        ("count-negative", at("counts.edges", -1), "field counts.edges"),
        ("count-wrong", lambda c: c["counts"].__setitem__("edges", len(c["edges"]) + 1), "field counts.edges"),
        ("count-float", at("counts.nodes", 2.5), "field counts.nodes"),
        ("count-inf", at("counts.nodes", math.inf), "field counts.nodes"),
        ("by-location", at("counts.nodes_by_location", {"0.attn.q": 10**6}), "field counts.nodes_by_location"),
        ("metric-nan", at("metrics.loss_full", math.nan), "field metrics.loss_full"),
        ("metric-string", at("metrics.loss_circuit", "0.5"), "field metrics.loss_circuit"),
        ("accuracy-range", at("metrics.acc_full", 1.5), "field metrics.acc_full"),
        ("tau-inf", at("nodes.0.tau", -math.inf), "field nodes[0].tau"),
        ("target-chance", at("task.target_loss", math.log(2)), "field task.target_loss"),
        ("target-high", at("task.target_loss", 0.7), "field task.target_loss"),
        ("prune-target", at("prune.target_loss", 5), "field prune.target_loss"),
        ("pairs-zero", at("splits.train_pairs", 0), "field splits.train_pairs"),
        ("ablation-kind", at("ablation.kind", "zero"), "field ablation.kind"),
        ("nodes-object", at("nodes", {}), "field nodes"),
        ("duplicate-node", duplicate_node, "appears twice"),
        ("edge-no-src", drop("edges.0.src"), "field edges[0].src"),
        ("edge-dangling", dangling_edge, "field edges[0].dst"),
        ("node-malformed", at("nodes.0.id", "0.attn.z:1"), "field nodes[0].id"),
        ("node-colon", at("nodes.0.id", "0.attn.q:01"), "field nodes[0].id"),
        ("node-layer", lambda c: rename_node(c, "7.attn.q:0"), "7.attn.q:0"),
        ("node-index", lambda c: rename_node(c, "0.attn.q:9999"), "0.attn.q:9999"),
        ("unembed-token", at("unembed_edges.0.token", 10**6), "field unembed_edges[0].token"),
        ("qk-head", at("qk_pairs.0.head", 99), "field qk_pairs[0].head"),
        ("bool-meets", at("prune.meets_target", "yes"), "field prune.meets_target"),
    ):
        case(f"{p}-{name}", RUN, argv, ("lambda_func.json", field), edit_json(CIRCUIT, change))
case("build-circuit-other-model", RUN, BUILD, ("lambda_func.json", "different model"),
     edit_json(CIRCUIT, at("model.sha256", "0" * 64)))
case("build-circuit-means-tokens", RUN, BUILD, ("lambda_func.json", "tokens"),
     edit_json(CIRCUIT, at("ablation.tokens", 8192)))
case("build-circuit-folder-name", RUN, BUILD, ("circuits", "folder"), folder("r/circuits"))

# --- 1. tasks.json: for build and prune (which merges its rows into it)
for cmd, argv in (("build", BUILD), ("prune", PRUNE)):
    p, rel = f"{cmd}-tasks", "r/tasks.json"
    json_file_cases(p, RUN, argv, rel)
    for name, change, field in (
        ("format-3", at("format_version", 3), "format_version"),
        ("no-sha", drop("model_sha256"), "field model_sha256"),
        ("tasks-list", at("tasks", []), "field tasks"),
        ("loss-string", at("tasks.lambda_func.loss", "0.4"), "field tasks.lambda_func.loss"),
        ("loss-nan", at("tasks.lambda_func.loss", math.nan), "field tasks.lambda_func.loss"),
        ("loss-negative", at("tasks.lambda_func.loss", -1), "field tasks.lambda_func.loss"),
        ("accuracy", at("tasks.var_swap.accuracy", 2), "field tasks.var_swap.accuracy"),
        ("target-chance", at("tasks.var_swap.target_loss", math.log(2)), "field tasks.var_swap.target_loss"),
        ("target-inf", at("tasks.var_swap.target_loss", math.inf), "field tasks.var_swap.target_loss"),
        ("learned", at("tasks.for_while.learned", True), "field tasks.for_while.learned"),
        ("no-learned", drop("tasks.var_swap.learned"), "field tasks.var_swap.learned"),
    ):
        case(f"{p}-{name}", RUN, argv, ("tasks.json", field), edit_json(rel, change))
case("build-tasks-other-model", RUN, BUILD, ("tasks.json", "model_sha256"), edit_json("r/tasks.json",
                                                                                      at("model_sha256", "0" * 64)))

# --- 2. metrics.jsonl: for build, snapshot (--step and --match) and train --resume
for cmd, base, argv in (("build", RUN, BUILD), ("snapshot", KEPT, SNAPSHOT),
                        ("match", KEPT, ("snapshot", "{root}/r", "--match", "{root}/r", "--out", "{root}/snap")),
                        ("resume", RESUMABLE, RESUME)):
    p, rel = f"{cmd}-metrics", "r/metrics.jsonl"
    case(f"{p}-not-utf8", base, argv, ("metrics.jsonl", "UTF-8"), write(rel, b'{"step": 5, "loss": \xff}\n'))
    case(f"{p}-not-json", base, argv, ("metrics.jsonl:2", "not valid JSON"), edit_lines(rel, lambda ls: [ls[0], "{"] + ls[1:]))
    case(f"{p}-list", base, argv, ("metrics.jsonl:1", "(top level)"), edit_lines(rel, lambda ls: ["[]"] + ls))
    case(f"{p}-loss-string", base, argv, ("metrics.jsonl:1", "field loss"), edit_lines(rel, metrics_row(0, "loss", '"7.4"')))
    case(f"{p}-loss-nan", base, argv, ("metrics.jsonl:1", "field loss"), edit_lines(rel, metrics_row(0, "loss", "NaN")))
    case(f"{p}-val-inf", base, argv, ("metrics.jsonl:2", "field val_loss"),
         edit_lines(rel, metrics_row(1, "val_loss", "Infinity")))
    case(f"{p}-step-negative", base, argv, ("metrics.jsonl:1", "field step"), edit_lines(rel, metrics_row(0, "step", "-5")))
    case(f"{p}-step-order", base, argv, ("metrics.jsonl:2", "field step"), edit_lines(rel, lambda ls: [ls[1], ls[0]] + ls[2:]))
    case(f"{p}-no-step", base, argv, ("metrics.jsonl:1", "field step"),
         edit_lines(rel, lambda ls: [json.dumps({k: v for k, v in json.loads(ls[0]).items() if k != "step"})] + ls[1:]))
    case(f"{p}-folder", base, argv, ("metrics.jsonl", "folder"), folder(rel))

# --- 3. safetensors: model.safetensors (build, tasks, prune), means.safetensors (build), snapshots (snapshot),
# state/checkpoint.safetensors (train --resume)
for cmd, argv in (("build", BUILD), ("tasks", TASKS), ("prune", PRUNE)):
    p, rel = f"{cmd}-model", "r/model.safetensors"
    case(f"{p}-truncated", RUN, argv, ("model.safetensors",), truncate(rel))
    case(f"{p}-zero", RUN, argv, ("model.safetensors",), write(rel, b""))
    case(f"{p}-random", RUN, argv, ("model.safetensors",), random_bytes(rel))
    case(f"{p}-header-only", RUN, argv, ("model.safetensors",), truncate(rel, 0.01))
    case(f"{p}-shape", RUN, argv, ("model.safetensors", "lm_head.weight"), edit_tensors(rel, reshape("lm_head.weight")))
    case(f"{p}-missing", RUN, argv, ("model.safetensors", "ln_f.weight"), edit_tensors(rel, lambda t: t.pop("ln_f.weight")))
    case(f"{p}-extra", RUN, argv, ("model.safetensors", "bogus"), edit_tensors(rel, lambda t: t.update(bogus=torch.zeros(2))))
    case(f"{p}-dtype", RUN, argv, ("model.safetensors", "ln_f.weight"),
         edit_tensors(rel, lambda t: t.update({"ln_f.weight": t["ln_f.weight"].to(torch.int64)})))
    case(f"{p}-absent", RUN, argv, ("model.safetensors",), remove(rel))
    case(f"{p}-folder", RUN, argv, ("model.safetensors", "folder"), folder(rel))
rel = "r/means.safetensors"
case("build-means-truncated", RUN, BUILD, ("means.safetensors",), truncate(rel))
case("build-means-zero", RUN, BUILD, ("means.safetensors",), write(rel, b""))
case("build-means-random", RUN, BUILD, ("means.safetensors",), random_bytes(rel))
case("build-means-nan", RUN, BUILD, ("means.safetensors", "0.mlp.post_act"), edit_tensors(rel, nan_in("0.mlp.post_act")))
case("build-means-inf", RUN, BUILD, ("means.safetensors", "final_resid"),
     edit_tensors(rel, lambda t: t.update(final_resid=t["final_resid"] + math.inf)))
case("build-means-shape", RUN, BUILD, ("means.safetensors", "0.attn.v"), edit_tensors(rel, reshape("0.attn.v")))
case("build-means-missing", RUN, BUILD, ("means.safetensors", "1.attn.k"), edit_tensors(rel, lambda t: t.pop("1.attn.k")))
case("build-means-absent", RUN, BUILD, ("means.safetensors",), remove(rel))
case("build-means-other-model", RUN, BUILD, ("means.safetensors", "different model"),
     lambda root: save_tensors(root / rel, load_tensors(root / rel), {"model_sha256": "0" * 64, "tokens": "4096"}))
case("build-means-no-tokens", RUN, BUILD, ("means.safetensors", "tokens"),
     lambda root: save_tensors(root / rel, load_tensors(root / rel),
                               {"model_sha256": hashlib.sha256((root / "r/model.safetensors").read_bytes()).hexdigest()}))
rel = "r/snapshots/step-000010.safetensors"
for name, b, expect in (("truncated", truncate(rel), ()), ("zero", write(rel, b""), ()), ("random", random_bytes(rel), ()),
                        ("shape", edit_tensors(rel, reshape("wte.weight")), ("wte.weight",)),
                        ("missing", edit_tensors(rel, lambda t: t.pop("blocks.1.mlp.c_fc.weight")),
                         ("blocks.1.mlp.c_fc.weight",)),
                        ("nan", edit_tensors(rel, nan_in("blocks.0.attn.c_attn.weight")), ("blocks.0.attn.c_attn.weight",))):
    case(f"snapshot-file-{name}", KEPT, SNAPSHOT, ("step-000010.safetensors", *expect), b)
rel = "r/state/checkpoint.safetensors"
for name, b, expect in (("truncated", truncate(rel), ()), ("zero", write(rel, b""), ()), ("random", random_bytes(rel), ()),
                        ("shape", edit_tensors(rel, reshape("model.wte.weight")), ("wte.weight",)),
                        ("no-moment", edit_tensors(rel, lambda t: t.pop("exp_avg.wte.weight")), ("exp_avg.wte.weight",)),
                        ("no-step", edit_tensors(rel, lambda t: t.pop("train_step")), ("train_step",)),
                        ("step-past-end", edit_tensors(rel, lambda t: t.update(train_step=torch.tensor([99]))),
                         ("train_step",)),
                        ("nan", edit_tensors(rel, nan_in("model.lm_head.weight")), ("model.lm_head.weight",)),
                        ("absent", remove(rel), ()),
                        ("folder", folder(rel), ("folder",))):
    case(f"resume-checkpoint-{name}", RESUMABLE, RESUME, ("checkpoint.safetensors", *expect), b)

# --- 4. tokenizer.json: for build, tasks, prune and snapshot (which copies it into the new run)
for cmd, base, argv in (("build", RUN, BUILD), ("tasks", RUN, TASKS), ("prune", RUN, PRUNE), ("snapshot", KEPT, SNAPSHOT)):
    p, rel = f"{cmd}-tokenizer", "r/tokenizer.json"
    case(f"{p}-not-json", base, argv, ("tokenizer.json",), write(rel, b'{"model": '))
    case(f"{p}-empty", base, argv, ("tokenizer.json",), write(rel, b""))
    case(f"{p}-not-utf8", base, argv, ("tokenizer.json",), write(rel, b'{"\xff": 1}'))
    case(f"{p}-not-tokenizer", base, argv, ("tokenizer.json",), write(rel, b'{"a": 1}'))
    case(f"{p}-folder", base, argv, ("tokenizer.json",), folder(rel))
    case(f"{p}-absent", base, argv, ("tokenizer.json",), remove(rel))
    case(f"{p}-no-eot", base, argv, ("tokenizer.json", "<|endoftext|>"), tokenizer_edit(without_eot))
    case(f"{p}-too-many", base, argv, ("tokenizer.json", "vocab_size"), tokenizer_edit(extra_tokens))
    case(f"{p}-other", base, argv, ("tokenizer.json", "tokenizer_sha256"), tokenizer_edit(other_merges))

# --- 5. options and paths
for name, argv, expect, b in (
    ("missing-run", ("build", "-q", "{root}/nope", "-o", "{root}/site"), ("nope",), None),
    ("run-is-file", ("build", "-q", "{root}/f", "-o", "{root}/site"), ("f",), blocker("f")),
    ("duplicate-run", ("build", "-q", "{root}/r", "{root}/r", "-o", "{root}/site"), ("r",), None),
    ("out-is-run", BUILD[:-1] + ("{root}/r",), ("-o", "overlaps"), None),
    ("out-in-run", BUILD[:-1] + ("{root}/r/site",), ("-o", "overlaps"), None),
    ("out-holds-run", BUILD[:-1] + ("{root}",), ("-o", "overlaps"), None),
    ("out-in-circuits", BUILD[:-1] + ("{root}/r/circuits",), ("-o", "overlaps"), None),
    ("out-is-file", BUILD, ("site", "is a file"), blocker("site")),
    ("out-parent-file", BUILD[:-1] + ("{root}/f/site",), ("f",), blocker("f")),
    ("out-grandparent-file", BUILD[:-1] + ("{root}/f/a/b/site",), ("f",), blocker("f")),
    ("out-not-site", BUILD, ("site", "not a circexport site"), occupied("site")),
    ("sample-tokens-low", BUILD[:5] + ("--sample-tokens", "10") + BUILD[7:], ("--sample-tokens",), None),
    ("sample-tokens-huge", BUILD[:5] + ("--sample-tokens", str(10**30)) + BUILD[7:], ("--sample-tokens",), None),
    ("sample-tokens-word", BUILD[:5] + ("--sample-tokens", "many") + BUILD[7:], ("--sample-tokens",), None),
    ("examples-zero", BUILD + ("--examples", "0"), ("--examples",), None),
    ("examples-high", BUILD + ("--examples", "65"), ("--examples",), None),
    ("live-budget-zero", BUILD + ("--live-budget", "0"), ("--live-budget",), None),
    ("live-budget-huge", BUILD + ("--live-budget", str(10**30)), ("--live-budget",), None),
    ("jobs-negative", BUILD + ("-j", "-1"), ("-j",), None),
    ("jobs-huge", BUILD + ("-j", str(10**30)), ("--jobs",), None),
    ("device", BUILD + ("--device", "tpu"), ("--device",), None),
    ("site-url", BUILD + ("--site-url", "javascript:alert(1)"), ("--site-url",), None),
):
    case(f"build-option-{name}", RUN, argv, expect, b)
if not CUDA:
    case("build-option-cuda", RUN, BUILD + ("--device", "cuda"), ("--device cuda",))
    case("prune-option-cuda", RUN, PRUNE + ("--device", "cuda"), ("--device cuda",))
    case("train-option-cuda", NONE, TRAIN + ("--device", "cuda"), ("--device cuda",))
for value in ("0.7", LN2, "inf", "-inf", "nan", "0", "-0.1", "1e400", "x"):
    case(f"tasks-target-loss-{value}", RUN, TASKS + ("--target-loss", value), ("--target-loss",))
    case(f"prune-target-loss-{value}", RUN, PRUNE[:-2] + ("--target-loss", value, "{root}/r"), ("--target-loss",))
for name, argv, expect in (
    ("missing-run", ("prune", "-q", "{root}/nope"), ("nope",)),
    ("unknown-task", PRUNE + ("--task", "no_such_task"), ("no_such_task",)),
    ("jobs-zero", PRUNE + ("--jobs", "0"), ("--jobs",)),
    ("jobs-huge", PRUNE + ("--jobs", str(10**30)), ("--jobs",)),
    ("mean-tokens-zero", PRUNE[:4] + ("--mean-tokens", "0") + PRUNE[6:], ("--mean-tokens",)),
    ("mean-tokens-huge", PRUNE[:4] + ("--mean-tokens", str(10**30)) + PRUNE[6:], ("--mean-tokens",)),
):
    case(f"prune-option-{name}", RUN, argv, expect)
case("prune-option-run-is-file", RUN, ("prune", "-q", "{root}/f"), ("f",), blocker("f"))
case("tasks-option-missing-run", RUN, ("tasks", "-q", "{root}/nope"), ("nope",))
for name, sets, expect in (
    ("lr-inf", ("train.lr=inf",), "train.lr"), ("lr-nan", ("train.lr=nan",), "train.lr"),
    ("lr-zero", ("train.lr=0",), "train.lr"), ("lr-negative", ("train.lr=-0.01",), "train.lr"),
    ("weight-decay-nan", ("train.weight_decay=nan",), "train.weight_decay"),
    ("weight-decay-negative", ("train.weight_decay=-1",), "train.weight_decay"),
    ("beta1-one", ("train.beta1=1",), "train.beta1"), ("beta2-high", ("train.beta2=1.5",), "train.beta2"),
    ("beta2-nan", ("train.beta2=nan",), "train.beta2"), ("eps-zero", ("train.eps=0",), "train.eps"),
    ("eps-negative", ("train.eps=-1e-8",), "train.eps"), ("eps-inf", ("train.eps=inf",), "train.eps"),
    ("seed-overflow", ("train.seed=18446744073709551616",), "train.seed"), ("seed-negative", ("train.seed=-1",), "train.seed"),
    ("steps-negative", ("train.steps=-5",), "train.steps"), ("steps-zero", ("train.steps=0",), "train.steps"),
    ("steps-float", ("train.steps=1e3",), "train.steps"), ("steps-word", ("train.steps=many",), "train.steps"),
    ("steps-huge", ("train.steps=99999999999999999999999",), "train.steps"),
    ("batch-zero", ("train.batch_size=0",), "train.batch_size"), ("micro-batch", ("train.micro_batch=3",), "train.micro_batch"),
    ("log-every", ("train.log_every=0",), "train.log_every"), ("snapshot-every", ("train.snapshot_every=-1",), "train.snapshot_every"),
    ("warmup", ("train.warmup_frac=2",), "train.warmup_frac"), ("bf16", ("train.bf16=yes",), "train.bf16"),
    ("afrac-zero", ("model.afrac=0",), "model.afrac"), ("afrac-nan", ("model.afrac=nan",), "model.afrac"),
    ("norm-eps-inf", ("model.norm_eps=inf",), "model.norm_eps"), ("norm-eps-zero", ("model.norm_eps=0",), "model.norm_eps"),
    ("d-model-odd", ("model.d_model=33",), "model.d_model"), ("n-layer-zero", ("model.n_layer=0",), "model.n_layer"),
    ("n-ctx-one", ("model.n_ctx=1",), "model.n_ctx"), ("vocab", ("model.vocab_size=100",), "vocab_size"),
    ("d-model-huge", ("model.d_model=1099511627776",), "model.d_model"),
    ("locations", ("model.afrac_locations=['x']",), "model.afrac_locations"),
    ("l0-zero", ("sparsity.l0=0",), "sparsity.l0"), ("anneal", ("sparsity.anneal_start=0.9", "sparsity.anneal_end=0.1"), "sparsity.anneal_start"),
    ("embed-mult-inf", ("sparsity.embed_density_mult=inf",), "sparsity.embed_density_mult"),
    ("min-per-row", ("sparsity.min_per_row=-1",), "sparsity.min_per_row"),
    ("val-frac", ("data.val_frac=1",), "data.val_frac"), ("tinypython", ("data.tinypython=2",), "data.tinypython"),
    ("coined-nan", ("data.tinypython_coined=nan",), "data.tinypython_coined"),
    ("max-bytes", ("data.max_bytes=-1",), "data.max_bytes"),
    ("unknown-key", ("model.d_modle=64",), "model.d_modle"), ("unknown-section", ("optim.lr=1",), "optim"),
    ("not-a-section", ("train.lr.x=1",), "train.lr"), ("no-equals", ("train.lr",), "train.lr"),
    ("name-path", ("name=../../x",), "name"), ("name-slash", ("name=a/b",), "name"),
    ("tokenizer-unknown", ("data.tokenizer=nope",), "nope"),
):
    case(f"train-set-{name}", NONE, TRAIN + sum((("--set", s) for s in sets), ()), ("--set" if "=" not in sets[-1] else expect,))
for name, argv, expect, b in (
    ("config-unknown", ("train", "--config", "no-such-config", "--out", "{root}/new"), ("no-such-config",), None),
    ("config-missing-file", ("train", "--config", "{root}/c.toml", "--out", "{root}/new"), ("c.toml",), None),
    ("config-folder", ("train", "--config", "{root}/c.toml", "--out", "{root}/new"), ("c.toml", "folder"), folder("c.toml")),
    ("config-not-toml", ("train", "--config", "{root}/c.toml", "--out", "{root}/new"), ("c.toml", "TOML"),
     write("c.toml", b"[model\nn_layer = 2")),
    ("config-not-utf8", ("train", "--config", "{root}/c.toml", "--out", "{root}/new"), ("c.toml", "UTF-8"),
     write("c.toml", b'name = "\xff"\n')),
    ("config-nan", ("train", "--config", "{root}/c.toml", "--out", "{root}/new"), ("c.toml", "train.lr"),
     write("c.toml", b"[train]\nlr = nan\n")),
    ("config-section", ("train", "--config", "{root}/c.toml", "--out", "{root}/new"), ("c.toml", "model"),
     write("c.toml", b"model = 3\n")),
    ("tokenizer-broken", TRAIN + ("--set", "data.tokenizer='{root}/t.json'"), ("t.json",), write("t.json", b"{")),
    ("tokenizer-folder", TRAIN + ("--set", "data.tokenizer='{root}/t.json'"), ("t.json",), folder("t.json")),
    ("tokenizer-size", TRAIN + ("--set", "data.tokenizer='{root}/r/tokenizer.json'", "--set", "model.vocab_size=4096"),
     ("vocab_size",), None),
    ("out-is-file", TRAIN[:3] + ("{root}/f",) + TRAIN[4:], ("--out", "f"), blocker("f")),
    ("out-parent-file", TRAIN[:3] + ("{root}/f/new",) + TRAIN[4:], ("--out", "f"), blocker("f")),
    ("out-occupied", TRAIN, ("--out", "new"), occupied("new")),
    ("out-is-run", TRAIN[:3] + ("{root}/r",) + TRAIN[4:], ("--out", "r"), None),
    ("no-config", ("train", "--out", "{root}/new"), ("--config",), None),
    ("resume-set", RESUME[:1] + ("--config", "tiny", "--set", "train.steps=40") + RESUME[1:], ("--resume", "train.steps"), None),
    ("resume-no-out", ("train", "--resume"), ("--out",), None),
):
    case(f"train-{name}", RESUMABLE if "{root}/r" in " ".join(argv) else NONE, argv, expect, b)
case("resume-missing-run", NONE, RESUME, ("r", "config.json"))
case("resume-finished", RUN, RESUME, ("model.safetensors", "nothing to resume"))
case("resume-no-checkpoint", RESUMABLE, RESUME, ("checkpoint.safetensors",), lambda root: shutil.rmtree(root / "r/state"))
case("resume-set", RESUMABLE, RESUME + ("--set", "train.lr=inf"), ("--set",))

# --- 6. snapshot: its options and paths
for name, argv, expect, b in (
    ("step-absent", SNAPSHOT[:3] + ("15",) + SNAPSHOT[4:], ("step-000015.safetensors", "15"), None),
    ("step-zero", SNAPSHOT[:3] + ("0",) + SNAPSHOT[4:], ("--step",), None),
    ("step-huge", SNAPSHOT[:3] + (str(10**30),) + SNAPSHOT[4:], ("--step",), None),
    ("step-and-match", SNAPSHOT + ("--match", "{root}/r"), ("--step", "--match"), None),
    ("neither", SNAPSHOT[:2] + SNAPSHOT[4:], ("--step", "--match"), None),
    ("missing-run", ("snapshot", "{root}/nope", "--step", "10", "--out", "{root}/snap"), ("nope",), None),
    ("match-missing-run", ("snapshot", "{root}/r", "--match", "{root}/nope", "--out", "{root}/snap"), ("nope",), None),
    ("match-no-val", ("snapshot", "{root}/r", "--match", "{root}/r", "--out", "{root}/snap"), ("metrics.jsonl", "validation"),
     edit_lines("r/metrics.jsonl", lambda ls: [ls[0]])),
    ("out-is-run", SNAPSHOT[:-1] + ("{root}/r",), ("--out",), None),
    ("out-in-run", SNAPSHOT[:-1] + ("{root}/r/snap",), ("--out", "overlaps"), None),
    ("out-in-snapshots", SNAPSHOT[:-1] + ("{root}/r/snapshots/new",), ("--out", "overlaps"), None),
    ("out-holds-run", SNAPSHOT[:-1] + ("{root}",), ("--out",), None),
    ("out-is-file", SNAPSHOT, ("--out", "snap"), blocker("snap")),
    ("out-parent-file", SNAPSHOT[:-1] + ("{root}/f/snap",), ("--out", "f"), blocker("f")),
    ("out-occupied", SNAPSHOT, ("--out", "snap"), occupied("snap")),
    ("config-missing", SNAPSHOT, ("config.json",), remove("r/config.json")),
    ("metrics-missing", SNAPSHOT, ("metrics.jsonl",), remove("r/metrics.jsonl")),
):
    case(f"snapshot-{name}", KEPT, argv, expect, b)

# --- 6. import-openai: their checkpoint, config and tokenizer files, and the output path
for name, b, expect in (
    ("checkpoint-truncated", truncate("src/final_model.pt"), ("final_model.pt",)),
    ("checkpoint-zero", write("src/final_model.pt", b""), ("final_model.pt",)),
    ("checkpoint-random", random_bytes("src/final_model.pt"), ("final_model.pt",)),
    ("checkpoint-folder", folder("src/final_model.pt"), ("final_model.pt",)),
    ("checkpoint-absent", remove("src/final_model.pt"), ("final_model.pt",)),
    ("config-not-json", write("src/beeg_config.json", b"{"), ("beeg_config.json", "not valid JSON")),
    ("config-not-utf8", write("src/beeg_config.json", b'{"n_layer": "\xff"}'), ("beeg_config.json", "UTF-8")),
    ("config-list", write("src/beeg_config.json", b"[]"), ("beeg_config.json",)),
    ("config-folder", folder("src/beeg_config.json"), ("beeg_config.json",)),
    ("config-n-layer-string", edit_json("src/beeg_config.json", at("n_layer", "1")), ("beeg_config.json", "n_layer")),
    ("config-n-layer-float", edit_json("src/beeg_config.json", at("n_layer", 1.5)), ("beeg_config.json", "n_layer")),
    ("config-d-model-negative", edit_json("src/beeg_config.json", at("d_model", -32)), ("beeg_config.json", "d_model")),
    ("config-d-model-huge", edit_json("src/beeg_config.json", at("d_model", 2**62)), ("beeg_config.json", "d_model")),
    ("config-block-size-huge", edit_json("src/beeg_config.json", at("block_size", 2**70)), ("beeg_config.json", "block_size")),
    ("config-afrac-nan", edit_json("src/beeg_config.json", at("afrac", math.nan)), ("beeg_config.json", "afrac")),
    ("config-afrac-inf", edit_json("src/beeg_config.json", at("afrac", math.inf)), ("beeg_config.json", "afrac")),
    ("config-afrac-string", edit_json("src/beeg_config.json", at("afrac", "0.25")), ("beeg_config.json", "afrac")),
    ("config-bias-string", edit_json("src/beeg_config.json", at("bias", "yes")), ("beeg_config.json", "bias")),
    ("config-loctypes", edit_json("src/beeg_config.json", at("afrac_loctypes", ["attn_in"])), ("beeg_config.json", "afrac_loctypes")),
    ("config-vocab", edit_json("src/beeg_config.json", at("vocab_size", 1000)), ("vocab_size",)),
    ("config-n-head", edit_json("src/beeg_config.json", at("n_head", 3)), ("beeg_config.json", "n_head")),
    ("encoder-not-json", write("src/encoder.json", b"{"), ("encoder.json",)),
    ("encoder-list", write("src/encoder.json", b"[]"), ("encoder.json",)),
    ("encoder-not-utf8", write("src/encoder.json", b'{"\xff": 1}'), ("encoder.json",)),
    ("encoder-absent", remove("src/encoder.json"), ("encoder.json",)),
    ("encoder-ids", edit_json("src/encoder.json", lambda e: {k: 5 for k in e}), ("encoder.json",)),
    ("vocab-bpe-not-utf8", write("src/vocab.bpe", b"#version: 0.2\n\xff \xfe\n"), ("vocab.bpe",)),
    ("vocab-bpe-garbage", write("src/vocab.bpe", b"#version: 0.2\nonlyonepart\n"), ("vocab.bpe",)),
    ("vocab-bpe-folder", folder("src/vocab.bpe"), ("vocab.bpe",)),
    ("out-occupied", occupied("imported"), ("imported",)),
    ("out-is-file", blocker("imported"), ("imported",)),
):
    case(f"import-{name}", SOURCE, IMPORT, expect, b)
case("import-missing-source", SOURCE, ("import-openai", "{root}/nope", "{root}/imported"), ("nope",))
case("import-out-in-source", SOURCE, ("import-openai", "{root}/src", "{root}/src/run"), ("src/run", "overlaps"))
case("import-out-is-source", SOURCE, ("import-openai", "{root}/src", "{root}/src"), ("src",))
case("import-out-parent-file", SOURCE, ("import-openai", "{root}/src", "{root}/f/imported"), ("f",), blocker("f"))
case("import-tokenizer-missing", SOURCE, IMPORT + ("--tokenizer", "{root}/nope"), ("nope",))

# --- 5. the other commands' options
for name, argv, expect, b in (
    ("corpus-mb-nan", ("corpus", "stats", "--config", "tiny", "--mb", "nan"), ("--mb",), None),
    ("corpus-mb-inf", ("corpus", "stats", "--config", "tiny", "--mb", "inf"), ("--mb",), None),
    ("corpus-mb-zero", ("corpus", "stats", "--config", "tiny", "--mb", "0"), ("--mb",), None),
    ("corpus-set", ("corpus", "stats", "--config", "tiny", "--set", "data.tinypython=nan"), ("data.tinypython",), None),
    ("corpus-config", ("corpus", "stats", "--config", "{root}/nope.toml"), ("nope.toml",), None),
    ("serve-missing", ("serve", "{root}/nope"), ("nope",), None),
    ("serve-file", ("serve", "{root}/f"), ("f",), blocker("f")),
    ("serve-port-high", ("serve", "{root}", "--port", "70000"), ("--port",), None),
    ("serve-port-negative", ("serve", "{root}", "--port", "-1"), ("--port",), None),
):
    case(name, NONE, argv, expect, b)


# ----------------------------------------------------------------------------- the check


def tree_hash(root: Path) -> str:
    """sha256 over every path under root (folders, files and links, by kind) and every file's bytes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        kind = "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
        h.update(f"{kind} {p.relative_to(root).as_posix()}\n".encode())
        if kind == "file":
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def error_line(output: str) -> str:
    """The one error line of a refused command (click's usage lines before it are allowed)."""
    lines = [line for line in output.splitlines() if line.strip()]
    usage = [line for line in lines if line.startswith(("Usage: ", "Try '"))]
    rest = [line for line in lines if line not in usage]
    assert len(rest) == 1 and rest[0].startswith("Error: "), f"not one error line:\n{output}"
    return rest[0]


@pytest.mark.parametrize("name", CASES)
def test_broken_input_is_one_error_line_and_changes_nothing(name, bases, tmp_path, monkeypatch):
    c = CASES[name]
    root = tmp_path / "case"
    root.mkdir()
    if c.base != NONE:
        shutil.copytree(bases[c.base], root, dirs_exist_ok=True)
    if c.breaks is not None:
        c.breaks(root)
    monkeypatch.chdir(root)  # a default output (runs/<name>, site) would land here, and be seen
    before = tree_hash(root)
    result = CliRunner().invoke(main, [a.replace("{root}", str(root)) for a in c.argv])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(result.exception)))
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    line = error_line(result.output)
    missing = [e for e in c.expect if e.replace("{root}", str(root)) not in line]
    assert not missing, f"{missing} not in {line!r}"
    assert tree_hash(root) == before, "the command changed files"


def test_the_cases_start_from_valid_inputs(bases, tmp_path, monkeypatch):
    """Without a break, the cheap commands succeed on the same folders (so each case fails for its break)."""
    root = tmp_path / "case"
    for base, argv in ((KEPT, SNAPSHOT), (SOURCE, IMPORT)):
        shutil.copytree(bases[base], root, dirs_exist_ok=True)
        result = CliRunner().invoke(main, [a.replace("{root}", str(root)) for a in argv], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert (root / "snap" / "model.safetensors").is_file() and (root / "imported" / "model.safetensors").is_file()
