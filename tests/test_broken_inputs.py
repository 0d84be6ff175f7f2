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
    from bench.paper_scale_models import Shape, write_checkpoint  # bench/ at the repository root

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


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the cases' tensors are tiny, and on a busy machine a thread pool's start dominates."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- ways to break a file


Break = Callable[[Path], None]  # changes the copied input folder


def write(rel: str, data: bytes) -> Break:
    """Replace a file's bytes."""
    return lambda root: (root / rel).write_bytes(data)


def folder(rel: str) -> Break:
    """A folder where the file should be."""
    def go(root: Path) -> None:
        p = root / rel
        p.unlink(missing_ok=True)
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
    """Replace the circuit's first node id everywhere it appears, counts kept consistent."""
    old = circuit["nodes"][0]["id"]
    text = json.dumps(circuit).replace(f'"{old}"', f'"{new}"')
    circuit.clear()
    circuit.update(json.loads(text))
    by_location = circuit["counts"]["nodes_by_location"]
    old_loc, new_loc = old.rpartition(":")[0], new.rpartition(":")[0]
    by_location[old_loc] -= 1
    by_location[new_loc] = by_location.get(new_loc, 0) + 1
    if not by_location[old_loc]:
        del by_location[old_loc]


def qk_pair(head: int) -> Callable[[dict[str, Any]], None]:
    """A q-k pair of the given head between two new nodes, counts kept consistent."""
    def go(circuit: dict[str, Any]) -> None:
        ids = {n["id"] for n in circuit["nodes"]}
        i = next(i for i in range(32) if f"0.attn.q:{i}" not in ids and f"0.attn.k:{i}" not in ids)
        for loc in ("0.attn.q", "0.attn.k"):
            add_node(circuit, {"id": f"{loc}:{i}", "tau": 0.5, "mean": 0.0, "ablation_delta": 0.0})
            by_location = circuit["counts"]["nodes_by_location"]
            by_location[loc] = by_location.get(loc, 0) + 1
        circuit["qk_pairs"].append({"q": f"0.attn.q:{i}", "k": f"0.attn.k:{i}", "head": head})
        circuit["counts"]["qk_pairs"] += 1
    return go


def add_node(circuit: dict[str, Any], node: dict[str, Any]) -> None:
    """Append a node and count it."""
    circuit["nodes"].append(node)
    circuit["counts"]["nodes"] += 1


def dangling_edge(circuit: dict[str, Any]) -> None:
    """An edge whose end is not one of the circuit's nodes (an index past them)."""
    circuit["edges"][0][1] = len(circuit["nodes"])


def duplicate_node(circuit: dict[str, Any]) -> None:
    """The first node listed twice."""
    add_node(circuit, dict(circuit["nodes"][0]))


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
MATCH = ("snapshot", "{root}/r", "--match", "{root}/r", "--out", "{root}/snap")
RESUME = ("train", "--resume", "--out", "{root}/r", "-q", "--device", "cpu")
TRAIN = ("train", "--config", "tiny", "--out", "{root}/new", "-q", "--device", "cpu")
IMPORT = ("import-openai", "{root}/src", "{root}/imported")

CONFIG, CIRCUIT, TASK_TABLE, METRICS = "r/config.json", "r/circuits/lambda_func.json", "r/tasks.json", "r/metrics.jsonl"
MODEL, MEANS, TOKENIZER = "r/model.safetensors", "r/means.safetensors", "r/tokenizer.json"
SNAPSHOT_FILE, CHECKPOINT = "r/snapshots/step-000010.safetensors", "r/state/checkpoint.safetensors"
CASES: dict[str, Case] = {}
Breaks = list[tuple[str, tuple[str, ...], Break]]  # (case name suffix, text the error line names, the break)


def add(prefix: str, base: str, argv: tuple[str, ...], breaks: Breaks, only: tuple[str, ...] = ()) -> None:
    """One case per break (or per break named in `only`), all running the same command line."""
    for suffix, expect, b in breaks:
        if not only or suffix in only:
            case(f"{prefix}-{suffix}", base, argv, expect, b)


def case(name: str, base: str, argv: tuple[str, ...], expect: tuple[str, ...], breaks: Break | None = None) -> None:
    """Add a case (names are unique)."""
    assert name not in CASES, name
    CASES[name] = Case(base, argv, expect, breaks)


def json_breaks(rel: str) -> Breaks:
    """The ways any JSON file breaks: not JSON, not UTF-8, empty, a folder, nested too deep, not an object."""
    name = rel.rpartition("/")[2]
    return [
        ("not-json", (name, "not valid JSON"), write(rel, b'{"format_version": 1,')),
        ("not-utf8", (name, "UTF-8"), write(rel, b'{"name": "\xff\xfe"}')),
        ("empty", (name,), write(rel, b"")),
        ("folder", (name, "folder"), folder(rel)),
        ("nested", (name,), write(rel, b"[" * 100_000 + b"]" * 100_000)),
        ("list", (name, "format_version"), write(rel, b"[1, 2]")),
        ("null", (name, "format_version"), write(rel, b"null")),
    ]


def field_breaks(rel: str, changes: list[tuple[str, Callable[[Any], Any], str]]) -> Breaks:
    """One break per (suffix, change to the parsed JSON, field the error names)."""
    return [(suffix, (rel.rpartition("/")[2], field), edit_json(rel, change)) for suffix, change, field in changes]


# --- 1. JSON files: config.json (every command that reads a run), circuits/<task>.json (build; tasks shows each
# circuit's size), tasks.json (build; prune merges its rows into it)
CONFIG_BREAKS = json_breaks(CONFIG) + [("absent", ("config.json",), remove(CONFIG))] + field_breaks(CONFIG, [
    ("no-format", drop("format_version"), "format_version"),
    ("no-model", drop("model"), "config.json"),
    ("provenance-list", at("provenance", []), "field provenance"),
    ("format-2", at("format_version", 2), "format_version"),
    ("type", at("model.d_model", "32"), "model.d_model"),
    ("section-type", at("train", 3), "train"),
    ("nan", at("model.afrac", math.nan), "model.afrac"),
    ("inf", at("model.norm_eps", math.inf), "model.norm_eps"),
    ("negative", at("model.n_layer", -2), "model.n_layer"),
    ("zero-ctx", at("model.n_ctx", 0), "model.n_ctx"),
    ("name", at("name", "../../x"), "name"),
    ("unknown", at("model.d_modle", 3), "model.d_modle"),
    ("overflow", at("model.d_model", 2**70), "model.d_model"),
    ("huge", at("model.d_model", 2**62), "d_model"),
    ("locations", at("model.afrac_locations", "attn.q"), "model.afrac_locations"),
    ("layers", at("model.n_layer", 3), "does not match config.json"),
])
add("build-config", RUN, BUILD, CONFIG_BREAKS)
for cmd, base, argv in (("tasks", RUN, TASKS), ("prune", RUN, PRUNE), ("snapshot", KEPT, SNAPSHOT),
                        ("resume", RESUMABLE, RESUME)):
    add(f"{cmd}-config", base, argv, CONFIG_BREAKS, only=("not-json", "folder", "no-format", "nan", "layers"))

CIRCUIT_BREAKS = json_breaks(CIRCUIT) + field_breaks(CIRCUIT, [
    ("format-3", at("format_version", 3), "format_version"),
    ("no-task", drop("task"), "field task"),
    ("task-string", at("task", "lambda_func"), "field task"),
    ("model-list", at("model", []), "field model"),
    ("model-sha", at("model.sha256", "abc"), "field model.sha256"),
    ("other-model", at("model.sha256", "0" * 64), "different model"),
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
    ("target-zero", at("task.target_loss", 0), "field task.target_loss"),
    ("prune-target", at("prune.target_loss", 5), "field prune.target_loss"),
    ("pairs-zero", at("splits.train_pairs", 0), "field splits.train_pairs"),
    ("ablation-kind", at("ablation.kind", "zero"), "field ablation.kind"),
    ("means-tokens", at("ablation.tokens", 8192), "tokens"),
    ("nodes-object", at("nodes", {}), "field nodes"),
    ("duplicate-node", duplicate_node, "appears twice"),
    ("edge-short", at("edges.0", [0, 1]), "field edges[0]"),
    ("edge-dangling", dangling_edge, "field edges[0][1]"),
    ("node-malformed", at("nodes.0.id", "0.attn.z:1"), "field nodes[0].id"),
    ("node-leading-zero", at("nodes.0.id", "0.attn.q:01"), "field nodes[0].id"),
    ("node-layer", lambda c: rename_node(c, "7.attn.q:0"), "field nodes[0].id"),
    ("node-index", lambda c: rename_node(c, "0.attn.q:9999"), "field nodes[0].id"),
    ("unembed-token", at("unembed_edges.0.token", 10**6), "field unembed_edges[0].token"),
    ("qk-head", qk_pair(99), "field qk_pairs[0].head"),
    ("bool-meets", at("prune.meets_target", "yes"), "field prune.meets_target"),
])
add("build-circuit", RUN, BUILD, CIRCUIT_BREAKS)
add("tasks-circuit", RUN, TASKS, CIRCUIT_BREAKS, only=("not-json", "folder", "no-task", "node-layer", "edge-dangling"))
case("build-circuits-file", RUN, BUILD, ("circuits", "folder"),
     both(lambda root: shutil.rmtree(root / "r/circuits"), blocker("r/circuits")))

TABLE_BREAKS = json_breaks(TASK_TABLE) + field_breaks(TASK_TABLE, [
    ("format-3", at("format_version", 3), "format_version"),
    ("no-sha", drop("model_sha256"), "field model_sha256"),
    ("other-model", at("model_sha256", "0" * 64), "model_sha256"),
    ("tasks-list", at("tasks", []), "field tasks"),
    ("loss-string", at("tasks.lambda_func.loss", "0.4"), "field tasks.lambda_func.loss"),
    ("loss-nan", at("tasks.lambda_func.loss", math.nan), "field tasks.lambda_func.loss"),
    ("loss-negative", at("tasks.lambda_func.loss", -1), "field tasks.lambda_func.loss"),
    ("accuracy", at("tasks.var_swap.accuracy", 2), "field tasks.var_swap.accuracy"),
    ("target-chance", at("tasks.var_swap.target_loss", math.log(2)), "field tasks.var_swap.target_loss"),
    ("target-inf", at("tasks.var_swap.target_loss", math.inf), "field tasks.var_swap.target_loss"),
    ("learned", at("tasks.for_while.learned", True), "field tasks.for_while.learned"),
    ("no-learned", drop("tasks.var_swap.learned"), "field tasks.var_swap.learned"),
])
add("build-tasks", RUN, BUILD, TABLE_BREAKS)
add("prune-tasks", RUN, PRUNE, TABLE_BREAKS, only=("not-json", "folder", "list", "format-3", "loss-nan", "learned"))

# --- 2. metrics.jsonl: for build, snapshot (which keeps its lines up to the step, or matches a validation loss) and
# train --resume (which drops the lines past its checkpoint)
METRICS_BREAKS: Breaks = [
    ("not-utf8", ("metrics.jsonl", "UTF-8"), write(METRICS, b'{"step": 5, "loss": \xff}\n')),
    ("not-json", ("metrics.jsonl:2", "not valid JSON"), edit_lines(METRICS, lambda ls: [ls[0], "{"] + ls[1:])),
    ("list", ("metrics.jsonl:1", "(top level)"), edit_lines(METRICS, lambda ls: ["[]"] + ls)),
    ("loss-string", ("metrics.jsonl:1", "field loss"), edit_lines(METRICS, metrics_row(0, "loss", '"7.4"'))),
    ("loss-nan", ("metrics.jsonl:1", "field loss"), edit_lines(METRICS, metrics_row(0, "loss", "NaN"))),
    ("val-inf", ("metrics.jsonl:2", "field val_loss"), edit_lines(METRICS, metrics_row(1, "val_loss", "Infinity"))),
    ("step-negative", ("metrics.jsonl:1", "field step"), edit_lines(METRICS, metrics_row(0, "step", "-5"))),
    ("step-order", ("metrics.jsonl:2", "field step"), edit_lines(METRICS, lambda ls: [ls[1], ls[0]] + ls[2:])),
    ("step-null", ("metrics.jsonl:1", "field step"),
     edit_lines(METRICS, lambda ls: [json.dumps({**json.loads(ls[0]), "step": None})] + ls[1:])),
    ("folder", ("metrics.jsonl", "folder"), folder(METRICS)),
]
add("build-metrics", RUN, BUILD, METRICS_BREAKS)
add("snapshot-metrics", KEPT, SNAPSHOT, METRICS_BREAKS,
    only=("not-utf8", "not-json", "loss-nan", "step-order", "folder"))
add("match-metrics", KEPT, MATCH, METRICS_BREAKS, only=("not-json", "val-inf"))
add("resume-metrics", RESUMABLE, RESUME, METRICS_BREAKS, only=("not-utf8", "loss-string", "step-order", "folder"))

# --- 3. safetensors files: model.safetensors (build, tasks, prune), means.safetensors (build), the kept weights
# (snapshot), state/checkpoint.safetensors (train --resume)
def tensor_file_breaks(rel: str) -> Breaks:
    """The ways any safetensors file breaks: truncated, empty, random bytes, a header only, absent, a folder."""
    name = rel.rpartition("/")[2]
    return [("truncated", (name,), truncate(rel)), ("zero", (name,), write(rel, b"")),
            ("random", (name,), random_bytes(rel)), ("header-only", (name,), truncate(rel, 0.01)),
            ("absent", (name,), remove(rel)), ("folder", (name, "folder"), folder(rel))]


MODEL_BREAKS = tensor_file_breaks(MODEL) + [
    ("shape", ("model.safetensors", "lm_head.weight"), edit_tensors(MODEL, reshape("lm_head.weight"))),
    ("missing", ("model.safetensors", "ln_f.weight"), edit_tensors(MODEL, lambda t: t.pop("ln_f.weight"))),
    ("extra", ("model.safetensors", "bogus"), edit_tensors(MODEL, lambda t: t.update(bogus=torch.zeros(2)))),
    ("dtype", ("model.safetensors", "ln_f.weight"),
     edit_tensors(MODEL, lambda t: t.update({"ln_f.weight": t["ln_f.weight"].to(torch.int64)}))),
    ("nan", ("model.safetensors", "blocks.1.mlp.c_proj.weight"),
     edit_tensors(MODEL, nan_in("blocks.1.mlp.c_proj.weight"))),
]
add("build-model", RUN, BUILD, MODEL_BREAKS)
add("tasks-model", RUN, TASKS, MODEL_BREAKS, only=("truncated", "shape", "nan"))
add("prune-model", RUN, PRUNE, MODEL_BREAKS, only=("random", "missing", "folder"))
add("build-means", RUN, BUILD, tensor_file_breaks(MEANS) + [
    ("nan", ("means.safetensors", "0.mlp.post_act"), edit_tensors(MEANS, nan_in("0.mlp.post_act"))),
    ("inf", ("means.safetensors", "final_resid"),
     edit_tensors(MEANS, lambda t: t.update(final_resid=t["final_resid"] + math.inf))),
    ("shape", ("means.safetensors", "0.attn.v"), edit_tensors(MEANS, reshape("0.attn.v"))),
    ("missing", ("means.safetensors", "1.attn.k"), edit_tensors(MEANS, lambda t: t.pop("1.attn.k"))),
    ("other-model", ("means.safetensors", "different model"),
     lambda root: save_tensors(root / MEANS, load_tensors(root / MEANS), {"model_sha256": "0" * 64, "tokens": "4096"})),
    ("no-tokens", ("means.safetensors", "tokens"),
     lambda root: save_tensors(root / MEANS, load_tensors(root / MEANS),
                               {"model_sha256": hashlib.sha256((root / MODEL).read_bytes()).hexdigest()})),
])
add("snapshot-file", KEPT, SNAPSHOT, [b for b in tensor_file_breaks(SNAPSHOT_FILE) if b[0] not in ("absent", "folder")]
    + [
    ("shape", ("step-000010.safetensors", "wte.weight"), edit_tensors(SNAPSHOT_FILE, reshape("wte.weight"))),
    ("missing", ("step-000010.safetensors", "blocks.1.mlp.c_fc.weight"),
     edit_tensors(SNAPSHOT_FILE, lambda t: t.pop("blocks.1.mlp.c_fc.weight"))),
    ("nan", ("step-000010.safetensors", "blocks.0.attn.c_attn.weight"),
     edit_tensors(SNAPSHOT_FILE, nan_in("blocks.0.attn.c_attn.weight"))),
])
add("resume-checkpoint", RESUMABLE, RESUME, tensor_file_breaks(CHECKPOINT) + [
    ("shape", ("checkpoint.safetensors", "model.wte.weight"), edit_tensors(CHECKPOINT, reshape("model.wte.weight"))),
    ("no-moment", ("checkpoint.safetensors", "exp_avg.wte.weight"),
     edit_tensors(CHECKPOINT, lambda t: t.pop("exp_avg.wte.weight"))),
    ("no-step", ("checkpoint.safetensors", "train_step"), edit_tensors(CHECKPOINT, lambda t: t.pop("train_step"))),
    ("step-past-end", ("checkpoint.safetensors", "train_step"),
     edit_tensors(CHECKPOINT, lambda t: t.update(train_step=torch.tensor([99])))),
    ("nan", ("checkpoint.safetensors", "model.lm_head.weight"),
     edit_tensors(CHECKPOINT, nan_in("model.lm_head.weight"))),
])

# --- 4. tokenizer.json: broken, or not the run's (for build, tasks, prune, snapshot and train --resume)
TOKENIZER_BREAKS: Breaks = [
    ("not-json", ("tokenizer.json",), write(TOKENIZER, b'{"model": ')),
    ("empty", ("tokenizer.json",), write(TOKENIZER, b"")),
    ("not-utf8", ("tokenizer.json",), write(TOKENIZER, b'{"\xff": 1}')),
    ("not-tokenizer", ("tokenizer.json",), write(TOKENIZER, b'{"a": 1}')),
    ("folder", ("tokenizer.json",), folder(TOKENIZER)),
    ("absent", ("tokenizer.json",), remove(TOKENIZER)),
    ("no-eot", ("tokenizer.json", "<|endoftext|>"), edit_json(TOKENIZER, without_eot)),
    ("too-many", ("tokenizer.json", "vocab_size"), edit_json(TOKENIZER, extra_tokens)),
    ("other", ("tokenizer.json", "tokenizer_sha256"), edit_json(TOKENIZER, other_merges)),
]
add("build-tokenizer", RUN, BUILD, TOKENIZER_BREAKS)
for cmd, base, argv in (("tasks", RUN, TASKS), ("prune", RUN, PRUNE), ("snapshot", KEPT, SNAPSHOT)):
    add(f"{cmd}-tokenizer", base, argv, TOKENIZER_BREAKS, only=("not-json", "too-many", "other"))
add("resume-tokenizer", RESUMABLE, RESUME, TOKENIZER_BREAKS, only=("not-json", "folder", "other"))

# --- 5. options and paths
for name, argv, expect, b in (
    ("missing-run", ("build", "-q", "{root}/nope", "-o", "{root}/site"), ("nope", "does not exist"), None),
    ("run-is-file", ("build", "-q", "{root}/f", "-o", "{root}/site"), ("f",), blocker("f")),
    ("duplicate-run", ("build", "-q", "{root}/r", "{root}/r", "-o", "{root}/site"), ("r",), None),
    ("out-is-run", BUILD[:-1] + ("{root}/r",), ("-o", "overlaps"), None),
    ("out-in-run", BUILD[:-1] + ("{root}/r/site",), ("-o", "overlaps"), None),
    ("out-holds-run", BUILD[:-1] + ("{root}",), ("-o", "overlaps"), None),
    ("out-in-circuits", BUILD[:-1] + ("{root}/r/circuits",), ("-o", "overlaps"), None),
    ("out-is-file", BUILD, ("site", "is a file"), blocker("site")),
    ("out-parent-file", BUILD[:-1] + ("{root}/f/site",), ("f/site", "-o"), blocker("f")),
    ("out-grandparent-file", BUILD[:-1] + ("{root}/f/a/b/site",), ("f/a/b/site", "-o"), blocker("f")),
    ("out-not-site", BUILD, ("site", "not a circexport site"), occupied("site")),
    ("sample-tokens-low", BUILD[:5] + ("--sample-tokens", "10") + BUILD[7:], ("--sample-tokens",), None),
    ("sample-tokens-huge", BUILD[:5] + ("--sample-tokens", str(10**30)) + BUILD[7:], ("--sample-tokens",), None),
    ("sample-tokens-word", BUILD[:5] + ("--sample-tokens", "many") + BUILD[7:], ("--sample-tokens",), None),
    ("examples-zero", BUILD + ("--examples", "0"), ("--examples",), None),
    ("examples-high", BUILD + ("--examples", "65"), ("--examples",), None),
    ("live-budget-zero", BUILD + ("--live-budget", "0"), ("--live-budget",), None),
    ("jobs-negative", BUILD + ("-j", "-1"), ("-j",), None),
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
for value in ("0.7", "inf", "nan", "0"):
    case(f"prune-target-loss-{value}", RUN, PRUNE[:-2] + ("--target-loss", value, "{root}/r"), ("--target-loss",))
for name, argv, expect, b in (
    ("missing-run", ("prune", "-q", "{root}/nope"), ("nope",), None),
    ("run-is-file", ("prune", "-q", "{root}/f"), ("f",), blocker("f")),
    ("unknown-task", PRUNE + ("--task", "no_such_task"), ("no_such_task",), None),
    ("jobs-zero", PRUNE + ("--jobs", "0"), ("--jobs",), None),
    ("mean-tokens-zero", PRUNE[:4] + ("--mean-tokens", "0") + PRUNE[6:], ("--mean-tokens",), None),
    ("mean-tokens-huge", PRUNE[:4] + ("--mean-tokens", str(10**30)) + PRUNE[6:], ("--mean-tokens",), None),
    ("mean-tokens-replace-circuits-means", PRUNE[:4] + ("--mean-tokens", "2048") + PRUNE[6:],
     ("--mean-tokens 2048", "means.safetensors", "circuits", "--mean-tokens 4096"), None),
):
    case(f"prune-option-{name}", RUN, argv, expect, b)
case("tasks-option-missing-run", NONE, ("tasks", "-q", "{root}/nope"), ("nope",))
for name, sets, expect in (
    ("lr-inf", ("train.lr=inf",), "train.lr"), ("lr-nan", ("train.lr=nan",), "train.lr"),
    ("lr-zero", ("train.lr=0",), "train.lr"), ("lr-negative", ("train.lr=-0.01",), "train.lr"),
    ("weight-decay-nan", ("train.weight_decay=nan",), "train.weight_decay"),
    ("weight-decay-negative", ("train.weight_decay=-1",), "train.weight_decay"),
    ("beta1-one", ("train.beta1=1",), "train.beta1"), ("beta2-high", ("train.beta2=1.5",), "train.beta2"),
    ("beta2-nan", ("train.beta2=nan",), "train.beta2"), ("eps-zero", ("train.eps=0",), "train.eps"),
    ("eps-negative", ("train.eps=-1e-8",), "train.eps"), ("eps-inf", ("train.eps=inf",), "train.eps"),
    ("seed-overflow", ("train.seed=18446744073709551616",), "train.seed"),
    ("seed-negative", ("train.seed=-1",), "train.seed"),
    ("steps-negative", ("train.steps=-5",), "train.steps"), ("steps-zero", ("train.steps=0",), "train.steps"),
    ("steps-float", ("train.steps=1e3",), "train.steps"), ("steps-word", ("train.steps=many",), "train.steps"),
    ("steps-overflow", ("train.steps=99999999999999999999999",), "train.steps"),
    ("batch-zero", ("train.batch_size=0",), "train.batch_size"),
    ("micro-batch", ("train.micro_batch=3",), "train.micro_batch"),
    ("log-every", ("train.log_every=0",), "train.log_every"),
    ("snapshot-every", ("train.snapshot_every=-1",), "train.snapshot_every"),
    ("warmup", ("train.warmup_frac=2",), "train.warmup_frac"), ("bf16", ("train.bf16=yes",), "train.bf16"),
    ("afrac-zero", ("model.afrac=0",), "model.afrac"), ("afrac-nan", ("model.afrac=nan",), "model.afrac"),
    ("norm-eps-inf", ("model.norm_eps=inf",), "model.norm_eps"),
    ("norm-eps-zero", ("model.norm_eps=0",), "model.norm_eps"),
    ("d-model-odd", ("model.d_model=33",), "model.d_model"), ("n-layer-zero", ("model.n_layer=0",), "model.n_layer"),
    ("n-ctx-one", ("model.n_ctx=1",), "model.n_ctx"), ("vocab", ("model.vocab_size=100",), "vocab_size"),
    ("d-model-huge", ("model.d_model=1099511627776",), "model.d_model"),
    ("locations", ("model.afrac_locations=['x']",), "model.afrac_locations"),
    ("l0-zero", ("sparsity.l0=0",), "sparsity.l0"),
    ("anneal", ("sparsity.anneal_start=0.9", "sparsity.anneal_end=0.1"), "sparsity.anneal_start"),
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
    case(f"train-set-{name}", NONE, TRAIN + sum((("--set", s) for s in sets), ()), (expect,))
TOML = ("train", "--config", "{root}/c.toml", "--out", "{root}/new", "-q")
for name, argv, expect, b in (
    ("config-unknown", ("train", "--config", "no-such-config", "--out", "{root}/new"), ("no-such-config",), None),
    ("config-missing-file", TOML, ("c.toml",), None),
    ("config-folder", TOML, ("c.toml", "folder"), folder("c.toml")),
    ("config-not-toml", TOML, ("c.toml", "TOML"), write("c.toml", b"[model\nn_layer = 2")),
    ("config-not-utf8", TOML, ("c.toml", "UTF-8"), write("c.toml", b'name = "\xff"\n')),
    ("config-nan", TOML, ("c.toml", "train.lr"), write("c.toml", b"[train]\nlr = nan\n")),
    ("config-section", TOML, ("c.toml", "model"), write("c.toml", b"model = 3\n")),
    ("tokenizer-broken", TRAIN + ("--set", "data.tokenizer='{root}/t.json'"), ("t.json",), write("t.json", b"{")),
    ("tokenizer-folder", TRAIN + ("--set", "data.tokenizer='{root}/t.json'"), ("t.json",), folder("t.json")),
    ("out-is-file", TRAIN[:4] + ("{root}/f",) + TRAIN[5:], ("--out", "f"), blocker("f")),
    ("out-parent-file", TRAIN[:4] + ("{root}/f/new",) + TRAIN[5:], ("--out", "f"), blocker("f")),
    ("out-occupied", TRAIN, ("--out", "new"), occupied("new")),
    ("no-config", ("train", "--out", "{root}/new"), ("--config",), None),
    ("resume-no-out", ("train", "--resume"), ("--out",), None),
):
    case(f"train-{name}", NONE, argv, expect, b)
case("train-tokenizer-size", RESUMABLE, TRAIN + ("--set", "data.tokenizer='{root}/r/tokenizer.json'", "--set",
                                                 "model.vocab_size=4096"), ("vocab_size",))
case("train-out-is-run", RESUMABLE, TRAIN[:4] + ("{root}/r",) + TRAIN[5:], ("--out", "r"))
case("resume-other-config", RESUMABLE, RESUME[:1] + ("--config", "tiny", "--set", "train.steps=40") + RESUME[1:],
     ("--resume", "train.steps"))
case("resume-missing-run", NONE, RESUME, ("r", "config.json"))
case("resume-finished", RUN, RESUME, ("model.safetensors", "nothing to resume"))
case("resume-no-checkpoint", RESUMABLE, RESUME, ("checkpoint.safetensors",), lambda root: shutil.rmtree(root / "r/state"))
case("resume-set", RESUMABLE, RESUME + ("--set", "train.lr=inf"), ("--set",))

# --- 6. snapshot: the step, the paths (the kept weights themselves are class 3 above)
for name, argv, expect, b in (
    ("step-absent", SNAPSHOT[:3] + ("15",) + SNAPSHOT[4:], ("step-000015.safetensors", "15"), None),
    ("step-zero", SNAPSHOT[:3] + ("0",) + SNAPSHOT[4:], ("--step",), None),
    ("step-huge", SNAPSHOT[:3] + (str(10**30),) + SNAPSHOT[4:], ("no snapshot",), None),
    ("step-and-match", SNAPSHOT + ("--match", "{root}/r"), ("--step", "--match"), None),
    ("neither", SNAPSHOT[:2] + SNAPSHOT[4:], ("--step", "--match"), None),
    ("missing-run", ("snapshot", "{root}/nope", "--step", "10", "--out", "{root}/snap"), ("nope",), None),
    ("match-missing-run", MATCH[:3] + ("{root}/nope",) + MATCH[4:], ("nope",), None),
    ("match-no-val", MATCH, ("metrics.jsonl", "validation"), edit_lines(METRICS, lambda ls: [ls[0]])),
    ("out-is-run", SNAPSHOT[:-1] + ("{root}/r",), ("--out",), None),
    ("out-in-run", SNAPSHOT[:-1] + ("{root}/r/snap",), ("--out", "overlaps"), None),
    ("out-in-snapshots", SNAPSHOT[:-1] + ("{root}/r/snapshots/new",), ("--out", "overlaps"), None),
    ("out-holds-run", SNAPSHOT[:-1] + ("{root}",), ("--out",), None),
    ("out-is-file", SNAPSHOT, ("--out", "snap"), blocker("snap")),
    ("out-parent-file", SNAPSHOT[:-1] + ("{root}/f/snap",), ("--out", "f"), blocker("f")),
    ("out-occupied", SNAPSHOT, ("--out", "snap"), occupied("snap")),
    ("config-missing", SNAPSHOT, ("config.json",), remove(CONFIG)),
    ("metrics-missing", SNAPSHOT, ("metrics.jsonl",), remove(METRICS)),
):
    case(f"snapshot-{name}", KEPT, argv, expect, b)

# --- 6. import-openai: their checkpoint, config and tokenizer files, and the output path
def nan_checkpoint(rel: str) -> Break:
    """Put a NaN into the first floating tensor of a PyTorch checkpoint."""
    def apply(root: Path) -> None:
        state = torch.load(root / rel, weights_only=True)
        name = next(k for k, v in state.items() if v.is_floating_point())
        state[name] = state[name].clone().view(-1).index_fill(0, torch.tensor([0]), math.nan).view_as(state[name])
        torch.save(state, root / rel)
    return apply


BEEG = "src/beeg_config.json"
for name, b, expect in (
    ("checkpoint-truncated", truncate("src/final_model.pt"), ("final_model.pt",)),
    ("checkpoint-zero", write("src/final_model.pt", b""), ("final_model.pt",)),
    ("checkpoint-random", random_bytes("src/final_model.pt"), ("final_model.pt",)),
    ("checkpoint-folder", folder("src/final_model.pt"), ("final_model.pt",)),
    ("checkpoint-absent", remove("src/final_model.pt"), ("final_model.pt",)),
    ("checkpoint-nan", nan_checkpoint("src/final_model.pt"), ("final_model.pt", "not finite")),
    ("config-not-json", write(BEEG, b"{"), ("beeg_config.json", "not valid JSON")),
    ("config-not-utf8", write(BEEG, b'{"n_layer": "\xff"}'), ("beeg_config.json", "UTF-8")),
    ("config-list", write(BEEG, b"[]"), ("beeg_config.json",)),
    ("config-folder", folder(BEEG), ("beeg_config.json",)),
    ("config-n-layer-string", edit_json(BEEG, at("n_layer", "1")), ("beeg_config.json", "n_layer")),
    ("config-n-layer-float", edit_json(BEEG, at("n_layer", 1.5)), ("beeg_config.json", "n_layer")),
    ("config-d-model-negative", edit_json(BEEG, at("d_model", -32)), ("beeg_config.json", "d_model")),
    ("config-d-model-huge", edit_json(BEEG, at("d_model", 2**62)), ("beeg_config.json", "d_model")),
    ("config-block-size-huge", edit_json(BEEG, at("block_size", 2**70)), ("beeg_config.json", "block_size")),
    ("config-afrac-nan", edit_json(BEEG, at("afrac", math.nan)), ("beeg_config.json", "afrac")),
    ("config-afrac-inf", edit_json(BEEG, at("afrac", math.inf)), ("beeg_config.json", "afrac")),
    ("config-afrac-string", edit_json(BEEG, at("afrac", "0.25")), ("beeg_config.json", "afrac")),
    ("config-bias-string", edit_json(BEEG, at("bias", "yes")), ("beeg_config.json", "bias")),
    ("config-loctypes", edit_json(BEEG, at("afrac_loctypes", ["attn_in"])), ("beeg_config.json", "afrac_loctypes")),
    ("config-vocab", edit_json(BEEG, at("vocab_size", 1000)), ("beeg_config.json",)),
    ("config-n-head", edit_json(BEEG, at("n_head", 3)), ("beeg_config.json", "n_head")),
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

# --- 5. read-only destinations: /sys refuses new files to everyone, root included (permission bits do not bind root)
READ_ONLY = "/sys/circexport-test"
case("train-out-read-only", NONE, TRAIN[:4] + (READ_ONLY,) + TRAIN[5:], ("--out", READ_ONLY, "cannot write in /sys"))
case("snapshot-out-read-only", KEPT, SNAPSHOT[:-1] + (READ_ONLY,), ("--out", READ_ONLY, "cannot write in /sys"))
case("import-out-read-only", SOURCE, ("import-openai", "{root}/src", READ_ONLY), ("OUT", READ_ONLY, "cannot write in /sys"))
case("build-out-read-only", RUN, BUILD[:-1] + (READ_ONLY,), (READ_ONLY, "cannot write the site"))

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


def test_the_cases_start_from_valid_inputs(bases, tmp_path):
    """Without a break, the cheap commands succeed on the same folders (so each case fails for its break), and a
    snapshot copies exactly the kept weights, the tokenizer and the log up to its step."""
    root = tmp_path / "case"
    for base, argv in ((KEPT, SNAPSHOT), (SOURCE, IMPORT)):
        shutil.copytree(bases[base], root, dirs_exist_ok=True)
        result = CliRunner().invoke(main, [a.replace("{root}", str(root)) for a in argv], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    snap, run = root / "snap", root / "r"
    assert (snap / "model.safetensors").read_bytes() == (run / SNAPSHOT_FILE.removeprefix("r/")).read_bytes()
    assert (snap / "tokenizer.json").read_bytes() == (run / "tokenizer.json").read_bytes()
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    assert (snap / "metrics.jsonl").read_text() == "".join(line for line in lines if json.loads(line)["step"] <= 10)
    assert (root / "imported" / "model.safetensors").is_file()
