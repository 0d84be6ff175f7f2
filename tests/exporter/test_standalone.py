"""Tests of --standalone: one self-contained d3graph HTML file per circuit (optional extra circexport[d3graph])."""

import json
import re
import sys

import pytest

from exporter.build import build
from tests.conftest import fast_options
from trainer.errors import UserError
from trainer.schema import read_circuit_record


def test_standalone_graph_is_self_contained_signed_and_labelled(site_runs, tmp_path):
    pytest.importorskip("d3graph", reason="pip install 'circexport[d3graph]'")
    build([site_runs["a"]], tmp_path / "s", fast_options(onnx=False, standalone=True))
    path = site_runs["a"] / "circuits" / "lambda_func.json"
    rec = read_circuit_record(json.loads(path.read_text()), path)
    html = (tmp_path / "s" / "tiny-a" / "lambda_func" / "standalone.html").read_text()
    assert "ethicalads" not in html and not re.search(r"<script[^>]+src=", html)  # no ad, nothing fetched
    for e in rec["edges"]:  # every edge kept (d3graph's default min_weight of 1.0 would drop them all)
        assert e["src"] in html and e["dst"] in html
    assert "#2166ac" in html and "#b2182b" in html  # edge colors carry the sign
    assert 'href="standalone.html"' in (tmp_path / "s" / "tiny-a" / "lambda_func" / "index.html").read_text()


def test_standalone_without_d3graph_says_how_to_install_it(site_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "d3graph", None)
    with pytest.raises(UserError, match=r"circexport\[d3graph\]"):
        build([site_runs["a"]], tmp_path / "s", fast_options(onnx=False, standalone=True))
    assert not (tmp_path / "s").exists()
