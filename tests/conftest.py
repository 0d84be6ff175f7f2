"""Session fixtures shared by the exporter and browser tests: real runs with circuits, and one site built from them."""

from __future__ import annotations

import pytest

from tests.fixture_runs import XSS, make_runs


@pytest.fixture(scope="session")
def token_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("token-cache")


@pytest.fixture(scope="session")
def site_runs(tmp_path_factory, token_cache):
    """{"a": tiny run with three circuits, "b": the same model without circuits}."""
    return make_runs(tmp_path_factory.mktemp("runs"), token_cache)


def fast_options(**kw):
    """Build options small enough for tests."""
    from exporter.build import BuildOptions
    from exporter.tables import TableConfig

    return BuildOptions(tables=TableConfig(tokens=4096, examples=4, task_pairs=8), quiet=True, **kw)


def hostile_strings(tok, vocab_size):
    """Token texts where every fifth token is an HTML injection attempt (the site must show it as text)."""
    from exporter.tables import token_strings

    return [XSS if i % 5 == 0 else s for i, s in enumerate(token_strings(tok, vocab_size))]


@pytest.fixture(scope="session")
def site(tmp_path_factory, site_runs):
    """One site built from both runs, with hostile token texts; returns (site folder, BuildReport)."""
    from exporter import pages
    from exporter.build import build

    out = tmp_path_factory.mktemp("site") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pages, "token_strings", hostile_strings)
        report = build([site_runs["a"], site_runs["b"]], out, fast_options())
    return out, report
