"""Writing the site: jinja2 pages from web_template/, JSONP data shards, static assets and vendored libraries."""

from __future__ import annotations

import base64
import json
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jinja2

from trainer.errors import UserError

# web_template/ sits next to the exporter package: at the repository root in a checkout, and in
# site-packages after `pip install .` (it is shipped as package data).
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "web_template"
ASSETS = "assets"
# Vendored files the pages also need as text (ES modules, and the runtime the live panel starts in a Blob-URL worker).
TEXT_TWINS = ("*.mjs", "ort.wasm.min.js")


def template_dir() -> Path:
    """The web_template folder, or a UserError when the install lacks it."""
    if not (TEMPLATE_DIR / "pages" / "base.html").is_file():
        raise UserError(f"{TEMPLATE_DIR}: the site templates are missing; reinstall circexport (pip install circexport)")
    return TEMPLATE_DIR


def package_version() -> str:
    """The installed circexport version (shown in page footers)."""
    try:
        return version("circexport")
    except PackageNotFoundError:
        return "0+unknown"


def shard_text(key: str, data: Any) -> str:
    """A data shard: a classic script that hands its data to the page (`cx.register(key, data)`), never fetched."""
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return f"cx.register({json.dumps(key)},{body});\n"


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table cell: ints with thousands separators, floats with `digits` decimals, None as a dash."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


class SiteWriter:
    """Writes pages, shards and files under one root folder (the build's temporary folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        tdir = template_dir()
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tdir / "pages")), autoescape=True,
                                      undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                      keep_trailing_newline=True)
        self.env.filters["fmt"] = fmt
        self.version = package_version()

    def write(self, rel: str, data: bytes | str) -> None:
        """Write one file of the site (rel is a POSIX path under the root)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    def page(self, rel: str, template: str, **ctx: Any) -> None:
        """Render a page; `root` is the relative prefix back to the site root, so every link is relative."""
        root = "../" * rel.count("/")
        html = self.env.get_template(template).render(root=root, path=rel, version=self.version, **ctx)
        self.write(rel, html)

    def shard(self, rel: str, key: str, data: Any) -> None:
        """Write a JSONP data shard."""
        self.write(rel, shard_text(key, data))

    def copy_assets(self) -> None:
        """CSS and JS of the pages, and the vendored libraries with their licenses, into assets/. A vendored
        `X.gz` is shipped as the classic script `X.gz.js` (base64; pages never fetch, so that file:// works), and the
        files matching TEXT_TWINS also as classic scripts `X.js` holding their text."""
        tdir = template_dir()
        shutil.copytree(tdir / "static", self.root / ASSETS, dirs_exist_ok=True)
        for lib in sorted(p for p in (tdir / "vendor").iterdir() if p.is_dir()):
            rel = f"{ASSETS}/vendor/{lib.name}"
            shutil.copytree(lib, self.root / rel, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.gz"))
            for gz in sorted(lib.glob("*.gz")):
                self.write(f"{rel}/{gz.name}.js", base64_twin(f"vendor/{lib.name}/{gz.name}", gz.read_bytes()))
            for src in sorted(p for pattern in TEXT_TWINS for p in lib.glob(pattern)):
                self.shard(f"{rel}/{src.name}.js", f"vendor/{lib.name}/{src.name}", src.read_text(encoding="utf-8"))


def base64_twin(key: str, data: bytes) -> str:
    """Bytes as a classic script (`cx.register(key, "<base64>")`), for pages opened from file://."""
    return f"cx.register({json.dumps(key)}, \"{base64.b64encode(data).decode('ascii')}\");\n"
