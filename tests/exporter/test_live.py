"""Tests of the live panel's data: the tokenizer shard, each circuit's live shard (nodes, answers, ready prompts,
model files) and the ONNX Runtime Web files with their file:// twins."""

import base64
import gzip
import json
import re
import shutil

from exporter.build import build
from exporter.render import TEMPLATE_DIR
from tests.conftest import fast_options
from tests.fixture_runs import write_circuit
from trainer.tasks import TASKS
from trainer.tokenizer import load_tokenizer


def shard(path):
    key, body = re.fullmatch(r'cx\.register\(("[^"]+"),(.*)\);\n', path.read_text(), re.S).groups()
    return json.loads(key), json.loads(body)


def test_live_shard_has_nodes_answers_ready_prompts_and_models(site, site_runs):
    out, _ = site
    rec = json.loads((site_runs["a"] / "circuits" / "lambda_func.json").read_text())
    tok = load_tokenizer(str(site_runs["a"] / "tokenizer.json"))
    key, live = shard(out / "data" / "tiny-a" / "lambda_func" / "live.js")
    assert key == "tiny-a/lambda_func/live"
    assert live["nodes"] == [n["id"] for n in rec["nodes"]]  # the circuit model's mask order
    assert live["answers"] == [tok.token_to_id(":"), tok.token_to_id("(self")] and live["n_ctx"] == 64
    examples = [r for r in live["ready"] if r["kind"] == "example"]
    assert examples and all(0 <= r["p_full"] <= 1 and len(tok.encode(r["prompt"]).ids) <= 64 for r in examples)
    assert {r["role"] for r in examples} == {"target", "alternative"}
    for name in ("circuit", "full"):
        entry = live["models"][name]
        assert (out / entry["onnx"]).is_file() and (out / entry["js"]).is_file(), name
        assert entry["fits"] and 0 < entry["live_bytes"] <= live["models"]["budget"]
        assert entry["weights"] and all((out / w["path"]).is_file() and (out / w["js"]).is_file() for w in entry["weights"])
    circuit_files = {w["path"] for w in live["models"]["circuit"]["weights"]}
    assert circuit_files <= {w["path"] for w in live["models"]["full"]["weights"]}  # the circuit reads the full model's
    _, var_swap = shard(out / "data" / "tiny-a" / "var_swap" / "live.js")
    assert var_swap["answers"] == var_swap["ready"][0]["answers"]  # answers that vary per pair: the first pair's
    _, outside = shard(out / "data" / "tiny-a" / "bool_literal" / "live.js")
    assert outside["ready"] == []  # a task outside the suite has no ready prompts


def test_tokenizer_shard_lists_the_training_characters(site, site_runs):
    out, _ = site
    key, tok = shard(out / "data" / "tiny-a" / "tokenizer.js")
    assert key == "tiny-a/tokenizer" and "unsupported" not in tok
    assert len(tok["vocab"]) + len(tok["special"]) == 2048 and tok["special"] == {"<|endoftext|>": 2047}
    chars = set(tok["chars"])
    assert {"a", "(", "\n", " "} <= chars and "\U0001f600" not in chars and "\x07" not in chars
    assert not (out / "data" / "tiny-b" / "tokenizer.js").exists()  # no circuits, no live panel


def test_runtime_files_are_classic_script_twins(site):
    out, _ = site
    folder = out / "assets" / "vendor" / "onnxruntime-web"
    vendored = TEMPLATE_DIR / "vendor" / "onnxruntime-web"
    assert (folder / "VERSION").read_text().strip() == "1.30.0" and "MIT" in (folder / "LICENSE").read_text()
    b64 = re.fullmatch(r'cx\.register\("vendor/onnxruntime-web/ort-wasm-simd-threaded\.wasm\.gz", "([A-Za-z0-9+/=]+)"\);\n',
                       (folder / "ort-wasm-simd-threaded.wasm.gz.js").read_text()).group(1)
    packed = base64.b64decode(b64)
    assert packed == (vendored / "ort-wasm-simd-threaded.wasm.gz").read_bytes() and gzip.decompress(packed)[:4] == b"\0asm"
    for name in ("ort-wasm-simd-threaded.mjs", "ort.wasm.min.js"):  # their text, for Blob URLs
        key, text = shard(folder / f"{name}.js")
        assert key == f"vendor/onnxruntime-web/{name}" and text == (folder / name).read_text()
    assert not list(folder.glob("*.gz")) and not list(folder.glob("*.wasm"))  # only the twin: the page never fetches
    html = (out / "tiny-a" / "lambda_func" / "index.html").read_text()
    assert "ort.wasm.min.js" not in html  # loaded on demand only


def test_adversarial_prompts_ship_with_circuits_of_their_task(site_runs, tmp_path):
    run = tmp_path / "tiny-adv"
    shutil.copytree(site_runs["a"], run)
    shutil.rmtree(run / "circuits")
    write_circuit(run, "bracket_counting", "]", "]\n")
    out = tmp_path / "site"
    build([run], out, fast_options(onnx=False))
    _, live = shard(out / "data" / "tiny-adv" / "bracket_counting" / "live.js")
    adv = [r["prompt"] for r in live["ready"] if r["kind"] == "adversarial"]
    assert "# the first [ row\nvalues = [1, 2, 3" in adv  # an unmatched [ inside a comment
    assert set(adv) <= set(TASKS["bracket_counting"].adversarial)
    assert all(r["answers"] == live["answers"] for r in live["ready"] if r["kind"] == "adversarial")
    # with the build's probabilities, shown where a model is too large for the page
    assert all(0 <= r["p_full"] <= 1 and 0 <= r["p_circuit"] <= 1 for r in live["ready"] if r["kind"] == "adversarial")
    assert live["models"] is None  # built without ONNX: the panel says so instead of running
