"""Tests of `circexport build`: the files it writes, determinism, relative links, atomic swap, bad input."""

import hashlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
import shutil
from html.parser import HTMLParser

import pytest
import torch
from click.testing import CliRunner

from exporter import build as build_module
from exporter import pages
from exporter.build import build
from exporter.cli import main
from tests.conftest import fast_options
from tests.fixture_runs import XSS
from trainer.errors import UserError
from trainer.run import load_run


def circuit(run_dir, task):
    return json.loads((run_dir / "circuits" / f"{task}.json").read_text())


def node_file(node):
    loc, _, i = node.rpartition(":")
    return f"{loc}.{i}"


def test_site_has_every_page_shard_model_and_asset(site, site_runs):
    out, report = site
    tasks = ("lambda_func", "var_swap", "bool_literal")
    expected = ["index.html", ".nojekyll", "manifest.json", "data/home.js", "tiny-a/index.html", "tiny-b/index.html",
                "data/tiny-a/model.js", "onnx/tiny-a/full-model.onnx", "onnx/tiny-a/full-model.onnx.js",
                "assets/vendor/d3/d3.min.js", "assets/vendor/d3/LICENSE", "assets/js/cx.js", "assets/css/site.css"]
    n_nodes = 0
    for task in tasks:
        rec = circuit(site_runs["a"], task)
        n_nodes += len(rec["nodes"])
        expected += [f"tiny-a/{task}/index.html", f"data/tiny-a/{task}/circuit.js",
                     f"onnx/tiny-a/{task}.circuit.onnx", f"onnx/tiny-a/{task}.circuit.onnx.js"]
        for n in rec["nodes"]:
            expected += [f"tiny-a/{task}/{node_file(n['id'])}.html", f"data/tiny-a/{task}/nodes/{node_file(n['id'])}.js"]
    missing = [p for p in expected if not (out / p).is_file()]
    assert not missing
    weights = sorted((out / "onnx" / "tiny-a" / "weights").glob("*.bin"))
    assert weights and all(w.with_name(w.name + ".js").is_file() for w in weights)  # twins: the tiny model fits the page
    assert (report.models, report.circuits, report.node_pages) == (2, 3, n_nodes)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in out.rglob("*"))  # unzips on every OS
    assert "No circuits yet" in (out / "tiny-b" / "index.html").read_text()
    assert "0.45" in (out / "index.html").read_text() and "for_while" in (out / "index.html").read_text()  # unlearned tasks listed


def test_manifest_lists_every_file_with_its_sha256(site):
    out, report = site
    manifest = json.loads((out / "manifest.json").read_text())
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    for rel, entry in manifest["files"].items():
        data = (out / rel).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert report.files == len(files) + 1


def test_two_builds_of_the_same_inputs_are_byte_identical(site, site_runs, tmp_path):
    from exporter import pages as pages_module
    from tests.conftest import hostile_strings

    out, _ = site
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pages_module, "token_strings", hostile_strings)
        build([site_runs["a"], site_runs["b"]], tmp_path / "again", fast_options(jobs=1))  # the fixture: one process per run
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()


def test_an_error_in_a_build_process_fails_the_build_and_keeps_the_old_site(old_site, site_runs, tmp_path, monkeypatch):
    out, before = old_site
    write_model = pages.write_model

    def fail_b(site, run, *args):
        if run.slug == "tiny-b":
            raise UserError("tiny-b: a clear reason")
        return write_model(site, run, *args)

    monkeypatch.setattr(pages, "write_model", fail_b)  # the build processes are forked: they run the patched code
    with pytest.raises(UserError, match="^tiny-b: a clear reason$"):
        build([site_runs["a"], site_runs["b"]], out, fast_options(onnx=False, jobs=2))

    def killed_b(site, run, *args):
        if run.slug == "tiny-b":
            os.kill(os.getpid(), signal.SIGKILL)
        return write_model(site, run, *args)

    monkeypatch.setattr(pages, "write_model", killed_b)
    with pytest.raises(UserError, match="a build process was killed by signal 9 .*--jobs 1"):
        build([site_runs["a"], site_runs["b"]], out, fast_options(onnx=False, jobs=2))
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.lock", "site"]  # no temporary folders left behind


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v is not None:
                self.links.append(v)


def test_links_are_relative_and_every_link_resolves_to_a_file(site):
    out, _ = site
    checked = 0
    for page in out.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        for link in parser.links:
            if link.startswith("#") or link == "data:,":
                continue
            assert not re.match(r"^([a-z]+:|/)", link), f"{page}: absolute link {link}"
            target = (page.parent / link.split("#")[0]).resolve()
            assert target.is_file() and out.resolve() in target.parents, f"{page}: {link} does not resolve"
            checked += 1
    assert checked > 500
    for js in (out / "assets" / "js").glob("*.js"):
        assert not re.search(r"https?://|fetch\(|XMLHttpRequest|innerHTML", js.read_text()), js


def test_data_shards_are_jsonp_scripts(site):
    out, _ = site
    for shard in (out / "data").rglob("*.js"):
        m = re.fullmatch(r'cx\.register\(("[^"]+"),(.*)\);\n', shard.read_text(), re.S)
        assert m, shard
        json.loads(m.group(2))


def test_untrusted_text_is_escaped_in_pages(site):
    out, _ = site
    html = (out / "tiny-a" / "lambda_func" / "index.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and XSS not in html


def test_node_page_snippet_recomputes_the_shown_activation(site, site_runs):
    out, _ = site
    run = load_run(site_runs["a"])
    for page in sorted((out / "tiny-a" / "lambda_func").glob("*.*.html"))[:6]:
        text = page.read_text()
        ids = json.loads(re.search(r"ids = torch\.tensor\(\[(\[[0-9, ]*\])\]\)", text).group(1))
        loc, chan, shown = re.search(r'cache\["([^"]+)"\]\[0, -1, (\d+)\]\)\)  # this page shows (\S+)<', text).groups()
        with torch.no_grad():
            _, cache = run.model.run_with_cache(torch.tensor([ids]), [loc])
        assert float(cache[loc][0, -1, int(chan)]) == pytest.approx(float(shown), abs=1e-4, rel=1e-4)


def test_node_shards_hold_quantized_examples_at_both_ends(site):
    out, _ = site
    shard = next((out / "data" / "tiny-a" / "lambda_func" / "nodes").glob("*.js")).read_text()
    table = json.loads(shard[shard.index(",") + 1:-3])
    top, bottom = table["top"], table["bottom"]
    assert top and [e["v"] for e in top] == sorted((e["v"] for e in top), reverse=True)
    assert [e["v"] for e in bottom] == sorted(e["v"] for e in bottom)
    for e in top + bottom:
        assert len(e["t"]) == len(e["a"]) and all(-127 <= a <= 127 for a in e["a"])
        assert e["a"][e["o"]] == round(e["v"] / table["stats"]["scale"] * 127) or abs(e["a"][e["o"]] - e["v"] / table["stats"]["scale"] * 127) <= 1
    assert sum(table["hist"]["counts"]) + table["hist"]["zeros"] == table["stats"]["n"]
    assert [c["role"] for c in table["classes"]] == ["target", "alternative"]


def test_a_node_in_two_circuits_has_the_same_table_in_both(site, site_runs):
    out, _ = site
    read = lambda path: json.loads(path.read_text()[path.read_text().index(",") + 1:-3])  # noqa: E731
    tasks = [p.stem for p in sorted((site_runs["a"] / "circuits").glob("*.json"))]
    held = {t: {n["id"] for n in circuit(site_runs["a"], t)["nodes"]} for t in tasks}
    pairs = [(a, b, sorted(held[a] & held[b])) for i, a in enumerate(tasks) for b in tasks[i + 1:]]
    a, b, shared = max(pairs, key=lambda p: len(p[2]))
    assert shared, "the fixture's circuits share no node"
    for node in shared:
        one, two = (read(out / "data" / "tiny-a" / t / "nodes" / f"{node_file(node)}.js") for t in (a, b))
        assert one.pop("classes") != two.pop("classes")  # each circuit's own task
        assert one == two and one["top"]


def test_models_are_tagged_by_which_sparsity_they_have():
    from trainer.config import load_config

    assert pages.model_kind(load_config("demo")) == "sparse"
    assert pages.model_kind(load_config("demo-dense")) == "dense"
    assert pages.model_kind(load_config("demo-dense-topk")) == "activation-sparse"


def test_circuit_page_shows_task_examples_or_says_why_not(site):
    out, _ = site
    assert "p(answer) circuit" in (out / "tiny-a" / "lambda_func" / "index.html").read_text()
    assert "not in this install" in (out / "tiny-a" / "bool_literal" / "index.html").read_text()


def test_failed_build_leaves_the_previous_site_untouched(site, site_runs, tmp_path, monkeypatch):
    out = tmp_path / "site"
    shutil.copytree(site[0], out)
    before = (out / "manifest.json").read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pages, "write_circuit", explode)  # after the model's shards and pages were written
    with pytest.raises(RuntimeError):
        build([site_runs["a"]], out, fast_options(onnx=False))
    monkeypatch.setattr(pages, "write_circuit", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build([site_runs["a"]], out, fast_options(onnx=False))
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.lock", "site"]  # no temporary folders left behind


@pytest.fixture
def old_site(site, tmp_path):
    out = tmp_path / "site"
    shutil.copytree(site[0], out)
    return out, (out / "manifest.json").read_bytes()


def run_cli(*args):
    return CliRunner().invoke(main, ["build", "--quiet", "--no-onnx", "--sample-tokens", "1024", *map(str, args)])


def one_error_line(result):
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_missing_run_dir_is_one_error_line(old_site, tmp_path):
    out, before = old_site
    line = one_error_line(run_cli(tmp_path / "nope", "-o", out))
    assert "nope" in line and "does not exist" in line
    assert (out / "manifest.json").read_bytes() == before


def test_corrupt_safetensors_is_one_error_line(old_site, site_runs, tmp_path):
    out, before = old_site
    bad = tmp_path / "bad"
    shutil.copytree(site_runs["b"], bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    line = one_error_line(run_cli(bad, "-o", out))
    assert "model.safetensors" in line and "safetensors" in line
    assert (out / "manifest.json").read_bytes() == before


def test_circuit_of_another_model_is_one_error_line(old_site, site_runs, tmp_path):
    out, before = old_site
    run = tmp_path / "other"
    shutil.copytree(site_runs["a"], run)
    rec = json.loads((run / "circuits" / "lambda_func.json").read_text())
    rec["model"]["sha256"] = "0" * 64
    (run / "circuits" / "lambda_func.json").write_text(json.dumps(rec))
    line = one_error_line(run_cli(run, "-o", out))
    assert "lambda_func.json" in line and "different model" in line
    assert (out / "manifest.json").read_bytes() == before


def test_unwritable_output_is_one_error_line(site_runs, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = one_error_line(run_cli(site_runs["b"], "-o", blocker / "site"))
    assert "cannot write the site" in line


def test_refuses_to_replace_a_folder_that_is_not_a_site(site_runs, tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    line = one_error_line(run_cli(site_runs["b"], "-o", precious))
    assert "not a circexport site" in line and (precious / "thesis.tex").read_text() == "years of work"


def test_run_without_circuits_builds_a_model_page(site_runs, tmp_path):
    report = build([site_runs["b"]], tmp_path / "s", fast_options(onnx=False))
    assert report.circuits == 0 and "No circuits yet" in (tmp_path / "s" / "tiny-b" / "index.html").read_text()
    assert "built" in report.summary() and "MB" in report.summary()


def test_no_run_dirs_and_no_demo_runs_says_so(tmp_path, monkeypatch):
    import exporter.inputs as inputs

    monkeypatch.setattr(inputs, "zoo_dir", lambda: tmp_path)
    line = one_error_line(CliRunner().invoke(main, ["build", "--quiet", "-o", str(tmp_path / "site")]))
    assert "ships no demo runs" in line and "circexport build runs/" in line


def test_serve_answers_over_http_on_localhost(site):
    import urllib.request

    from exporter.serve import serve_in_thread

    server, url = serve_in_thread(site[0])
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "index.html") as r:
            assert r.status == 200 and b"circexport" in r.read()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(UserError, match="no index.html"):
        serve_in_thread(site[0] / "data")


def test_circuit_page_states_each_faithfulness_verdict(site):
    out, _ = site  # fixture metrics: circuit 0.62 <= target 0.69; inverse 0.69 and random 0.69 < (0.69 + ln 2) / 2
    html = (out / "tiny-a" / "lambda_func" / "index.html").read_text()
    checks = re.search(r'<ul id="faith-checks" class="checks">(.*?)</ul>', html, re.S).group(1)
    verdicts = re.findall(r'<li class="(ok|bad)">(\w+):', checks)
    assert verdicts == [("ok", "Sufficient"), ("bad", "Necessary"), ("bad", "Specific")]
    assert re.search(r'<li class="bad">Necessary beyond a bias:', checks)  # fixture: refit loss 0.5 < 0.692
    assert "beyond a bias: with one logit offset between the answers refit on the ablated model, the loss falls below" in checks
    assert "inverse, bias refit" in html  # its row in the faithfulness table
    assert "reaches the target loss 0.690" in checks and "does not raise the loss to 0.692 or more" in checks
    assert re.search(r'<p id="means-note" class="note">Mean ablation replaces a node by its mean over\s+4,096 pretraining tokens', html)


def folder_hash(folder):
    """sha256 over every file's path and bytes under a folder."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_build_reports_size_and_largest_file(site):
    out, report = site
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    assert report.bytes == sum(sizes.values()) and report.largest == max(sizes.items(), key=lambda kv: kv[1])
    assert f"largest {report.largest[0]}" in report.summary() and not report.warnings


def test_pages_limits_warn_naming_the_file_and_fail_with_pages(old_site, site_runs, tmp_path, monkeypatch):
    from exporter import build as build_module

    out, _ = old_site
    before = folder_hash(out)
    monkeypatch.setattr(build_module, "PAGES_FILE_LIMIT", 2_000_000)  # the vendored wasm twin (~5 MB) is over it
    monkeypatch.setattr(build_module, "PAGES_SITE_LIMIT", 3_000_000)
    args = ["build", "--quiet", "--no-onnx", "--sample-tokens", "1024", str(site_runs["b"]), "-o"]
    result = CliRunner().invoke(main, [*args, str(tmp_path / "warned")])
    assert result.exit_code == 0
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert any("ort-wasm-simd-threaded.wasm.gz.js is" in w and "over GitHub's limit of 2 MB per file" in w for w in warnings)
    assert any("over GitHub Pages' limit of 3 MB per site" in w for w in warnings)
    line = one_error_line(CliRunner().invoke(main, [*args, str(out), "--pages"]))
    assert "ort-wasm-simd-threaded.wasm.gz.js is" in line and "--no-onnx" in line and "untouched" in line
    assert folder_hash(out) == before  # the previous site, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.lock", ".warned.lock", "site", "warned"]  # no temporary folders


def test_node_page_onnx_snippet_runs_as_shown_from_the_site_root(site, site_runs, monkeypatch, capsys):
    import html

    from exporter.inputs import read_run
    from exporter.onnx_export import CircuitModel

    out, _ = site
    page = sorted((out / "tiny-a" / "lambda_func").glob("*.*.html"))[0]
    snippet = html.unescape(re.findall(r'<pre class="code">(import numpy as np, onnxruntime.*?)</pre>', page.read_text(), re.S)[0])
    monkeypatch.chdir(out)
    exec(compile(snippet, str(page), "exec"), {})  # the weights files are found next to the model, as the page says
    got = float(capsys.readouterr().out.split()[-1])
    run = read_run(site_runs["a"])
    c = next(c for c in run.circuits if c.slug == "lambda_func")
    ids = json.loads(re.search(r'"tokens": np\.array\(\[(\[[0-9, ]*\])\]\)', snippet).group(1))
    node = re.search(r"# node (\S+)", snippet).group(1)
    with torch.no_grad():
        _, acts = CircuitModel(run.run.model, run.means, c.node_ids)(torch.tensor([ids]), torch.ones(len(c.node_ids)),
                                                                     torch.tensor([json.loads(re.search(r'"answers": np\.array\(\[(\[[0-9, ]*\])\]\)', snippet).group(1))]))
    assert got == pytest.approx(float(acts[0, -1, c.node_ids.index(node)]), abs=1e-4)


def complete_site(out):
    """Whether `out` holds a whole site: every file its manifest lists, with that content."""
    manifest = json.loads((out / "manifest.json").read_text())
    return all(hashlib.sha256((out / rel).read_bytes()).hexdigest() == entry["sha256"]
               for rel, entry in manifest["files"].items())


KILLED_BUILD = """
import sys, time
from pathlib import Path
from exporter import build as b
from tests.conftest import fast_options
pause = float(sys.argv[3])
if pause:  # widen the moments around the swap so the kill can land there
    publish = b.publish
    def slow_publish(tmp, out):
        time.sleep(pause); publish(tmp, out); time.sleep(pause)
    b.publish = slow_publish
print("building", flush=True)
b.build([Path(sys.argv[1])], Path(sys.argv[2]), fast_options(onnx=False, jobs=1))
"""


def test_a_killed_build_always_leaves_a_whole_site_and_the_next_build_cleans_up(old_site, site_runs, tmp_path):
    out, before = old_site
    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "killed_build.py"
    script.write_text(KILLED_BUILD)
    left = []
    for delay, pause in [(0.3, 0), (1.0, 0), (2.0, 0), (3.0, 0.5), (0.5, 0.5), (4.0, 0.3)]:
        proc = subprocess.Popen([sys.executable, str(script), str(site_runs["a"]), str(out), str(pause)], cwd=root,
                                env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE)
        proc.stdout.readline()  # started
        time.sleep(delay)
        proc.kill()
        proc.wait()
        assert complete_site(out), f"killed after {delay} s"
        left += [p.name for p in tmp_path.iterdir() if p.name.startswith(".site.building-")]
    assert left  # what a killed build leaves behind...
    build([site_runs["a"]], out, fast_options(onnx=False))
    assert complete_site(out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site")) == [".site.lock"]  # ...is cleaned


def test_a_build_killed_between_two_renames_is_undone_by_the_next(old_site, site_runs, monkeypatch):
    out, before = old_site
    monkeypatch.setattr(build_module, "exchange_paths", lambda a, b: False)  # a system without an atomic swap
    real_replace = os.replace
    calls = []

    def killed_after_first_rename(src, dst):
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            raise KeyboardInterrupt  # stands in for a kill between the renames
    monkeypatch.setattr(build_module.os, "replace", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        build([site_runs["a"]], out, fast_options(onnx=False))
    monkeypatch.setattr(build_module.os, "replace", real_replace)
    assert not out.exists()  # the window a system without a swap has
    build([site_runs["a"]], out, fast_options(onnx=False))  # puts the previous site back first, then replaces it
    assert complete_site(out)


def test_a_second_build_into_the_same_folder_is_refused_while_the_first_runs(old_site, site_runs):
    out, before = old_site
    lock = out.parent / ".site.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running build holds it
        result = run_cli(site_runs["a"], "-o", out)
        assert "another circexport build is writing" in one_error_line(result)
    finally:
        os.close(fd)
    assert (out / "manifest.json").read_bytes() == before
    assert run_cli(site_runs["a"], "-o", out).exit_code == 0  # once the first has ended


def test_an_output_folder_that_holds_or_lies_in_an_input_run_is_refused(site_runs, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(site_runs["b"], runs / "tiny-b")
    before = folder_hash(runs)
    for out in (runs, runs / "tiny-b", runs / "tiny-b" / "site"):
        result = run_cli(runs / "tiny-b", "-o", out)
        assert "overlaps the input run" in one_error_line(result) and "choose an -o outside every run" in result.output
    assert folder_hash(runs) == before  # nothing deleted, nothing written


def test_a_run_trained_on_another_corpus_builds_and_says_why_its_tables_differ(site_runs, tmp_path):
    run = tmp_path / "other-python"
    shutil.copytree(site_runs["b"], run)
    config = json.loads((run / "config.json").read_text())
    assert config["provenance"]["corpus_sha256"]  # the fixture run records its corpus: this machine's
    same = run_cli(run, "-o", tmp_path / "same")
    assert same.exit_code == 0 and "warning" not in same.output
    config["provenance"].update(corpus_sha256="0" * 64, python="3.9.0")  # as if trained on another Python's stdlib
    (run / "config.json").write_text(json.dumps(config))
    result = run_cli(run, "-o", tmp_path / "site")
    assert result.exit_code == 0  # the site is built, and the build says why it differs from one on Python 3.9.0
    warning = next(line for line in result.output.splitlines() if line.startswith("warning: "))
    assert f"{run}: its activation tables are sampled from this machine's corpus" in warning
    assert "(000000000000…, Python 3.9.0)" in warning and "build on that Python version for the same site" in warning


def test_the_manifest_reads_back_and_guards_what_a_rebuild_would_delete(old_site, site_runs, tmp_path):
    from trainer.schema import read_manifest

    out, _ = old_site
    manifest = json.loads((out / "manifest.json").read_text())
    assert read_manifest(manifest, out / "manifest.json") == manifest  # what the build writes reads back equal
    (out / "tiny-a" / "notes.txt").write_text("mine")  # a file of the user's inside the site
    before = folder_hash(out)
    line = one_error_line(run_cli(site_runs["b"], "-o", out))
    assert str(out) in line and "1 file(s) the build did not write (tiny-a/notes.txt)" in line
    assert folder_hash(out) == before
    other = tmp_path / "app"  # a folder with a manifest.json that is not ours (a web app's, say)
    other.mkdir()
    (other / "manifest.json").write_text('{"name": "my app", "icons": []}')
    line = one_error_line(run_cli(site_runs["b"], "-o", other))
    assert "manifest.json: field format_version: missing; this folder is not a site circexport built" in line
    assert (other / "manifest.json").read_text() == '{"name": "my app", "icons": []}'
