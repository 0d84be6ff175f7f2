"""The live panel in real Chromium, from file:// and over http: ONNX Runtime Web loads only when the panel opens; the
probabilities and node activations in the page equal Python onnxruntime (and PyTorch) for several prompts and
ablation masks; a click on a graph node toggles it as Python predicts; a URL restores prompt and mask; the page's
tokenizer equals Python's; bad input gets a message and the panel keeps working.
"""

from __future__ import annotations

import json
import random

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tests.fixture_runs import XSS
from tests.web.conftest import playwright_api
from tests.web.test_tokenizer_js import snippets

playwright_api()  # skips this module without Chromium or playwright

PAGE = "tiny-a/{}/index.html"
TOL = 1e-4


class Python:
    """The circuit and full models of one circuit in Python onnxruntime, run on the site's own files."""

    def __init__(self, site_dir, run_dir, task):
        from trainer.tokenizer import load_tokenizer

        folder = site_dir / "onnx" / "tiny-a"
        self.circuit = ort.InferenceSession(str(folder / f"{task}.circuit.onnx"), providers=["CPUExecutionProvider"])
        self.full = ort.InferenceSession(str(folder / "full-model.onnx"), providers=["CPUExecutionProvider"])
        self.live = json.loads((site_dir / "data" / "tiny-a" / task / "live.js").read_text().split(",", 1)[1].rsplit(")", 1)[0])
        self.nodes = self.live["nodes"]
        self.tok = load_tokenizer(str(run_dir / "tokenizer.json"))

    def __call__(self, prompt, off=(), answers=None):
        """(p(A) circuit, p(A) full, activations [T, N]) for a prompt with the nodes in `off` mean-ablated."""
        ids = np.array([self.tok.encode(prompt).ids])
        answers = np.array([answers or self.live["answers"]])
        mask = np.array([0.0 if n in off else 1.0 for n in self.nodes], dtype=np.float32)
        logits, acts = self.circuit.run(None, {"tokens": ids, "mask": mask, "answers": answers})
        full = self.full.run(None, {"tokens": ids})[0][0, -1]
        sig = lambda d: 1 / (1 + np.exp(-d))  # noqa: E731
        return float(sig(logits[0, -1, 0] - logits[0, -1, 1])), float(sig(full[answers[0, 0]] - full[answers[0, 1]])), acts[0]


@pytest.fixture(scope="module")
def python(site, site_runs):
    return {task: Python(site[0], site_runs["a"], task) for task in ("lambda_func", "var_swap", "bool_literal")}


def open_live(watch, url):
    """Go to a circuit page and open the live panel (unless the URL opens it); wait for its first result."""
    page = watch.goto(url)
    if "live=1" not in url and "prompt=" not in url:
        page.click("#live-open")
    page.wait_for_function("window.cxLive && window.cxLive.version > 0", timeout=30000)
    page.evaluate("cxLive.idle()")
    return page


def set_state(page, patch):
    """Change the URL state as the panel's controls do and wait for the update."""
    page.evaluate("(p) => { const v = cxLive.version; cx.setState(p); return cxLive.idle().then(() => v); }", patch)
    return page


def shown(page):
    """What the page shows: p(A) of the circuit and of the full model (as printed), token ids, activations [T, N]."""
    got = page.evaluate("""() => ({pc: +document.getElementById('live-p-circuit-a').textContent,
      pf: +document.getElementById('live-p-full-a').textContent, ids: cxLive.shown.ids,
      acts: Array.from(cxLive.result.acts), T: cxLive.result.T, N: cxLive.result.N,
      message: document.getElementById('live-message').hidden ? null : document.getElementById('live-message').textContent})""")
    got["acts"] = np.array(got["acts"]).reshape(got["T"], got["N"])
    return got


def assert_matches(got, want, tok_ids):
    pc, pf, acts = want
    assert got["message"] is None
    assert got["ids"] == tok_ids
    assert abs(got["pc"] - pc) <= TOL and abs(got["pf"] - pf) <= TOL, (got["pc"], pc, got["pf"], pf)
    assert got["acts"].shape == acts.shape and np.abs(got["acts"] - acts).max() <= TOL


def test_runtime_loads_only_when_the_panel_opens(base, watch):
    seen = []
    watch.page.on("request", lambda r: seen.append(r.url))
    page = watch.goto(base + PAGE.format("lambda_func"))
    page.wait_for_timeout(100)
    assert page.evaluate("typeof window.ort") == "undefined"
    assert not [u for u in seen if "onnxruntime-web" in u or "/onnx/" in u]
    assert page.locator("svg.graph circle.node").count() > 0  # the precomputed graph painted without it
    page.click("#live-open")
    page.wait_for_function("window.cxLive && window.cxLive.version > 0", timeout=30000)
    assert [u for u in seen if "onnxruntime-web" in u] and "live=1" in page.url
    assert page.evaluate("[cx.runtime.mode, cx.runtime.info.threads, typeof window.ort]") == ["worker", 1, "undefined"]
    watch.clean()


def test_probabilities_and_activations_equal_python(base, watch, python):
    py = python["lambda_func"]
    page = open_live(watch, base + PAGE.format("lambda_func"))
    first = py.live["ready"][0]["prompt"]
    assert page.locator("#live-prompt").input_value() == first  # a ready example is the default prompt
    rng = random.Random(0)
    half = [n for n in py.nodes if rng.random() < 0.5]
    cases = [(first, []), (first, half), ("def f(x):\n    return lambda y", py.nodes[:3]),
             ("total = 0\nfor item in items:\n    total += item.price if item else 0\nprint(total", []),
             ("x" * 3, py.nodes)]
    for prompt, off in cases:
        set_state(page, {"prompt": prompt, "off": off or None})
        assert_matches(shown(page), py(prompt, set(off)), py.tok.encode(prompt).ids)
    watch.clean()


def test_circuit_model_in_the_page_equals_pytorch(site, site_runs, watch, python):
    from exporter.inputs import read_run
    from exporter.onnx_export import CircuitModel

    run = read_run(site_runs["a"])
    c = next(c for c in run.circuits if c.slug == "var_swap")
    module = CircuitModel(run.run.model, run.means, c.node_ids).eval()
    py = python["var_swap"]
    page = open_live(watch, site[0].resolve().as_uri() + "/" + PAGE.format("var_swap"))
    prompt, off = py.live["ready"][1]["prompt"], py.nodes[1::2]
    answers = py.live["ready"][1]["answers"]
    set_state(page, {"prompt": prompt, "off": off, "ans": answers})
    got = shown(page)
    ids = torch.tensor([py.tok.encode(prompt).ids])
    with torch.no_grad():
        logits, acts = module(ids, torch.tensor([0.0 if n in off else 1.0 for n in py.nodes]), torch.tensor([answers]))
    assert abs(got["pc"] - float(torch.sigmoid(logits[0, -1, 0] - logits[0, -1, 1]))) <= TOL
    assert np.abs(got["acts"] - acts[0].numpy()).max() <= TOL
    watch.clean()


def test_clicking_a_graph_node_toggles_it_as_python_predicts(site, watch, python):
    py = python["lambda_func"]
    page = open_live(watch, site[0].resolve().as_uri() + "/" + PAGE.format("lambda_func"))
    prompt = page.locator("#live-prompt").input_value()
    before = shown(page)
    node = py.nodes[len(py.nodes) // 2]
    version = page.evaluate("cxLive.version")
    page.locator(f'circle.node[data-id="{node}"]').click()
    page.wait_for_function(f"cxLive.version > {version}")
    page.evaluate("cxLive.idle()")
    assert f"off={node}" in page.url and page.locator("circle.node.ablated").count() == 1
    assert page.locator("#card").is_hidden()  # a click in live mode ablates; it does not select
    after = shown(page)
    want = py(prompt, {node})
    assert_matches(after, want, py.tok.encode(prompt).ids)
    j = py.nodes.index(node)
    assert np.abs(after["acts"] - before["acts"]).max() > 0  # the node's ablation reached the output
    assert np.allclose(after["acts"][:, j], after["acts"][0, j])  # an ablated node holds its mean on every token
    page.locator(f'circle.node[data-id="{node}"]').click()  # toggled back
    page.wait_for_function("!location.hash.includes('off=')")
    page.evaluate("cxLive.idle()")
    assert_matches(shown(page), py(prompt), py.tok.encode(prompt).ids)
    page.locator(f'circle.node[data-id="{node}"]').click(modifiers=["Shift"])  # shift-click still selects
    assert page.locator("#card a.node-link").inner_text() == node
    watch.clean()


def test_a_link_restores_prompt_and_mask(base, watch, python):
    from urllib.parse import quote

    py = python["lambda_func"]
    prompt, off = "values = {k: v for k, v in pairs}\ncheck = lambda a & b", py.nodes[::3]
    url = base + PAGE.format("lambda_func") + f"#live=1&off={quote(','.join(off))}&prompt={quote(prompt)}"
    page = open_live(watch, url)
    assert page.locator("#live-prompt").input_value() == prompt
    assert page.locator("circle.node.ablated").count() == len(off)
    assert_matches(shown(page), py(prompt, set(off)), py.tok.encode(prompt).ids)
    assert page.locator("#live-probs").inner_text().count(f"{len(py.nodes) - len(off)} of {len(py.nodes)} nodes kept") == 1
    watch.clean()


def test_a_hand_edited_link_falls_back_and_a_reload_keeps_the_state(site, watch, python):
    from urllib.parse import quote

    py = python["lambda_func"]
    prompt, node, other = py.live["ready"][0]["prompt"], py.nodes[2], py.nodes[5]
    vocab = py.live["vocab_size"]
    url = (site[0].resolve().as_uri() + "/" + PAGE.format("lambda_func") +
           f"#live=1&off={quote('no.such:node,' + node)}&ans={vocab},1&prompt={quote(prompt)}&zzz=1")
    page = open_live(watch, url)
    assert page.evaluate("cxLive.shown.answers") == py.live["answers"]  # an answer outside the vocabulary: the task's
    assert page.evaluate("Array.from(cxLive.shown.off)") == [node]  # an id not in the circuit is ignored
    assert page.locator("circle.node.ablated").count() == 1
    assert_matches(shown(page), py(prompt, {node}), py.tok.encode(prompt).ids)
    version = page.evaluate("cxLive.version")
    page.locator(f'circle.node[data-id="{other}"]').click()
    page.wait_for_function(f"cxLive.version > {version}")
    page.evaluate("cxLive.idle()")
    written = page.evaluate("location.hash")
    assert "live=1&off=" in written and "zzz" not in written and "no.such" not in written
    page.reload(wait_until="load")
    page.wait_for_function("window.cxLive && window.cxLive.version > 0", timeout=30000)
    page.evaluate("cxLive.idle()")
    assert page.evaluate("location.hash") == written
    assert page.locator("#live-prompt").input_value() == prompt
    assert page.evaluate("cxLive.shown.answers") == py.live["answers"]
    assert sorted(page.evaluate("Array.from(cxLive.shown.off)")) == sorted([node, other])
    assert page.locator("circle.node.ablated").count() == 2
    assert_matches(shown(page), py(prompt, {node, other}), py.tok.encode(prompt).ids)
    watch.clean()


def test_tokenizer_in_the_page_equals_python(site, site_runs, watch):
    from trainer.tokenizer import load_tokenizer

    tok = load_tokenizer(str(site_runs["a"] / "tokenizer.json"))
    texts = snippets(600, seed=1)
    page = watch.goto(site[0].resolve().as_uri() + "/" + PAGE.format("bool_literal"))
    got = page.evaluate("""(texts) => cx.load('tiny-a/tokenizer', 'data/tiny-a/tokenizer.js')
      .then((s) => { const t = cx.bpe.fromShard(s); return texts.map((x) => t.encode(x)); })""", texts)
    want = [e.ids for e in tok.encode_batch(texts)]
    assert got == want
    watch.clean()


def test_bad_input_gets_a_message_and_the_panel_keeps_working(site, watch, python):
    py = python["bool_literal"]  # a task outside the suite: no ready prompts
    page = open_live(watch, site[0].resolve().as_uri() + "/" + PAGE.format("bool_literal"))
    message = page.locator("#live-message")
    assert "prompt is empty" in message.inner_text()  # nothing to start from
    assert page.locator("#live-ready option").count() == 1
    page.fill("#live-prompt", "for x in range(10):\n    print(x")
    page.evaluate("cxLive.idle()")
    assert message.is_hidden()
    good = shown(page)
    page.fill("#live-prompt", "x = 1\n" * 40)  # 80+ tokens > n_ctx 64
    page.evaluate("cxLive.idle()")
    assert "longer than this model's context of 64 tokens" in message.inner_text()
    assert "stale" in page.locator(".live-results").get_attribute("class")
    page.fill("#live-prompt", "")
    page.evaluate("cxLive.idle()")
    assert "prompt is empty" in message.inner_text()
    odd = "name = '\U0001f600 \u2603' " + XSS
    page.fill("#live-prompt", odd)
    page.evaluate("cxLive.idle()")
    warning = page.locator("#live-warning")
    assert warning.is_visible() and "U+1F600" in warning.inner_text() and "U+2603" in warning.inner_text()
    assert_matches(shown(page), py(odd), py.tok.encode(odd).ids)  # a warning, and still the right numbers
    assert XSS in page.locator("#live-tokens").inner_text()  # token text shown as text
    assert page.locator("img").count() == 0 and page.evaluate("typeof window.__pwned") == "undefined"
    page.fill("#live-answer-a", "two tokens here")
    page.locator("#live-answer-a").dispatch_event("change")
    page.evaluate("cxLive.idle()")
    assert "exactly one token" in message.inner_text()
    page.fill("#live-answer-a", " True")
    page.locator("#live-answer-a").dispatch_event("change")
    page.fill("#live-prompt", "for x in range(10):\n    print(x")
    page.evaluate("cxLive.idle()")
    assert message.is_hidden() and not warning.is_visible()
    assert abs(shown(page)["pc"] - good["pc"]) <= TOL
    watch.clean()
