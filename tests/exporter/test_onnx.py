"""Tests of the ONNX models: parity with PyTorch, the circuit model's mask, the .js twin, the parity guard."""

import base64
import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporter import onnx_export as ox
from exporter.inputs import read_run
from trainer.errors import UserError
from trainer.masks import ablate, all_kept, kept_from_ids


@pytest.fixture(scope="module")
def run(site_runs):
    return read_run(site_runs["a"])


def tokens(n=3, t=40, seed=0):
    return torch.randint(0, 2048, (n, t), generator=torch.Generator().manual_seed(seed))


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_full_model_matches_pytorch(site, run):
    out, _ = site
    x = tokens()
    got = session(out / "onnx" / "tiny-a" / "full-model.onnx").run(None, {"tokens": x.numpy()})[0]
    with torch.no_grad():
        want = run.run.model(x).numpy()
    assert np.abs(got - want).max() <= ox.TOLERANCE
    ops = {n.op_type for n in onnx.load(str(out / "onnx" / "tiny-a" / "full-model.onnx")).graph.node}
    assert "TopK" in ops  # AbsTopK traced through torch.topk, not the numpy path


def test_circuit_model_is_the_mean_ablated_model(site, run):
    out, _ = site
    c = next(c for c in run.circuits if c.slug == "lambda_func")
    path = out / "onnx" / "tiny-a" / "lambda_func.circuit.onnx"
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["circexport.nodes"].split(",") == c.node_ids and meta["circexport.model_sha256"] == run.model_sha
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == ["tokens", "mask", "answers"]
    x = tokens()
    answers = np.array([[1, 2], [3, 4], [5, 6]])
    model, means = run.run.model, run.means
    for mask in (torch.ones(len(c.node_ids)), (torch.arange(len(c.node_ids)) % 3 == 0).float()):
        logits, acts = sess.run(None, {"tokens": x.numpy(), "mask": mask.numpy(), "answers": answers})
        kept = kept_from_ids(model, [n for n, m in zip(c.node_ids, mask) if m > 0]) if mask.sum() else all_kept(model, False)
        cache = {}
        hooks = {loc: (lambda loc: lambda a: cache.setdefault(loc, a))(loc) for loc in model.node_locations()}
        with torch.no_grad(), ablate(model, kept, means), model.hooks(hooks):
            full = model(x)
        want_logits = np.take_along_axis(full.numpy(), np.broadcast_to(answers[:, None, :], (3, 40, 2)), -1)
        assert np.abs(logits - want_logits).max() <= ox.TOLERANCE
        for j, node in enumerate(c.node_ids):
            loc, _, i = node.rpartition(":")
            assert np.abs(acts[..., j] - cache[loc][..., int(i)].numpy()).max() <= ox.TOLERANCE


def test_js_twins_hold_the_same_bytes(site):
    out, _ = site
    for name in ("var_swap.circuit.onnx", "weights.bin"):
        text = (out / "onnx" / "tiny-a" / f"{name}.js").read_text()
        key, b64 = re.fullmatch(r'cx\.register\(("[^"]+"), "([A-Za-z0-9+/=]+)"\);\n', text).groups()
        assert json.loads(key) == "onnx/tiny-a/" + name.removesuffix(".onnx")
        assert base64.b64decode(b64) == (out / "onnx" / "tiny-a" / name).read_bytes()


def test_models_of_a_run_share_one_copy_of_the_weights(site, run):
    out, _ = site
    folder = out / "onnx" / "tiny-a"
    weights = (folder / "weights.bin").stat().st_size
    dense = sum(p.numel() * 4 for p in run.run.model.state_dict().values())
    assert 0.9 * dense < weights < 1.2 * dense  # one copy, not one per model
    for model in folder.glob("*.onnx"):
        assert model.stat().st_size < 0.25 * weights, model  # the graph alone (a few percent for the demo model)
        proto = onnx.load(str(model), load_external_data=False)
        assert all(e.value == "weights.bin" for t in proto.graph.initializer for e in t.external_data if e.key == "location")


def test_parity_failure_fails_the_build(run):
    model = run.run.model
    data = ox.export_full(model, {})

    class Off(torch.nn.Module):
        def forward(self, x):
            return model(x) + 1e-3

    with pytest.raises(UserError, match="ONNX parity failed"):
        ox.check_parity(data, Off(), [(tokens(),)], "tiny-a")
