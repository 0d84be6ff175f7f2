"""Tests of the site's weight storage: sparse matrices as values + positions round-trip exactly, through the numpy
reference, the .js twin's transforms and the ONNX ops that rebuild them in onnxruntime; and they are compact."""

import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from exporter import weights as wt


def sparse(shape, density, seed=0):
    """A float32 matrix with about `density` of its entries nonzero (N(0, 1) values, random positions)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(np.float32)


CASES = {
    "1/64": sparse((512, 256), 1 / 64),
    "1/256": sparse((1024, 512), 1 / 256),
    "1/4, odd shape": sparse((37, 1001), 1 / 4),
    "rows of zeros": np.vstack([np.zeros((300, 64), np.float32), sparse((10, 64), 0.5, 1), np.zeros((700, 64), np.float32)]),
    "all zeros": np.zeros((64, 64), np.float32),
    "dense": sparse((64, 48), 1.0),
    "negative zero and tiny values": np.array([[0.0, -0.0, 1e-45, 0.0], [0.0, 0.0, 0.0, -3.5]] * 40, np.float32),
    "3-d": sparse((8, 16, 32), 1 / 8),
    "vector": np.arange(1000, dtype=np.float32),
    "int64": np.arange(600, dtype=np.int64).reshape(20, 30),
}


def canonical(array):
    """The array with -0.0 as 0.0: a zero's sign is not stored (x * -0.0 and x * 0.0 add up the same)."""
    return array + array.dtype.type(0) if array.dtype.kind == "f" else array


def rebuilt_by_onnxruntime(stored, blob, tmp_path):
    """The tensor as onnxruntime rebuilds it from its weights file (the graph outputs the tensor itself)."""
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("w", stored.elem_type, list(stored.shape))])
    nodes = wt.attach(graph, "w", stored)
    graph.node.extend(nodes or [helper.make_node("Identity", ["w"], ["w_out"])])
    if not nodes:
        graph.output[0].name = "w_out"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (tmp_path / wt.FOLDER).mkdir(exist_ok=True)
    (tmp_path / stored.file).write_bytes(blob)
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
    return ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {})[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_storage_round_trips_exactly(name, tmp_path):
    array = CASES[name]
    stored, blob = wt.store(array)
    assert stored.shape == array.shape and stored.file.startswith("weights/")
    for got in (wt.decode(stored, blob), rebuilt_by_onnxruntime(stored, blob, tmp_path)):
        assert got.dtype == array.dtype and got.shape == array.shape
        assert got.tobytes() == canonical(array).tobytes()  # bit for bit, but for the sign of zero
    key, body = re.fullmatch(r'cx\.register\(("[^"]+"),(\{.*\})\);\n', wt.twin_text("k", stored, blob)).groups()
    assert json.loads(key) == "k" and wt.untwin(json.loads(body)) == blob


def test_sparse_matrices_are_stored_as_nonzeros_and_dense_ones_whole():
    assert wt.store(CASES["1/64"])[0].block and wt.store(CASES["1/256"])[0].block
    assert not wt.store(CASES["dense"])[0].block and not wt.store(CASES["vector"])[0].block
    assert not wt.store(CASES["int64"])[0].block


@pytest.mark.parametrize("density, most", [(1 / 64, 5.3), (1 / 256, 6.05)])
def test_bytes_per_nonzero(density, most):
    array = sparse((4096, 1024), density, 2)
    stored, blob = wt.store(array)
    nonzero = int(np.count_nonzero(array))
    assert len(blob) / nonzero <= most  # 4 bytes of value + the position code
    twin = wt.twin_text("k", stored, blob)
    assert len(twin) / nonzero <= 1.2 * most  # base64 of the gzipped, transformed parts: about the file's size again


def test_same_tensor_same_file_and_different_tensors_differ():
    a, b = CASES["1/64"], CASES["1/64"].copy()
    b[0, 0] += 1
    assert wt.store(a)[0].file == wt.store(a.copy())[0].file != wt.store(b)[0].file
    assert wt.store(a)[0].file != wt.store(a.reshape(256, 512))[0].file  # the shape is part of the name


def test_a_twin_with_an_unknown_codec_is_refused():
    stored, blob = wt.store(CASES["1/64"])
    record = json.loads(wt.twin_text("k", stored, blob).split(",", 1)[1].rsplit(")", 1)[0])
    record["parts"][0][2] = "zstd"
    with pytest.raises(ValueError, match="zstd"):
        wt.untwin(record)


def test_rebuild_ops_are_standard_onnx_with_external_parts():
    stored, _ = wt.store(CASES["1/256"])
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("w", TensorProto.FLOAT, list(stored.shape))])
    nodes = wt.attach(graph, "w", stored)
    assert {n.op_type for n in nodes} <= {"Cast", "CumSum", "Sub", "ConstantOfShape", "ScatterElements", "Slice", "Mul",
                                          "Add", "Reshape"}
    external = [t for t in graph.initializer if t.data_location == TensorProto.EXTERNAL]
    assert sorted(t.name for t in external) == ["w::counts", "w::offsets", "w::values"]
