"""The built site in real Chromium, opened from file:// and served over http: no console errors, no network,
the graph and its card, view state in the URL, and token text that cannot inject HTML.

Needs Debian's chromium (`apt-get install -y chromium`) and the Python playwright package; never
`playwright install`. Skipped with the reason when either is missing.
"""

from __future__ import annotations

import json
import shutil

from tests.fixture_runs import XSS
from tests.web.conftest import Watch, playwright_api

playwright_api()  # skips this module without Chromium or playwright


def pages_of(site_dir):
    manifest = json.loads((site_dir / "manifest.json").read_text())
    return sorted(p for p in manifest["files"] if p.endswith(".html"))


def test_every_page_loads_without_errors_or_network(site, base, watch):
    for rel in pages_of(site[0]):
        page = watch.goto(base + rel)
        assert page.title().endswith("circexport"), rel
    watch.clean()


def circuit(site_runs, task):
    return json.loads((site_runs["a"] / "circuits" / f"{task}.json").read_text())


def test_graph_shows_the_circuit_counts(site, site_runs, base, watch):
    for task in ("lambda_func", "var_swap"):
        rec = circuit(site_runs, task)
        page = watch.goto(base + f"tiny-a/{task}/index.html")
        counts = page.locator("#graph-counts")
        assert counts.inner_text() == f"{rec['counts']['nodes']} nodes, {rec['counts']['edges']} edges"
        assert page.locator("svg.graph circle.node").count() == rec["counts"]["nodes"]
        assert page.locator("svg.graph path.edge").count() == rec["counts"]["edges"]
        assert page.locator("svg.graph path.link").count() == rec["counts"]["resid_links"]
    watch.clean()


def test_clicking_a_node_shows_its_card_and_puts_it_in_the_url(site_runs, base, watch):
    rec = circuit(site_runs, "lambda_func")
    node = rec["nodes"][3]["id"]
    page = watch.goto(base + "tiny-a/lambda_func/index.html")
    assert page.locator("#card").is_hidden()
    page.locator(f'circle.node[data-id="{node}"]').click()
    card = page.locator("#card")
    assert card.is_visible() and card.locator("a.node-link").inner_text() == node
    card.locator(".card-examples .ex").first.wait_for()  # the node's shard loaded on demand
    assert f"node={node}" in page.url
    href = card.locator("a.node-link").get_attribute("href")
    assert href == node.replace(":", ".") + ".html"
    watch.clean()


def test_a_url_with_a_hash_restores_the_view(site_runs, base, watch):
    rec = circuit(site_runs, "lambda_func")
    node = rec["nodes"][5]["id"]
    k = sorted(p["k"] for p in rec["sweep"])[2]
    page = watch.goto(base + f"tiny-a/lambda_func/index.html#k={k}&node={node}")
    assert page.locator("#card a.node-link").inner_text() == node
    assert page.locator(f'circle.node.selected[data-id="{node}"]').count() == 1
    assert page.locator("#k-label").inner_text().startswith(f"k = {k}:")
    gone = sum(1 for n in range(len(rec["nodes"])) if n >= k)  # ranks follow tau, which falls with file order here
    assert page.locator("circle.node.gone").count() == gone
    page = watch.goto(base + "tiny-a/lambda_func/" + node.replace(":", ".") + ".html#example=top2")
    assert page.locator('.ex.selected').get_attribute("data-example") == "top2"
    page = watch.goto(base + "tiny-a/index.html#channel=7")
    assert page.locator("#channel").input_value() == "7"
    watch.clean()


def read_and_write(page, hash_):
    """[cx.readState() for a hash set by hand, the hash the page writes back for that state]."""
    return page.evaluate("""(h) => { history.replaceState(null, "", h); const state = cx.readState(); cx.setState({});
      return [state, location.hash]; }""", hash_)


def test_the_hash_keys_read_and_write_the_published_url_forms(base, watch):
    page = watch.goto(base + "index.html")
    published = {  # the hash as the pages write it: the state it reads as
        "#k=64&node=3.attn.v:17": {"k": 64, "node": "3.attn.v:17"},
        "#ans=12%2C34&live=1&off=0.attn.q:3%2Cfinal_resid:7&prompt=x%20%3D%20%5B1%2C%202%0A":
            {"ans": [12, 34], "live": True, "off": ["0.attn.q:3", "final_resid:7"], "prompt": "x = [1, 2\n"},
        "#channel=7": {"channel": 7},
        "#example=bottom0": {"example": "bottom0"},
    }
    for hash_, state in published.items():
        assert read_and_write(page, hash_) == [state, hash_]
    by_hand = "#off=3.attn.v:17,final_resid:7&node=a:1&ans=1,2"  # plain commas, any order
    assert read_and_write(page, by_hand) == [{"ans": [1, 2], "node": "a:1", "off": ["3.attn.v:17", "final_resid:7"]},
                                             "#ans=1%2C2&node=a:1&off=3.attn.v:17%2Cfinal_resid:7"]
    malformed = "#k=6.4&channel=-1&ans=1,x&example=top&live=yes&off=,,&node=&prompt=%E0%A4%A&zzz=1"
    assert read_and_write(page, malformed) == [{}, ""]
    error = page.evaluate("() => { try { cx.setState({nodes: 'x'}); return null; } catch (e) { return e.message; } }")
    assert error == "not a URL hash key: nodes"
    watch.clean()


def test_a_malformed_hash_opens_the_default_view(site_runs, base, watch):
    rec = circuit(site_runs, "lambda_func")
    page = watch.goto(base + "tiny-a/lambda_func/index.html#node=9.attn.q:999&k=abc&off=%E0%A4%A&live=yes&zzz=1")
    assert page.locator("#card").is_hidden() and page.locator("circle.node.selected").count() == 0
    assert page.locator("#k-label").inner_text() == f"whole circuit: {len(rec['nodes'])} nodes"
    assert page.locator("circle.node.gone").count() == 0 and page.locator("circle.node.ablated").count() == 0
    assert page.locator("#live-open").is_visible()  # live=yes is not live=1: the panel stays closed
    node = rec["nodes"][1]["id"]
    page.locator(f'circle.node[data-id="{node}"]').click()
    assert page.evaluate("location.hash") == f"#node={node}"  # what was unknown or malformed is not written back
    page = watch.goto(base + "tiny-a/index.html#channel=7abc")
    assert page.locator("#channel").input_value() == "0"
    page = watch.goto(base + "tiny-a/lambda_func/" + node.replace(":", ".") + ".html#example=top2%22%5D")
    assert page.locator(".ex").count() > 0 and page.locator(".ex.selected").count() == 0
    watch.clean()


def test_a_selection_survives_a_reload(site_runs, base, watch):
    rec = circuit(site_runs, "lambda_func")
    node = rec["nodes"][4]["id"]
    page = watch.goto(base + "tiny-a/lambda_func/index.html")
    page.locator(f'circle.node[data-id="{node}"]').click()
    page.locator("#k-range").fill("1")
    label, url = page.locator("#k-label").inner_text(), page.url
    assert label.startswith("k = ") and f"node={node}" in url
    page.reload(wait_until="load")
    assert page.url == url
    assert page.locator("#card a.node-link").inner_text() == node
    assert page.locator(f'circle.node.selected[data-id="{node}"]').count() == 1
    assert page.locator("#k-range").input_value() == "1" and page.locator("#k-label").inner_text() == label
    watch.clean()


def test_hostile_token_text_shows_as_text_and_runs_nothing(site_runs, base, watch):
    rec = circuit(site_runs, "lambda_func")
    for rel in ["tiny-a/lambda_func/index.html", "tiny-a/index.html",
                "tiny-a/lambda_func/" + rec["nodes"][0]["id"].replace(":", ".") + ".html"]:
        page = watch.goto(base + rel)
        page.wait_for_timeout(50)
        assert XSS in page.locator("body").inner_text(), rel
        assert page.locator("img").count() == 0
    page = watch.goto(base + "tiny-a/lambda_func/index.html#node=" + rec["nodes"][0]["id"])
    page.locator("#card .card-examples .ex").first.wait_for()
    assert XSS in page.locator("#card").inner_text() and page.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    watch.clean()


def test_site_moved_elsewhere_still_opens_from_disk(site, browser, tmp_path):
    moved = tmp_path / "copy"
    shutil.copytree(site[0], moved)
    w = Watch(browser)
    try:
        page = w.goto((moved / "tiny-a" / "var_swap" / "index.html").as_uri())
        assert page.locator("svg.graph circle.node").count() > 0
        w.clean()
    finally:
        w.close()


def test_a_circuit_with_thousands_of_edges_draws_the_strongest_and_says_so(site, browser, tmp_path):
    """A dense baseline's circuit has tens of thousands of edges (66,144 in the shipped one): drawing them all took the
    page 109 s to open. The graph draws the 3,000 strongest by |weight|; the counts say so; the data keeps them all."""
    copy = tmp_path / "copy"
    shutil.copytree(site[0], copy)
    data = copy / "data" / "tiny-a" / "lambda_func" / "circuit.js"
    head, _, rest = data.read_text().partition(",")
    g = json.loads(rest.rsplit(")", 1)[0])
    extra = [[0, 1, (i + 1) * (-1) ** i] for i in range(3100)]  # |weight| 1..3100, above every real one
    g["edges"] += extra
    g["counts"]["edges"] = len(g["edges"])
    data.write_text(f"{head},{json.dumps(g)})")
    w = Watch(browser)
    try:
        page = w.goto((copy / "tiny-a" / "lambda_func" / "index.html").as_uri())
        weights = page.evaluate("Array.from(document.querySelectorAll('svg.graph path.edge'), (p) => p.__data__[2])")
        assert sorted(abs(x) for x in weights) == list(range(101, 3101))  # the 3,000 strongest, nothing else
        counts = page.locator("#graph-counts").inner_text()
        assert counts.endswith(f"{len(g['edges'])} edges (the 3000 strongest drawn; a node's card lists all of its own)")
        page.locator('circle.node').first.click()
        assert page.locator("#card li").count() >= 3100  # node 0's card lists every edge it has
        w.clean()
    finally:
        w.close()


def test_pareto_labels_of_close_points_do_not_overlap(site, browser, tmp_path):
    """Runs of about the same loss and circuit size (the shipped frontier runs) put their points on top of each other;
    each label moves down until it covers no other."""
    copy = tmp_path / "copy"
    shutil.copytree(site[0], copy)
    points = [{"model": f"frontier-d{w}-l0-{k}k", "kind": "sparse", "loss": 3.35 + i * 0.001, "edges": 20 + i, "circuits": 1}
              for i, (w, k) in enumerate([(64, 25), (64, 50), (96, 50)])]
    points.append({"model": "demo-dense", "kind": "dense", "loss": 2.54, "edges": 50000, "circuits": 6})
    (copy / "data" / "home.js").write_text(f'cx.register("home",{json.dumps({"points": points})});\n')
    w = Watch(browser)
    try:
        page = w.goto((copy / "index.html").as_uri())
        labels = page.evaluate("Array.from(document.querySelectorAll('text.point-label'), (t) => {"
                               " const r = t.getBoundingClientRect(), c = t.parentNode.querySelector('circle')"
                               ".getBoundingClientRect(); return {text: t.textContent, model: t.parentNode.__data__.model,"
                               " box: [r.left, r.top, r.right, r.bottom], dot: (c.top + c.bottom) / 2}; })")
        assert len(labels) == 4
        for label in labels:  # each label stays beside its own point, at most three lines below it
            assert label["text"] == label["model"] and label["box"][1] - 4 * 16 < label["dot"] < label["box"][3] + 4, label
        boxes = [label["box"] for label in labels]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
        w.clean()
    finally:
        w.close()
