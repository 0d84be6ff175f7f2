"""Tests of the ONNX models: parity with PyTorch, the circuit model's mask, the .js twin, the parity guard."""

import base64
import hashlib
import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporter import onnx_export as ox
from exporter import weights as wt
from exporter.render import SiteWriter
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
    folder = out / "onnx" / "tiny-a"
    text = (folder / "var_swap.circuit.onnx.js").read_text()
    key, b64 = re.fullmatch(r'cx\.register\(("[^"]+"), "([A-Za-z0-9+/=]+)"\);\n', text).groups()
    assert json.loads(key) == "onnx/tiny-a/var_swap.circuit"
    assert base64.b64decode(b64) == (folder / "var_swap.circuit.onnx").read_bytes()
    for weights in sorted((folder / "weights").glob("*.bin")):
        key, body = re.fullmatch(r'cx\.register\(("[^"]+"),(\{.*\})\);\n', (folder / "weights" / f"{weights.name}.js").read_text()).groups()
        record = json.loads(body)
        assert json.loads(key) == f"onnx/tiny-a/weights/{weights.name}"
        assert wt.untwin(record) == weights.read_bytes()
        assert record["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


def external_files(model_path):
    """The weights files a model file names (ONNX external data locations)."""
    proto = onnx.load(str(model_path), load_external_data=False)
    return {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}


def test_models_of_a_run_share_one_copy_of_the_sparse_weights(site, run):
    out, _ = site
    folder = out / "onnx" / "tiny-a"
    files = {f"weights/{p.name}" for p in (folder / "weights").glob("*.bin")}
    stored = sum((folder / f).stat().st_size for f in files)
    mats = [p for p in run.run.model.state_dict().values() if p.dim() == 2]
    nonzero = sum(int(torch.count_nonzero(p)) for p in mats)
    assert nonzero < 0.5 * sum(p.numel() for p in mats)  # the tiny run is sparse...
    assert stored < 8 * nonzero  # ...and its weights are stored as nonzeros (values + positions), once
    assert external_files(folder / "full-model.onnx") == files
    for model in folder.glob("*.circuit.onnx"):
        assert external_files(model) <= files, model  # the full model's files, no copies
        inline = [t for t in onnx.load(str(model), load_external_data=False).graph.initializer if not t.external_data]
        assert all(len(t.raw_data) <= (ox.INLINE_MAX if len(t.dims) < 2 else wt.MIN_EXTERNAL) for t in inline), model
    ops = {n.op_type for n in onnx.load(str(folder / "full-model.onnx"), load_external_data=False).graph.node}
    assert {"ScatterElements", "CumSum"} <= ops  # sparse matrices rebuilt in the graph


def test_a_circuit_model_holds_only_the_weights_its_nodes_need(tmp_path, run):
    model = run.run.model
    means = {loc: torch.zeros(model.location_dim(loc)) for loc in model.node_locations()}
    nodes = ["0.attn.q:1", "0.attn.resid_delta:3", f"{model.cfg.n_layer - 1}.mlp.post_act:2", "final_resid:3"]
    module = ox.CircuitModel(model, means, nodes).eval()
    onnx_set = ox.OnnxSet("m", live_budget=10**9)
    x = tokens()
    feeds = [(x, mask, torch.tensor([[1, 2]] * 3)) for mask in ox.parity_masks(len(nodes))]
    files = onnx_set.add("c", ox.export_circuit(module, len(nodes), {}), module, feeds)
    full = onnx_set.add("full", ox.export_full(model, {}), model, [(x,)])
    assert 0 < files.live_bytes < full.live_bytes and set(files.weights) < set(full.weights)
    onnx_set.write(SiteWriter(tmp_path))  # and each model equals PyTorch
    names = {i.name.split("::")[0].removesuffix(".T") for i in onnx.load(str(tmp_path / "m" / "c.onnx"), load_external_data=False).graph.initializer}
    assert "model.blocks.0.attn.c_attn.weight" in names and "model.blocks.0.mlp.c_fc.weight" not in names


def test_models_over_the_page_budget_get_no_twins(tmp_path, run):
    model = run.run.model
    onnx_set = ox.OnnxSet("m", live_budget=1000)
    files = onnx_set.add("full", ox.export_full(model, {}), model, [(tokens(),)])
    assert not files.fits
    onnx_set.write(SiteWriter(tmp_path))
    assert (tmp_path / "m" / "full.onnx").is_file() and not list(tmp_path.rglob("*.js"))


def test_parity_failure_fails_the_build(tmp_path, run):
    model = run.run.model
    onnx_set = ox.OnnxSet("m", live_budget=10**9)
    onnx_set.add("full", ox.export_full(model, {}), model, [(tokens(),)])
    onnx_set.write(SiteWriter(tmp_path))

    class Off(torch.nn.Module):
        def forward(self, x):
            return model(x) + 1e-3

    with pytest.raises(UserError, match="ONNX parity failed"):
        ox.check_parity(str(tmp_path / "m" / "full.onnx"), Off(), [(tokens(),)], "tiny-a")


def test_near_ties_mark_the_positions_where_abstopk_could_round_either_way():
    from trainer.config import ModelConfig
    from trainer.model import Sparsify

    layer = Sparsify(ModelConfig(afrac=0.5), "attn.act_in", 4)  # keeps 2 of 4
    x = torch.tensor([[[3.0, 1.0, 0.0, 0.1], [3.0, 1.0, 1.000001, 0.1], [3.0, 1.0, 0.5, 0.1]],  # position 1: a near-tie
                      [[3.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.5, 0.5], [1.0, 1.0, 1.0, 0.2]]])  # tied zeros, below k, then a tie
    with ox.NearTies(layer) as ties:
        layer(x)
    assert ties.positions(2, 3).tolist() == [[False, True, True], [False, False, True]]  # and every later position
    with ox.NearTies(torch.nn.Identity()) as none:
        pass
    assert not none.positions(2, 3).any()
