"""`--standalone`: each circuit as one self-contained, shareable HTML file drawn by d3graph (extra circexport[d3graph]).

d3graph draws a force layout with D3 v3 inlined; it is built here without its ad script (support=False), with signed
weights kept as edge colors and labels (d3graph itself only knows |weight|), and with labels made of node ids and
numbers only, since d3graph's info panel writes labels as HTML.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from trainer.errors import UserError

POS, NEG, LINK = "#2166ac", "#b2182b", "#9aa4b5"
MIN_WEIGHT = 1e-9  # d3graph drops edges below min_weight (default 1.0): keep every nonzero one


def _safe(text: str) -> str:
    """A label that cannot carry markup: letters, digits and a few marks; anything else as \\uXXXX."""
    return "".join(c if re.fullmatch(r"[A-Za-z0-9 _.:()+\-=,]", c) else f"\\u{ord(c):04x}" for c in text)


def write_standalone(site: Any, rel: str, graph: dict[str, Any]) -> str:
    """Write the circuit's graph as one HTML file at `rel`; returns its name relative to the circuit page."""
    try:
        import pandas as pd
        from d3graph import d3graph
    except ImportError:
        raise UserError("--standalone needs the d3graph extra: pip install 'circexport[d3graph]'") from None
    nodes = graph["nodes"]
    answers = [f"answer:{a['role']}:{a['token']}" for a in graph["answers"]]
    names = [n["id"] for n in nodes] + answers
    src, dst, weight = [], [], []
    for s, d, w in graph["edges"]:
        src.append(nodes[s]["id"]), dst.append(nodes[d]["id"]), weight.append(w)
    for s, a, w in graph["unembed_edges"]:
        src.append(nodes[s]["id"]), dst.append(answers[a]), weight.append(w)
    links = [(nodes[s]["id"], nodes[d]["id"]) for s, d in graph["resid_links"]]
    adj = pd.DataFrame(0.0, index=names, columns=names)
    for s, d, w in zip(src, dst, weight):
        adj.loc[s, d] = abs(w)
    for s, d in links:
        adj.loc[s, d] = max(adj.loc[s, d], 1e-3)
    warnings.filterwarnings("ignore", module="d3graph")  # its pandas deprecation warnings are not the user's business
    d3 = d3graph(support=False, verbose=40)  # support=False: no remote ad script
    d3.graph(adj, min_weight=MIN_WEIGHT, color="#cccccc")  # "cluster" (the default) needs a community search
    names = list(d3.adjmat.columns)  # d3graph keeps only nodes with an edge or a residual link
    delta = {n["id"]: n["ablation_delta"] for n in nodes}
    tips = {n["id"]: _safe(f"{n['id']}  delta loss {n['ablation_delta']}  tau {n['tau']}") for n in nodes}
    tips.update({a: _safe(f"{a} {graph['answers'][k]['text']!r}") for k, a in enumerate(answers)})
    d3.set_node_properties(label=names, tooltip=[tips[n] for n in names],
                           color=["#e4572e" if n in answers else "#f6b26b" if delta.get(n, 0) > 0 else "#cccccc" for n in names],
                           size=[10 if n in answers else 6 + 10 * min(1.0, max(0.0, delta.get(n, 0))) for n in names])
    d3.set_edge_properties(directed=True, min_weight=MIN_WEIGHT, scaler="minmax", minmax=[0.5, 6], marker_end="arrow")
    signed = {(s, d): w for s, d, w in zip(src, dst, weight)}
    for key, props in d3.edge_properties.items():
        w = signed.get(key)
        props["edge_color"] = LINK if w is None else POS if w >= 0 else NEG
        props["marker_color"] = props["edge_color"]
        props["label"] = "residual" if w is None else f"{w:+.3g}"
        props["edge_style"] = 5 if w is None else 0
    title = _safe(f"{graph['model']} / {graph['circuit']}: {graph['counts']['nodes']} nodes, {graph['counts']['edges']} edges")
    with tempfile.TemporaryDirectory() as tmp:
        html = d3.show(filepath=str(Path(tmp) / "graph.html"), showfig=False, title=title, return_html=True)
    if "ethicalads" in html:
        raise UserError("d3graph added its remote ad script; upgrade or pin d3graph (pip install 'circexport[d3graph]')")
    site.write(rel, html)
    return Path(rel).name
