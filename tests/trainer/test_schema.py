"""Tests of trainer/schema.py: node ids, the record specs (checked whole, one error naming the field), and that
docs/formats.md describes every field the specs declare."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest

from trainer.circuit import read_circuit, write_circuit
from trainer.errors import UserError
from trainer.fileio import read_json, rounded
from trainer.schema import (CIRCUIT, FINAL_LOCATION, LAYER_LOCATIONS, MANIFEST, METRICS_LINE, TASK_TABLE, NodePlace,
                            bibtex_key, edge_rows, field_paths, node_file, node_id, node_place, parse_node_id, read_circuit_record, read_metrics_line, read_task_table)

ROOT = Path(__file__).resolve().parents[2]
SHA = "ab" * 32


def test_node_ids_round_trip_and_malformed_ones_are_refused():
    for loc in [f"3.{name}" for name in LAYER_LOCATIONS] + [FINAL_LOCATION]:
        assert parse_node_id(node_id(loc, 17)) == (loc, 17)
    assert node_place("3.attn.v:17", 16) == NodePlace(3, "attn.v", 17, 1) and node_place("final_resid:5", 16).layer is None
    assert node_place("0.mlp.post_act:40", 16).head is None
    assert node_file("3.attn.v:17") == "3.attn.v.17" and bibtex_key("demo", "else_elif", "3.attn.v:17") == "cx:demo:else_elif:3-attn-v-17"
    for bad in ("3.attn.v", "3.attn.v:", "3.attn.v:01", "03.attn.v:1", "3.attn.x:1", "final_resid:-1", "a:0",
                " 3.attn.v:1", "3.attn.v:1 ", "final_resid.0:1", 17, None):
        with pytest.raises(ValueError, match="is not a node id"):
            parse_node_id(bad)


NODES = ["0.attn.q:1", "0.attn.act_in:2", "final_resid:3"]


def circuit() -> dict:
    """A small valid circuit file's JSON (format 2: edges as rows of node indices)."""
    nodes = NODES
    return {
        "format_version": 2, "model": {"run": "r", "sha256": SHA},
        "task": {"name": "t", "description": "d", "target": "a", "alternative": "b", "target_loss": 0.15},
        "ablation": {"kind": "mean", "tokens": 4096},
        "splits": {"train_pairs": 8, "eval_pairs": 8, "test_pairs": 8},
        "metrics": {"loss_full": 0.1, "acc_full": 0.9, "loss_circuit": 0.12, "acc_circuit": 0.9, "loss_inverse": 0.6,
                    "loss_empty": 0.69, "loss_random_mean": 0.68, "loss_random_sd": 0.01, "loss_attribution_same_k": 0.3,
                    "loss_circuit_frozen_norm": 0.2},
        "counts": {"nodes": 3, "edges": 1, "unembed_edges": 1, "resid_links": 0, "qk_pairs": 0,
                   "nodes_by_location": {"0.attn.q": 1, "0.attn.act_in": 1, "final_resid": 1}},
        "nodes": [{"id": n, "tau": 1.0, "mean": 0.0, "ablation_delta": 0.1} for n in nodes],
        "edges": [[1, 0, 0.5]],
        "unembed_edges": [{"src": nodes[2], "token": 7, "weight": 0.2}],
        "resid_links": [], "qk_pairs": [], "sweep": [{"k": 3, "loss": 0.12}],
        "prune": {"seed": 0, "meets_target": True, "seconds": 1.0, "target_loss": 0.15},
    }


def circuit_v1() -> dict:
    """The same circuit in format 1: edges as objects of node ids."""
    return {**circuit(), "format_version": 1, "edges": [{"src": NODES[1], "dst": NODES[0], "weight": 0.5}]}


def test_a_valid_circuit_reads_back_with_absent_optional_fields_as_none():
    rec = read_circuit_record(circuit(), "c.json")
    assert rec["metrics"]["loss_inverse_refit"] is None and rec["ablation"]["tokens_used"] is None
    assert rec["nodes"] == circuit()["nodes"]
    assert rec["edges"] == [{"src": "0.attn.act_in:2", "dst": "0.attn.q:1", "weight": 0.5}]  # rows read as objects


def test_a_format_1_circuit_reads_as_the_same_record():
    old, new = read_circuit_record(circuit_v1(), "c.json"), read_circuit_record(circuit(), "c.json")
    assert {**old, "format_version": 2} == new


def test_a_written_circuit_stores_one_edge_row_a_line_and_reads_back(tmp_path):
    rec = read_circuit_record(circuit(), "c.json")
    path = tmp_path / "c.json"
    write_circuit(path, rec)
    text = path.read_text()
    assert '"edges": [\n    [1, 0, 0.5]\n  ],' in text and '"format_version": 2' in text
    assert read_circuit(path, SHA) == rec
    write_circuit(path, read_circuit(path, SHA))
    assert path.read_text() == text  # byte for byte


def set_path(rec: dict, path: str, value) -> dict:
    """rec with the field at a dotted path (list indices as numbers) set; value DELETE removes it."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    obj = rec
    for k in keys[:-1]:
        obj = obj[k]
    if value is DELETE:
        del obj[keys[-1]]
    else:
        obj[keys[-1]] = value
    return rec


DELETE = object()


@pytest.mark.parametrize("path, value, field, problem", [
    ("task", "t", "task", "expected an object, found a string"),
    ("model", None, "model", "expected an object, found null"),
    ("model.sha256", "xyz", "model.sha256", "is not of the form"),
    ("edges.0", [1, 0], "edges[0]", "expected a row of 3 values, found 2 values"),
    ("edges.0", {"src": 1}, "edges[0]", "expected a row of 3 values, found an object"),
    ("edges.0.0", "0.attn.act_in:2", "edges[0][0]", "expected a whole number, found a string"),
    ("edges.0.1", 3, "edges[0][1]", "node index 3 is past the circuit's 3 nodes"),
    ("edges.0.2", math.nan, "edges[0][2]", "not a finite number"),
    ("nodes.2.id", "0.attn.q:1", "nodes[2]", "appears twice"),
    ("nodes.0.id", "0.attn.q:01", "nodes[0].id", "is not of the form"),
    ("metrics.loss_circuit", math.nan, "metrics.loss_circuit", "not a finite number"),
    ("metrics.loss_full", math.inf, "metrics.loss_full", "not a finite number"),
    ("metrics.acc_full", 1.5, "metrics.acc_full", "out of range"),
    ("metrics.loss_inverse", "0.6", "metrics.loss_inverse", "expected a number, found a string"),
    ("task.target_loss", 0.7, "task.target_loss", "out of range"),
    ("counts.nodes", -1, "counts.nodes", "out of range"),
    ("counts.edges", 2, "counts.edges", "the file lists 1"),
    ("unembed_edges.0.token", True, "unembed_edges[0].token", "expected a whole number, found a boolean"),
    ("prune.meets_target", 1, "prune.meets_target", "expected true or false"),
])
def test_each_broken_circuit_field_is_named(path, value, field, problem):
    rec = set_path(copy.deepcopy(circuit()), path, value)
    with pytest.raises(UserError) as e:
        read_circuit_record(rec, "runs/r/circuits/t.json")
    msg = str(e.value)
    assert msg.startswith(f"runs/r/circuits/t.json: field {field}") and problem in msg and "\n" not in msg
    assert msg.endswith("re-run circexport prune to write it again")


@pytest.mark.parametrize("path, value, field, problem", [
    ("edges.0.src", DELETE, "edges[0].src", "missing"),
    ("edges.0.dst", "1.attn.q:1", "edges[0].dst", "is not one of the circuit's nodes"),
    ("edges.0", [1, 0, 0.5], "edges[0]", "expected an object, found a list"),
])
def test_each_broken_format_1_edge_is_named(path, value, field, problem):
    rec = set_path(copy.deepcopy(circuit_v1()), path, value)
    with pytest.raises(UserError, match=re.escape(f"c.json: field {field}: ") + ".*" + re.escape(problem)):
        read_circuit_record(rec, "c.json")


def test_a_circuit_of_another_format_version_is_refused():
    for value in ({**circuit(), "format_version": 3}, [], "x"):
        with pytest.raises(UserError, match="not a circuit file of format_version 2"):
            read_circuit_record(value, "c.json")


def test_task_table_rows_must_agree_with_their_target():
    row = {"loss": 0.1, "accuracy": 0.9, "learned": True, "target_loss": 0.15}
    table = {"format_version": 2, "model_sha256": SHA, "tasks": {"t": row}}
    assert read_task_table(table, "tasks.json")["tasks"]["t"] == row
    with pytest.raises(UserError, match=r"tasks.json: field tasks.t.learned: True contradicts loss 0.3"):
        read_task_table({**table, "tasks": {"t": {**row, "loss": 0.3}}}, "tasks.json")
    with pytest.raises(UserError, match=r"field tasks.t.accuracy: expected a number, found null"):
        read_task_table({**table, "tasks": {"t": {**row, "accuracy": None}}}, "tasks.json")
    with pytest.raises(UserError, match=r"not a task table of format_version 2 \(found 1\); re-run circexport prune"):
        read_task_table({**table, "format_version": 1}, "tasks.json")


def test_metrics_lines_name_the_line_and_field():
    line = {"step": 50, "loss": 3.2, "lr": 0.01, "seconds": 12.5, "tokens": 409600, "l0": 1000, "val_loss": None}
    assert read_metrics_line(line, "m.jsonl", 1) == line
    with pytest.raises(UserError, match=r"^m.jsonl:4: field loss: expected a number, found a string; fix or delete"):
        read_metrics_line({**line, "loss": "3.2"}, "m.jsonl", 4)
    with pytest.raises(UserError, match=r"^m.jsonl:2: field val_loss: nan is not a finite number"):
        read_metrics_line({**line, "val_loss": math.nan}, "m.jsonl", 2)


def without_nulls(obj):
    """obj without the null fields of its objects (an absent optional field reads as null)."""
    if isinstance(obj, dict):
        return {k: without_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [without_nulls(v) for v in obj]
    return obj


def test_a_written_circuit_reads_back_equal(tmp_path):
    rec = read_circuit_record(circuit(), "c.json")
    rec["metrics"]["loss_circuit"] = 0.123456789
    write_circuit(tmp_path / "c.json", rec)
    back = read_circuit_record(read_json(tmp_path / "c.json"), tmp_path / "c.json")
    assert without_nulls(back) == without_nulls(rounded(rec)) and back["metrics"]["loss_circuit"] == 0.123457
    rec["metrics"]["loss_inverse"] = math.nan  # what the pruner would write for a broken model: refused, nothing written
    with pytest.raises(UserError, match="field metrics.loss_inverse: nan is not a finite number"):
        write_circuit(tmp_path / "d.json", rec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_the_shipped_files_read_back_equal():
    paths = sorted((ROOT / "trainer" / "zoo").glob("*/circuits/*.json"))
    assert len(paths) >= 10
    for path in paths:
        raw = read_json(path)
        assert raw["format_version"] == 2
        assert without_nulls(edge_rows(read_circuit_record(raw, path))) == without_nulls(raw) and rounded(raw) == raw
    for path in sorted((ROOT / "trainer" / "zoo").glob("*/tasks.json")):
        assert read_task_table(read_json(path), path) == read_json(path)


def test_docs_describe_every_field_of_every_record():
    doc = (ROOT / "docs" / "formats.md").read_text()
    described = set(re.findall(r"^\| `([^`]+)` \|", doc, re.M))
    for spec in (CIRCUIT, TASK_TABLE, METRICS_LINE, MANIFEST):
        missing = [p for p in field_paths(spec) if p not in described]
        assert not missing, f"docs/formats.md does not describe {missing}"
