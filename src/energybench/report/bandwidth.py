"""Memory bandwidth of this machine: the ceiling of the decode roofline.

Decode in llama.cpp is memory bound: every generated token reads (about) the whole model once, so
``tokens/s <= memory bandwidth / bytes read per token`` (~ the model file size), and llama.cpp
reaches ~50-80 % of it on CPUs (roofline: Williams, Waterman, Patterson, CACM 2009; llama.cpp
discussions of memory-bound decode). The runner calls
:func:`measure_memory_bandwidth` once per sweep and stores the result in ``metadata.json`` as
``memory_bandwidth_gbs``; ``energybench report --measure-bandwidth`` calls it when that key is absent.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from energybench.errors import UsageError

#: Array size per copy: well above any last-level cache (EPYC/Xeon L3 are 32-105 MB per socket),
#: small enough to stay quick (two arrays of this size are allocated).
DEFAULT_SIZE_MB = 256


def _copy_once(src: np.ndarray, dst: np.ndarray, n_threads: int) -> float:
    """Copy ``src`` into ``dst`` with ``n_threads`` threads (numpy releases the GIL); seconds taken."""
    if n_threads <= 1:
        t0 = time.perf_counter()
        np.copyto(dst, src)
        return time.perf_counter() - t0
    bounds = np.linspace(0, src.size, n_threads + 1).astype(np.int64)
    barrier = threading.Barrier(n_threads + 1)

    def work(lo: int, hi: int) -> None:
        barrier.wait()
        np.copyto(dst[lo:hi], src[lo:hi])

    threads = [threading.Thread(target=work, args=(int(bounds[i]), int(bounds[i + 1])), daemon=True)
               for i in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def measure_memory_bandwidth(*, size_mb: int = DEFAULT_SIZE_MB, repeats: int = 5,
                             n_threads: int | None = None) -> float:
    """Measure the machine's memory bandwidth in GB/s (10^9 bytes/s) with a numpy copy (STREAM "copy").

    Each copy reads ``size_mb`` MiB and writes as much; the bandwidth counted is (read + write bytes)
    / time, best of ``repeats`` (the first touch of the destination is excluded by a warm-up copy).
    ``n_threads``: copy threads (default: the CPUs this process may use), as llama.cpp decodes with
    several threads. Takes well under a second on a typical machine.
    """
    if size_mb < 1:
        raise UsageError(f"size_mb={size_mb} is too small", hint="use at least 1 MiB (default 256)")
    if repeats < 1:
        raise UsageError(f"repeats={repeats} must be >= 1")
    if n_threads is None:
        try:
            n_threads = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n_threads = os.cpu_count() or 1
    n_threads = max(1, int(n_threads))
    n = size_mb * 1024 * 1024 // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    _copy_once(src, dst, n_threads)  # page in the destination
    best = min(_copy_once(src, dst, n_threads) for _ in range(repeats))
    return 2.0 * src.nbytes / max(best, 1e-9) / 1e9
