"""The C heap in use, as glibc's allocator counts it (``mallinfo2``): for tests and benchmarks of
the memory a stream holds. Heap in use rather than resident memory: which pages are resident
depends on where the allocator put things and on which pages were touched before; bytes in use
only on what was allocated and not freed."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

#: glibc's ``struct mallinfo2``: ten ``size_t`` counters, in this order.
_COUNTERS = (
    "arena",
    "ordblks",
    "smblks",
    "hblks",
    "hblkhd",
    "usmblks",
    "fsmblks",
    "uordblks",
    "fordblks",
    "keepcost",
)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _COUNTERS]


def _mallinfo2() -> Callable[[], _Mallinfo2] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):  # not glibc, or glibc before 2.33
        return None
    function.restype = _Mallinfo2
    return function


_MALLINFO2 = _mallinfo2()

#: Whether :func:`heap_in_use` can count (glibc 2.33 or later).
AVAILABLE = _MALLINFO2 is not None


def heap_in_use() -> int | None:
    """Bytes allocated by malloc and not freed, over every arena, mmapped blocks included;
    None where glibc's ``mallinfo2`` is missing."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return int(info.uordblks + info.hblkhd)
