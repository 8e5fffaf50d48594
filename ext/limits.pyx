# cython: language_level=3
"""Machine-limit probes for benchmarks/kernels.py, compiled with the kernels' own flags.

``division_rate`` measures how many floating-point divisions per second the cores sustain when
nothing else limits them: every thread divides an L1-resident array by another, element-wise and
independently (the compiler vectorises the loop exactly as it vectorises Canberra's), so the
divider's throughput is the only bound. The Canberra kernel's fraction of this figure says how
close to the hardware it runs.
"""

from cython cimport floating
from cython.parallel cimport prange

import time

import numpy as np

cdef enum:
    PROBE_LEN = 2048  # 8-16 KiB per array: three arrays stay in L1


cdef double _divide_rounds(floating* a, floating* b, floating* c, long rounds) noexcept nogil:
    cdef long r
    cdef Py_ssize_t i
    cdef double s = 0
    for r in range(rounds):
        for i in range(PROBE_LEN):
            c[i] = a[i] / b[i]
        # feed one result back so that the rounds cannot be collapsed into one
        a[r % PROBE_LEN] = c[(r * 7) % PROBE_LEN] * <floating> 0.5 + <floating> 1
    for i in range(PROBE_LEN):
        s += c[i]
    return s


def division_rate(dtype, int threads, double seconds=0.5):
    """Divisions per second that ``threads`` cores sustain (float32 or float64).

    Timed in process CPU time and scaled by ``threads``: the capability of that many cores,
    not diminished by other processes that share the machine while it runs.
    """
    dt = np.dtype(dtype)
    data = np.random.default_rng(0).uniform(1.0, 2.0, (threads, 3, PROBE_LEN)).astype(dt)
    cdef long rounds = 1000
    cdef int t
    cdef double elapsed = 0.0, sink = 0.0
    cdef float[:, :, ::1] f
    cdef double[:, :, ::1] g
    while True:
        start = time.process_time()
        if dt == np.float32:
            f = data
            for t in prange(threads, nogil=True, num_threads=threads, schedule="static"):
                sink += _divide_rounds(&f[t, 0, 0], &f[t, 1, 0], &f[t, 2, 0], rounds)
        else:
            g = data
            for t in prange(threads, nogil=True, num_threads=threads, schedule="static"):
                sink += _divide_rounds(&g[t, 0, 0], &g[t, 1, 0], &g[t, 2, 0], rounds)
        elapsed = time.process_time() - start
        if elapsed >= seconds or sink != sink:
            break
        rounds *= 2
    return threads * (threads * rounds * PROBE_LEN / elapsed)
