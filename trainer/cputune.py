"""CPU memory tuning for training: keep freed activation buffers in the process instead of handing them back."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes a C int: never trim the heap top in practice


def keep_freed_memory() -> bool:
    """Tell glibc malloc to reuse freed blocks up to 32 MB instead of returning them to the OS after each op.

    Every training step allocates and frees the same activation tensors; with glibc's defaults the
    large ones are mmapped and unmapped each time, and touching fresh pages costs more than the
    elementwise ops themselves (AbsTopK's numpy masks make it worse). Returns False where the C
    library is not glibc (nothing changes there).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    log.debug("glibc malloc tuned for training: %s", ok)
    return ok
