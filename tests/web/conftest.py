"""Browser fixtures shared by the web tests: Debian's Chromium driven by Python playwright (never `playwright
install`), the built site opened from file:// and served over http, and a page that records errors and requests.

Skipped with the reason when Chromium or playwright is missing.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def playwright_api():
    """playwright.sync_api, or a skip (of the calling test module, when called at import) naming what is missing."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")


@pytest.fixture(scope="module")
def browser():
    with playwright_api().sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(site):
    from exporter.serve import serve_in_thread

    server, url = serve_in_thread(site[0])
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module", params=["file", "http"])
def base(request, site, served):
    return site[0].resolve().as_uri() + "/" if request.param == "file" else served


class Watch:
    """A page whose console errors, uncaught exceptions, dialogs and non-local requests are recorded."""

    def __init__(self, browser):
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.errors, self.remote, self.dialogs = [], [], []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.context.on("request", self._request)

    def _request(self, request):
        url = urlparse(request.url)
        if url.scheme not in ("file", "data", "blob") and url.hostname != "127.0.0.1":
            self.remote.append(request.url)

    def goto(self, url):
        self.page.goto(url, wait_until="load")
        return self.page

    def clean(self):
        assert not self.errors, self.errors
        assert not self.remote, self.remote
        assert not self.dialogs, self.dialogs

    def close(self):
        self.context.close()


@pytest.fixture
def watch(browser):
    w = Watch(browser)
    yield w
    w.close()
