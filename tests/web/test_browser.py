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
