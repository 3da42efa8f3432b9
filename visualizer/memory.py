"""How the tool holds memory on long inputs: the row chunks of passes over [rows, n] tensors, the
C allocator setting that lets chunk-sized temporaries be reused, and huge pages for large tensors.

Why both: every elementwise step over a [T, vocab] tensor (log-softmax, exp, a product) allocates a
fresh result. glibc's malloc maps allocations above its mmap threshold (which adapts, up to 32 MiB)
straight from the kernel and unmaps them when freed, so each new temporary's pages are faulted in
and zeroed again: a 1,024-token GPT-2-small report faulted 60 GB this way, 40 s of kernel time.
Passes that walk rows in chunks of at most CHUNK_BYTES per [rows, n] tensor, with a fixed mmap
threshold above that size, reuse the same heap memory chunk after chunk. Tensors larger than the
threshold (the cache itself) are still mapped and returned when freed, and the heap keeps at most
TRIM_BYTES of free memory at its top, so the peak grows by little.

Large tensors (a long probe's cache is GBs: attention scores and patterns of every layer) are
faulted in 4 KiB page by page unless torch asks the kernel for transparent huge pages, which it does
for allocations of 2 MiB and more when THP_MEM_ALLOC_ENABLE=1 is in the environment before torch
allocates anything (measured: deriving 12 layers' [12, 1024, 1024] patterns 0.55 -> 0.35 s). The
command line sets it (a value the user set is kept); where the kernel has no transparent huge
pages it changes nothing.

What this module does not do: decide what is computed (analysis/), or change any number: a chunk's
rows are computed by the same operations as the whole tensor's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

CHUNK_BYTES = 32 << 20  # one [rows, n] float32 temporary of a chunked pass
MMAP_THRESHOLD = 40 << 20  # larger allocations are mapped (and unmapped when freed)
TRIM_BYTES = 128 << 20  # free memory the heap may keep at its top before returning it
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def row_chunks(rows: int, row_bytes: int, budget: int = CHUNK_BYTES) -> list[slice]:
    """Slices covering range(rows) in order, each of at most max(1, budget // row_bytes) rows."""
    step = max(1, budget // max(1, row_bytes))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def tune_allocator() -> bool:
    """Set glibc malloc's mmap and trim thresholds (above); False (and nothing changed) where the C
    library is not glibc. Called once by the command line, before any large allocation."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))


def enable_huge_pages() -> None:
    """Ask torch for transparent huge pages on large CPU tensors (above); call before torch is
    imported. A THP_MEM_ALLOC_ENABLE the user set wins."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
