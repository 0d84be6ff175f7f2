"""Small file helpers shared by every stage: atomic writes, canonical JSON, sha256."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from trainer.errors import UserError

AT_FDCWD, RENAME_EXCHANGE = -100, 2  # renameat2's "relative to the working directory" and "swap the two paths"


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A new file that replaces `path` in one step when the with-block ends without error; readers see either the
    old content or the new, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; a run's files are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2 with RENAME_EXCHANGE): at every instant each name holds
    one of the two. False where the system or the file system cannot (nothing is changed then)."""
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if sys.platform.startswith("linux") else None
    if rename is None:
        return False
    if rename(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (see atomic_file)."""
    with atomic_file(path) as f:
        f.write(data)


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def significant(x: float, digits: int = 4) -> float:
    """x rounded to `digits` significant digits, the one rounding rule of the files we write (0.0 where not finite:
    a reader of our JSON never meets NaN)."""
    x = float(x)
    return 0.0 if x == 0 or not math.isfinite(x) else float(f"{x:.{digits}g}")


def rounded(obj: Any, digits: int = 6) -> Any:
    """Every float in a JSON-like value rounded to `digits` significant digits (byte-identical files)."""
    if isinstance(obj, float):
        return significant(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


def dump_json(obj: Any, inline_rows: bool = False) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline; with inline_rows, each list of scalars (a row
    of a table) on one line."""
    if not inline_rows:
        return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return _dump_rows(obj, 0) + "\n"


def _dump_rows(obj: Any, depth: int) -> str:
    """json.dumps(obj, sort_keys=True, indent=2), except that a list of scalars stays on one line."""
    pad, end = "  " * (depth + 1), "  " * depth
    if isinstance(obj, dict) and obj:
        fields = (f"{pad}{json.dumps(k, ensure_ascii=False)}: {_dump_rows(obj[k], depth + 1)}" for k in sorted(obj))
        return "{\n" + ",\n".join(fields) + f"\n{end}}}"
    if isinstance(obj, list) and any(isinstance(x, (dict, list)) for x in obj):
        return "[\n" + ",\n".join(pad + _dump_rows(x, depth + 1) for x in obj) + f"\n{end}]"
    return json.dumps(obj, ensure_ascii=False)  # a scalar, an empty object, a row


def write_json(path: Path, obj: Any) -> None:
    """Atomically write canonical JSON."""
    atomic_write_bytes(path, dump_json(obj).encode())


def read_json(path: Path) -> Any:
    """Read a JSON file, or raise a UserError naming it."""
    return parse_json(read_text(path), path)


def require_file(path: Path, fix: str = "") -> None:
    """A UserError naming path unless it is a file: a folder where the file should be, or not found (and the fix)."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a file; move the folder away and restore the file")
    if not path.is_file():
        raise UserError(f"{path}: file not found" + (f"; {fix}" if fix else ""))


def read_text(path: Path) -> str:
    """A UTF-8 text file's content, or a UserError naming it (missing, a folder, unreadable, not UTF-8)."""
    require_file(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); restore or regenerate the file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None


def overlaps(a: Path, b: Path) -> bool:
    """Whether two paths are the same, or one lies inside the other (links resolved)."""
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def check_destination(path: Path, option: str) -> None:
    """A UserError naming the option, before anything is written, when files cannot be written at `path`: a regular
    file stands in the way, or the nearest existing folder (path itself when it is one) is not writable: read-only,
    full, not permitted. A probe file is made and removed there (permission bits do not bind root)."""
    for above in (path.absolute(), *path.absolute().parents):
        if above.exists():
            if not above.is_dir():
                raise UserError(f"{option} {path}: {above} is a file, not a folder; choose another {option}")
            try:
                fd, probe = tempfile.mkstemp(dir=above, prefix=".circexport-probe-")
            except OSError as e:
                raise UserError(f"{option} {path}: cannot write in {above} ({e.strerror}); choose another {option}") from None
            os.close(fd)
            os.unlink(probe)
            return


def parse_json(text: str, where: Path | str) -> Any:
    """JSON text parsed, or a UserError naming where it came from."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e}); restore or regenerate the file") from None
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply; restore or regenerate the file") from None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
