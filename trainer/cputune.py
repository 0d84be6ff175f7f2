"""glibc malloc tuning: for training, keep freed activation buffers in the process; for jobs on large models, hand
them back at once."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes a C int: never trim the heap top in practice
OWN_MAPPING_FROM = 1 << 20  # bytes: blocks from this size get their own mapping (return_freed_memory)


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt, or None where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


def return_freed_memory() -> bool:
    """Tell glibc malloc to map every block of 1 MB or more on its own, so that it goes back to the OS when freed.

    With glibc's defaults, blocks up to 32 MB come from the heap once a large one has been freed, and a job that
    allocates many such blocks in turn (the ONNX export of a 156M-parameter model, its forward passes) holds
    freed heap pages: its peak RSS is ~0.5 GB above what it uses. Mapping costs page faults (a build of such a
    model takes ~30 % longer), so only jobs on large models call this. Returns False where nothing changed.
    """
    mallopt = _mallopt()
    ok = mallopt is not None and mallopt(M_MMAP_THRESHOLD, OWN_MAPPING_FROM) == 1
    log.debug("glibc malloc set to return freed blocks: %s", ok)
    return ok


def keep_freed_memory() -> bool:
    """Tell glibc malloc to reuse freed blocks up to 32 MB instead of returning them to the OS after each op.

    Every training step allocates and frees the same activation tensors; with glibc's defaults the
    large ones are mmapped and unmapped each time, and touching fresh pages costs more than the
    elementwise ops themselves (AbsTopK's numpy masks make it worse). Returns False where the C
    library is not glibc (nothing changes there).
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    log.debug("glibc malloc tuned for training: %s", ok)
    return ok
