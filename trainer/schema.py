"""Every file format circexport writes and reads, in one place: a run directory's file names, node locations and node
ids (and the forms derived from them), and the JSON records (circuit file, task table, training log line), each
checked whole on read: types, ranges, finite numbers and cross-references, with one error naming the file and field.

docs/formats.md describes these formats for people; a test checks it against this module.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import UserError

# ----------------------------------------------------------------------------- run directory

CONFIG = "config.json"  # the run's RunConfig, with provenance (JSON, format_version)
MODEL = "model.safetensors"  # final weights
TOKENIZER = "tokenizer.json"  # a copy of the tokenizer the run was trained with
METRICS = "metrics.jsonl"  # the training log: one METRICS_LINE per log step
STATE = "state"  # folder: the resumable checkpoint while training
CHECKPOINT = "checkpoint.safetensors"  # in STATE: weights, optimizer moments and the step
SNAPSHOTS = "snapshots"  # folder: weights every train.snapshot_every steps, step-000500.safetensors, ...
MEANS = "means.safetensors"  # mean activation per node location, over the mixture's tokens
TASKS_FILE = "tasks.json"  # TASK_TABLE: the unpruned model's loss per task
CIRCUITS = "circuits"  # folder: one CIRCUIT file per pruned task, <task>.json

# ----------------------------------------------------------------------------- nodes

# Node locations of one layer, in forward order (also the eight locations AbsTopK may sparsify).
LAYER_LOCATIONS = (
    "attn.act_in", "attn.q", "attn.k", "attn.v", "attn.resid_delta",
    "mlp.act_in", "mlp.post_act", "mlp.resid_delta",
)
FINAL_LOCATION = "final_resid"  # the residual stream after the last layer, before the final norm
NODE_ID = re.compile(r"(?:(0|[1-9][0-9]*)\.(" + "|".join(map(re.escape, LAYER_LOCATIONS)) + ")|" + FINAL_LOCATION
                     + r"):(0|[1-9][0-9]*)")


def location(layer: int, name: str) -> str:
    """The location `name` (one of LAYER_LOCATIONS) of a layer: `3.attn.v`."""
    return f"{layer}.{name}"


def node_id(location: str, index: int) -> str:
    """The one node id string: `<location>:<index>`, e.g. `3.attn.v:17`, `final_resid:5`."""
    return f"{location}:{index}"


def parse_node_id(node: str) -> tuple[str, int]:
    """Split `3.attn.v:17` into ("3.attn.v", 17); ValueError when it is not a node id."""
    if not isinstance(node, str) or not NODE_ID.fullmatch(node):
        raise ValueError(f"{node!r} is not a node id (<layer>.<attn|mlp>.<name>:<index> or final_resid:<index>)")
    loc, _, index = node.rpartition(":")
    return loc, int(index)


@dataclass(frozen=True)
class NodePlace:
    """Where a node sits: its layer (None for final_resid), kind (`attn.v`, `final_resid`), channel and head."""

    layer: int | None
    kind: str
    index: int
    head: int | None  # q, k and v channels belong to a head of d_head channels; other nodes to none

    @property
    def location(self) -> str:
        """The node's location: `3.attn.v`, `final_resid`."""
        return self.kind if self.layer is None else location(self.layer, self.kind)


def location_layer(location: str) -> int | None:
    """The layer of a node location (`3.attn.v`: 3); None for final_resid."""
    return None if location == FINAL_LOCATION else int(location.partition(".")[0])


def node_place(node: str, d_head: int) -> NodePlace:
    """The layer, kind, channel and head of a node id."""
    loc, index = parse_node_id(node)
    layer = location_layer(loc)
    if layer is None:
        return NodePlace(None, loc, index, None)
    kind = loc.partition(".")[2]
    return NodePlace(layer, kind, index, index // d_head if kind in ("attn.q", "attn.k", "attn.v") else None)


def node_file(node: str) -> str:
    """A node id as a file stem (no ':' in file names): `3.attn.v:17` -> `3.attn.v.17`."""
    loc, i = parse_node_id(node)
    return f"{loc}.{i}"


def bibtex_key(model: str, task: str, node: str) -> str:
    """The BibTeX key of a node page: `cx:<model>:<task>:<node file stem>` with '.' as '-'."""
    return "cx:" + ":".join(s.replace(".", "-") for s in (model, task, node_file(node)))


# ----------------------------------------------------------------------------- checking JSON


class Bad(Exception):
    """A value that does not fit its spec: the field path and what was wrong (made a UserError by `check`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


Spec = Callable[[Any, str], Any]  # (value, field path) -> the value; raises Bad


def _kind(value: Any) -> str:
    """A JSON value's type, as a reader would name it."""
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def text(pattern: str | None = None) -> Spec:
    """A string (matching pattern when given)."""
    def spec(v: Any, f: str) -> str:
        if not isinstance(v, str):
            raise Bad(f, f"expected a string, found {_kind(v)}")
        if pattern is not None and not re.fullmatch(pattern, v):
            raise Bad(f, f"{v[:40]!r} is not of the form {pattern}")
        return v
    return spec


def integer(lo: int | None = 0, hi: int | None = None) -> Spec:
    """A whole number in [lo, hi] (a float with no fraction is read as one)."""
    def spec(v: Any, f: str) -> int:
        if isinstance(v, float) and math.isfinite(v) and v == int(v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise Bad(f, f"expected a whole number, found {_kind(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Bad(f, f"{v} is out of range [{lo}, {'' if hi is None else hi}]")
        return v
    return spec


def number(lo: float | None = None, hi: float | None = None) -> Spec:
    """A finite number in [lo, hi]."""
    def spec(v: Any, f: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Bad(f, f"expected a number, found {_kind(v)}")
        if not math.isfinite(v):
            raise Bad(f, f"{v} is not a finite number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Bad(f, f"{v} is out of range [{'' if lo is None else lo}, {'' if hi is None else hi}]")
        return float(v)
    return spec


def between(lo: float, hi: float) -> Spec:
    """A finite number strictly between lo and hi."""
    finite = number()

    def spec(v: Any, f: str) -> float:
        v = finite(v, f)
        if not lo < v < hi:
            raise Bad(f, f"{v} is out of range ({lo}, {hi:.4g}), ends excluded")
        return v
    return spec


def boolean(v: Any, f: str) -> bool:
    """true or false."""
    if not isinstance(v, bool):
        raise Bad(f, f"expected true or false, found {_kind(v)}")
    return v


def exactly(value: Any) -> Spec:
    """One allowed value."""
    def spec(v: Any, f: str) -> Any:
        if v != value or type(v) is not type(value):
            raise Bad(f, f"expected {value!r}, found {v!r}"[:120])
        return v
    return spec


def row(*columns: Spec) -> Spec:
    """A list of exactly these values in this order: one row of a table."""
    def spec(v: Any, f: str) -> list:
        if not isinstance(v, list) or len(v) != len(columns):
            found = f"{len(v)} values" if isinstance(v, list) else _kind(v)
            raise Bad(f, f"expected a row of {len(columns)} values, found {found}")
        return [column(x, f"{f}[{i}]") for i, (column, x) in enumerate(zip(columns, v))]
    return spec


def items(inner: Spec) -> Spec:
    """A list of values of inner."""
    def spec(v: Any, f: str) -> list:
        if not isinstance(v, list):
            raise Bad(f, f"expected a list, found {_kind(v)}")
        return [inner(x, f"{f}[{i}]") for i, x in enumerate(v)]
    spec.inner = inner  # type: ignore[attr-defined]  # for field_paths
    return spec


def mapping(inner: Spec) -> Spec:
    """An object of any keys (JSON keys are strings) whose values are of inner."""
    def spec(v: Any, f: str) -> dict:
        if not isinstance(v, dict):
            raise Bad(f, f"expected an object, found {_kind(v)}")
        return {k: inner(x, f"{f}.{k}" if f else k) for k, x in v.items()}
    spec.values = inner  # type: ignore[attr-defined]  # for field_paths
    return spec


@dataclass(frozen=True)
class Opt:
    """A field that may be absent; read as None when it is."""

    spec: Spec


def record(fields: Mapping[str, Spec | Opt]) -> Spec:
    """An object with these fields (an Opt may be absent: None); other fields are kept as they are."""
    def spec(v: Any, f: str) -> dict:
        if not isinstance(v, dict):
            raise Bad(f or "(top level)", f"expected an object, found {_kind(v)}")
        out = dict(v)
        for name, field_spec in fields.items():
            path = f"{f}.{name}" if f else name
            if isinstance(field_spec, Opt):
                out[name] = None if v.get(name) is None else field_spec.spec(v[name], path)
            elif name not in v:
                raise Bad(path, "missing")
            else:
                out[name] = field_spec(v[name], path)
        return out
    spec.fields = fields  # type: ignore[attr-defined]  # for field_paths
    return spec


def field_paths(spec: Spec, prefix: str = "") -> list[str]:
    """Every field a record spec declares, as dotted paths (`nodes[].id`, `counts.nodes_by_location.*`)."""
    if isinstance(spec, Opt):
        spec = spec.spec
    if hasattr(spec, "fields"):
        out = []
        for name, inner in spec.fields.items():
            path = f"{prefix}.{name}" if prefix else name
            out += [path, *field_paths(inner, path)]
        return out
    if hasattr(spec, "inner"):
        return field_paths(spec.inner, f"{prefix}[]")
    if hasattr(spec, "values"):
        return [f"{prefix}.*", *field_paths(spec.values, f"{prefix}.*")]
    return []


def check(spec: Spec, value: Any, path: Path | str, fix: str) -> Any:
    """value read by spec, or a UserError naming the file, the field, what is wrong and the fix."""
    try:
        return spec(value, "")
    except Bad as e:
        raise UserError(f"{path}: field {e.field}: {e.problem}; {fix}") from None


def unique(values: list[str], field: str) -> None:
    """Raise Bad when a value repeats."""
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise Bad(f"{field}[{i}]", f"{v!r} appears twice")
        seen.add(v)


# ----------------------------------------------------------------------------- records

SHA256 = "[0-9a-f]{64}"
CHANCE_LOSS = math.log(2)  # a binary task's loss when both answers are equally likely
node = text(NODE_ID.pattern)
loss = number(0)
fraction = number(0, 1)
target_loss = between(0, CHANCE_LOSS)  # at chance a circuit that knows nothing meets it

CIRCUIT_FORMAT = 2  # 2: edges as rows [src, dst, weight] of node indices (a dense circuit's edges a third the size)
EDGE_OBJECTS = items(record({"src": node, "dst": node, "weight": number()}))  # format 1, and every reader's form
EDGE_ROWS = items(row(integer(0), integer(0), number()))  # format 2: [src, dst] index the circuit's nodes
CIRCUIT = record({
    "format_version": exactly(CIRCUIT_FORMAT),
    "model": record({"run": text(), "sha256": text(SHA256)}),
    "task": record({"name": text(), "description": text(), "target": text(), "alternative": text(),
                    "target_loss": target_loss}),
    "ablation": record({"kind": exactly("mean"), "tokens": integer(1), "tokens_used": Opt(integer(1)),
                        "mean_sem_max": Opt(number(0))}),
    "splits": record({"train_pairs": integer(1), "eval_pairs": integer(1), "test_pairs": integer(1)}),
    "metrics": record({
        "loss_full": loss, "acc_full": fraction, "loss_circuit": loss, "acc_circuit": fraction,
        "loss_inverse": loss, "loss_inverse_refit": Opt(loss), "inverse_refit_offset": Opt(number()),
        "loss_empty": loss, "loss_random_mean": loss, "loss_random_sd": loss,
        "loss_attribution_same_k": loss, "attribution_nodes_at_target": Opt(integer(0)),
        "attribution_edges_at_target": Opt(integer(0)), "loss_circuit_frozen_norm": loss}),
    "counts": record({"nodes": integer(0), "edges": integer(0), "unembed_edges": integer(0),
                      "resid_links": integer(0), "qk_pairs": integer(0), "nodes_by_location": mapping(integer(1))}),
    "nodes": items(record({"id": node, "tau": number(), "mean": number(), "ablation_delta": number()})),
    "edges": EDGE_ROWS,
    "unembed_edges": items(record({"src": node, "token": integer(0), "weight": number(), "text": Opt(text())})),
    "resid_links": items(record({"src": node, "dst": node})),
    "qk_pairs": items(record({"q": node, "k": node, "head": integer(0)})),
    "sweep": items(record({"k": integer(0), "loss": number()})),
    "prune": record({"seed": integer(0), "meets_target": boolean, "seconds": number(0),
                     "target_loss": target_loss}),
})
CIRCUIT_V1 = record({**CIRCUIT.fields, "format_version": exactly(1), "edges": EDGE_OBJECTS})  # type: ignore[attr-defined]


def _edges_by_id(rec: dict[str, Any], _: str) -> dict[str, Any]:
    """A circuit whose edge rows [src, dst, weight] are read as objects of node ids (format 1's form, every reader's)."""
    ids = [n["id"] for n in rec["nodes"]]
    edges = []
    for i, (src, dst, weight) in enumerate(rec["edges"]):
        for column, end in enumerate((src, dst)):
            if end >= len(ids):
                raise Bad(f"edges[{i}][{column}]", f"node index {end} is past the circuit's {len(ids)} nodes")
        edges.append({"src": ids[src], "dst": ids[dst], "weight": weight})
    return {**rec, "edges": edges}


def edge_rows(rec: dict[str, Any]) -> dict[str, Any]:
    """A circuit (edges as objects of node ids) with its edges as the rows [src, dst, weight] the file stores."""
    index = {n["id"]: i for i, n in enumerate(rec["nodes"])}
    return {**rec, "edges": [[index[e["src"]], index[e["dst"]], e["weight"]] for e in rec["edges"]]}


def _circuit_references(rec: dict[str, Any], _: str) -> dict[str, Any]:
    """Cross-references of a circuit: node ids unique, every edge end a node, counts that match the lists."""
    ids = [n["id"] for n in rec["nodes"]]
    unique(ids, "nodes")
    by_location = Counter(parse_node_id(i)[0] for i in ids)
    stated = rec["counts"]["nodes_by_location"]
    for loc in sorted(set(stated) | set(by_location)):
        if stated.get(loc) != by_location.get(loc):
            raise Bad(f"counts.nodes_by_location.{loc}", f"{stated.get(loc)}, but the file lists "
                      f"{by_location.get(loc, 0)} nodes there")
    known = set(ids)
    ends = {"edges": ("src", "dst"), "unembed_edges": ("src",), "resid_links": ("src", "dst"), "qk_pairs": ("q", "k")}
    for key, names in ends.items():
        for i, e in enumerate(rec[key]):
            for name in names:
                if e[name] not in known:
                    raise Bad(f"{key}[{i}].{name}", f"{e[name]!r} is not one of the circuit's nodes")
        if rec["counts"][key] != len(rec[key]):
            raise Bad(f"counts.{key}", f"{rec['counts'][key]}, but the file lists {len(rec[key])}")
    if rec["counts"]["nodes"] != len(ids):
        raise Bad("counts.nodes", f"{rec['counts']['nodes']}, but the file lists {len(ids)} nodes")
    return rec


def check_version(value: Any, path: Path | str, version: int, what: str, fix: str) -> None:
    """A UserError naming the file unless its JSON is an object of this format_version (checked before its fields:
    another version's fields mean other things)."""
    found = value.get("format_version") if isinstance(value, dict) else None
    if found != version:
        raise UserError(f"{path}: not {what} of format_version {version} (found {found!r}); {fix}")


def read_circuit_record(value: Any, path: Path | str) -> dict[str, Any]:
    """A circuit file's JSON, checked whole (fields, types, ranges, cross-references), its edges as objects of node
    ids; optional fields read None. Format 1 (the same fields, edges already objects) is read too."""
    fix = "re-run circexport prune to write it again"
    if isinstance(value, dict) and value.get("format_version") == 1:
        return check(lambda v, f: _circuit_references(CIRCUIT_V1(v, f), f), value, path, fix)
    check_version(value, path, CIRCUIT_FORMAT, "a circuit file", fix)
    return check(lambda v, f: _circuit_references(_edges_by_id(CIRCUIT(v, f), f), f), value, path, fix)


TASK_TABLE_FORMAT = 2
TASK_ROW = record({"loss": loss, "accuracy": fraction, "learned": boolean, "target_loss": target_loss})
TASK_TABLE = record({"format_version": exactly(TASK_TABLE_FORMAT), "model_sha256": text(SHA256),
                     "tasks": mapping(TASK_ROW)})


def read_task_table(value: Any, path: Path | str) -> dict[str, Any]:
    """tasks.json checked whole: per task, the unpruned model's loss and accuracy, and whether it is learned, i.e.
    its loss is at most the row's target_loss."""
    fix = "re-run circexport prune RUN to write it again"
    check_version(value, path, TASK_TABLE_FORMAT, "a task table", fix)
    table = check(TASK_TABLE, value, path, fix)
    for name, row in table["tasks"].items():
        if row["learned"] != (row["loss"] <= row["target_loss"]):
            raise UserError(f"{path}: field tasks.{name}.learned: {row['learned']} contradicts loss {row['loss']} "
                            f"and target_loss {row['target_loss']}; {fix}")
    return table


SITE_MANIFEST = "manifest.json"  # at the root of a built site
MANIFEST_FORMAT = 1
MANIFEST = record({
    "format_version": exactly(MANIFEST_FORMAT), "generator": exactly("circexport"),
    "files": mapping(record({"bytes": integer(0), "sha256": text(SHA256)})),
    "inputs": mapping(record({"model_sha256": text(SHA256), "circuits": mapping(text(SHA256))})),
    "vendored": items(text()),
})


def read_manifest(value: Any, path: Path | str) -> dict[str, Any]:
    """A site's manifest.json, checked whole: what a later build may replace (every file it lists)."""
    return check(MANIFEST, value, path, "this folder is not a site circexport built; choose another -o")


METRICS_LINE = record({"step": integer(0), "loss": number(), "lr": number(0), "seconds": number(0),
                       "tokens": integer(0), "l0": integer(0), "val_loss": Opt(number())})


def read_metrics_line(value: Any, path: Path | str, line: int) -> dict[str, Any]:
    """One line of metrics.jsonl, checked (its step, finite losses and learning rate)."""
    return check(METRICS_LINE, value, f"{path}:{line}", "fix or delete that line")
