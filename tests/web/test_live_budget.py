"""The live panel where a model is over the page's budget (`circexport build --live-budget`): a full model too large
for the page leaves the circuit running live, from sparse weights files, with the full model's numbers taken from
the build; a circuit model too large says so in one message; in both cases the page fetches nothing it cannot run.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from tests.conftest import fast_options
from tests.web.conftest import playwright_api
from tests.web.test_live_panel import TOL, Python, open_live, shown
from trainer.circuit import write_circuit
from trainer.schema import read_circuit_record

playwright_api()  # skips this module without Chromium or playwright

PAGE = "tiny-a/lambda_func/index.html"


def live_shard(site_dir, task="lambda_func"):
    """The circuit's live shard as the page reads it."""
    return json.loads((site_dir / "data" / "tiny-a" / task / "live.js").read_text().split(",", 1)[1].rsplit(")", 1)[0])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, site_runs):
    """Run a with its lambda_func circuit cut to the nodes of layer 0 and the final residual (so the circuit model
    needs the weights of layer 0 and the embeddings only)."""
    run = tmp_path_factory.mktemp("budget-run") / "tiny-a"
    shutil.copytree(site_runs["a"], run)
    path = run / "circuits" / "lambda_func.json"
    rec = read_circuit_record(json.loads(path.read_text()), path)
    rec["nodes"] = [n for n in rec["nodes"] if n["id"].startswith(("0.", "final_resid"))]
    ids = {n["id"] for n in rec["nodes"]}
    for key, ends in (("edges", ("src", "dst")), ("resid_links", ("src", "dst")), ("qk_pairs", ("q", "k")), ("unembed_edges", ("src",))):
        rec[key] = [e for e in rec[key] if all(e[k] in ids for k in ends)]
        rec["counts"][key] = len(rec[key])
    rec["counts"]["nodes"] = len(ids)
    rec["counts"]["nodes_by_location"] = dict(Counter(i.rpartition(":")[0] for i in ids))
    write_circuit(path, rec)
    return run


def small_site(tmp_path_factory, run, budget):
    """A site of the run whose page budget is `budget` bytes."""
    from exporter.build import build

    out = tmp_path_factory.mktemp("budget") / "site"
    build([run], out, fast_options(live_budget=budget))
    return out


@pytest.fixture(scope="module")
def sizes(tmp_path_factory, run_dir):
    """Bytes the circuit and the full model take in the page."""
    models = live_shard(small_site(tmp_path_factory, run_dir, 10**9))["models"]
    assert models["circuit"]["live_bytes"] < models["full"]["live_bytes"]
    return models["circuit"]["live_bytes"], models["full"]["live_bytes"]


@pytest.fixture(scope="module")
def full_too_large(tmp_path_factory, run_dir, sizes):
    return small_site(tmp_path_factory, run_dir, sizes[0])


def test_a_full_model_over_budget_shows_the_builds_numbers(full_too_large, run_dir, watch):
    site = full_too_large
    live = live_shard(site)
    assert live["models"]["circuit"]["fits"] and not live["models"]["full"]["fits"]
    assert not (site / "onnx" / "tiny-a" / "full-model.onnx.js").exists()  # no twin for what the page cannot run
    circuit_files = {w["path"] for w in live["models"]["circuit"]["weights"]}
    assert {p.relative_to(site).as_posix()[:-3] for p in (site / "onnx" / "tiny-a" / "weights").glob("*.js")} == circuit_files
    py = Python(site, run_dir, "lambda_func")
    requests = []
    watch.page.on("request", lambda r: requests.append(r.url))
    page = open_live(watch, site.resolve().as_uri() + "/" + PAGE)
    ready = live["ready"][0]
    got = shown(page)
    pc, _, acts = py(ready["prompt"])
    assert abs(got["pc"] - pc) <= TOL and abs(got["acts"] - acts).max() <= TOL  # the circuit runs live
    assert abs(got["pf"] - ready["p_full"]) <= 5e-4  # the full model's p(A) from the build (3 digits)
    row = page.locator('#live-probs tr[data-model="full"]').inner_text()
    assert "too large for the page" in row and "from the build" in row
    page.evaluate("(p) => { cx.setState({prompt: p}); return cxLive.idle(); }", "x = [1, 2")
    row = page.locator('#live-probs tr[data-model="full"]').inner_text()
    assert "no build-time number for this prompt" in row and "…" in row
    assert "circuit loaded" in page.locator("#live-status").inner_text()
    assert not [u for u in requests if "full-model" in u]
    watch.clean()


def test_a_circuit_over_budget_says_so(tmp_path_factory, run_dir, sizes, watch):
    site = small_site(tmp_path_factory, run_dir, sizes[0] - 1)
    assert not list((site / "onnx").rglob("*.js"))
    page = watch.goto(site.resolve().as_uri() + "/" + PAGE)
    page.click("#live-open")
    message = page.locator("#live-message")
    message.wait_for(state="visible")
    text = message.inner_text()
    assert "this circuit's model takes" in text and "over this site's budget" in text and "--live-budget" in text
    assert page.evaluate("typeof cx.runtime === 'undefined' || cx.runtime.info === null")  # the runtime never started
    watch.clean()
