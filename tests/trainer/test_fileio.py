"""Tests of the shared file helpers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from trainer.fileio import atomic_write_bytes


def test_atomic_write_replaces_content_and_follows_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.json"
    old = os.umask(0o022)
    try:
        atomic_write_bytes(path, b"one")
        atomic_write_bytes(path, b"two")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by others, like any file the user writes
        os.umask(0o077)
        atomic_write_bytes(path, b"three")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert path.read_bytes() == b"three"
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]  # no temporary file left
