"""Giving the C heap's free memory back to the system after a full sync.

A full sync builds the plan of every service and, on a restart, holds the table read back
while it compares; freed, most of that stays in the C allocator's heap as free pages the
process keeps (~13 MB at 10k services x 10 endpoints). glibc's ``malloc_trim(0)`` returns
them (~1-2 ms). Elsewhere (musl has no ``malloc_trim``) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        fn: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return fn


def trim() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
