"""`circexport serve`: preview a built site over http on 127.0.0.1 (the site itself needs no server)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

from trainer.errors import UserError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files from the site folder; logs only errors."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".mjs": "text/javascript", ".wasm": "application/wasm",  # ES modules and wasm need their types
                      ".onnx": "application/octet-stream", ".json": "application/json"}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Log 4xx/5xx responses only."""
        if len(args) > 1 and str(args[1])[:1] in "45":
            super().log_message(format, *args)


def make_server(site: Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """An http server for the site folder on 127.0.0.1 (port 0 picks a free one)."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise UserError(f"{site}: no index.html; build a site first (circexport build -o {site})")
    handler = functools.partial(_QuietHandler, directory=str(site.resolve()))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as e:
        raise UserError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}; choose another --port") from None


def serve(site: Path, port: int = 8000) -> None:
    """Serve the site until Ctrl-C."""
    server = make_server(site, port)
    print(f"serving {site} at http://127.0.0.1:{server.server_address[1]}/index.html (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def serve_in_thread(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve the site from a daemon thread on a free port; returns the server and its base URL (for tests)."""
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"
