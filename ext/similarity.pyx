# cython: language_level=3
"""Compiled similarity kernels: thresholded pairs, top-k and pair scores.

The Python module ``profiling.similarity`` owns the metric registry, validation and the score
convention; this module only computes. Every function here takes prepared, C-contiguous arrays
and *local* row indices; the caller maps indices back and sorts.

Score convention (see ``profiling.similarity``): every metric yields a DISTANCE, lower = more
similar. Inside the kernels a metric is computed as a *key* in the input precision (a sum of
squares for Euclidean, ``-dot`` of pre-normalised rows for Pearson/cosine, ``-|dot|`` for squared
cosine, the plain sum for Manhattan/Canberra); ``_final`` turns a key into the distance in float64
and is monotone non-decreasing in the key. ``_key_bound`` gives a key that is >= every key whose
distance is <= a bound, so tiles are filtered on keys (cheap, vectorised) and the survivors are
checked exactly on the distance that is returned: an edge is emitted iff its returned score is
<= the threshold.

Two engines:

- ``tile_*``: every profile metric on NaN-free rows. A panel of JB library columns is packed
  k-major (``P[k*JB + lane]``) once and swept by blocks of 4-6 rows with the register-blocked
  micro-kernels of ``tiles.h``; each block's keys (at most 6 x JB values, in L1) are scanned for
  the threshold, or offered to the top-k heaps, straight away. Pearson and cosine run on rows that
  the caller centred/normalised, so their key is ``-dot``: this fused kernel is a small GEMM whose
  output never leaves L1 (it measured faster than BLAS sgemm/dgemm on cache-sized tiles followed
  by a scan, for d = 24), and no BLAS is called inside the parallel region.
- ``set_*``: Jaccard and Dice on bit-packed uint64 sets with popcount. Library rows are sorted
  by set size; for sizes (|A|, |B|) the threshold becomes a minimum intersection ``need[|A|, |B|]``
  computed with the very division that produces the score, so the hot loop is AND + popcount +
  compare (4 rows per AVX2 step), size pairs that cannot link are skipped whole, and the edge set
  is exact.

``generic_*`` and ``pair_scores`` compute one pair at a time with pairwise deletion of NaN
(a compound missing in either profile is skipped); they handle every pair that involves a row
with a NaN, and arbitrary index pairs. They accumulate in float64 whatever the input precision.

Parallelism: ``prange`` under ``nogil`` with an explicit ``num_threads``; every thread owns its
edge buffer (grown geometrically), its panel and its tile; nothing is shared but read-only input.
"""

cimport cython
from cython cimport floating
from cython.parallel cimport prange, parallel, threadid
from libc.math cimport sqrt, sqrtf, fabs, fabsf, NAN, INFINITY, nextafterf
from libc.stdint cimport int64_t, uint64_t, int32_t, INT64_MAX
from libc.string cimport memcpy
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawRealloc, PyMem_RawFree

import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef extern from "tiles.h" nogil:
    int prof_popcount64(uint64_t x)
    Py_ssize_t prof_set_scan(const uint64_t* a, const uint64_t* b, Py_ssize_t w, Py_ssize_t n,
                             long long need, Py_ssize_t* hits)


# --------------------------------------------------------------------------------------------
# Metric codes. profiling.similarity maps its registry's names onto these.
# --------------------------------------------------------------------------------------------
cdef extern from "tiles.h":
    enum:
        M_PEARSON "PROF_PEARSON"
        M_COSINE "PROF_COSINE"
        M_SQCOSINE "PROF_SQCOSINE"
        M_EUCLIDEAN "PROF_EUCLIDEAN"
        M_MANHATTAN "PROF_MANHATTAN"
        M_CANBERRA "PROF_CANBERRA"
        M_JACCARD "PROF_JACCARD"
        M_DICE "PROF_DICE"

METRIC_CODES = {
    "pearson": M_PEARSON,
    "cosine": M_COSINE,
    "squared_cosine": M_SQCOSINE,
    "euclidean": M_EUCLIDEAN,
    "manhattan": M_MANHATTAN,
    "canberra": M_CANBERRA,
    "jaccard": M_JACCARD,
    "dice": M_DICE,
}

# Tile geometry: a panel holds d x JB values (24 x 128 doubles or 24 x 256 floats = 24 KiB, in
# L1 for d = 24) and is reused by every row block that sweeps it. Top-k sweeps a panel with
# QB_TOPK queries at a time.
cdef enum:
    JB_F32 = 256
    JB_F64 = 128
    QB_TOPK = 256


# --------------------------------------------------------------------------------------------
# Key -> distance, and the inverse bound used to filter tiles.
# --------------------------------------------------------------------------------------------
cdef inline double _final(int code, double key) noexcept nogil:
    """Distance from a kernel key; monotone non-decreasing in ``key``."""
    cdef double v
    if code == M_EUCLIDEAN:
        return sqrt(key)
    if code == M_PEARSON or code == M_COSINE:
        v = 1.0 + key
        if v < 0.0:
            return 0.0
        if v > 2.0:
            return 2.0
        return v
    if code == M_SQCOSINE:
        v = 1.0 - key * key
        if v < 0.0:
            return 0.0
        if v > 1.0:
            return 1.0
        return v
    return key


cdef inline double _key_bound(int code, double dist) noexcept nogil:
    """A key >= every key whose ``_final`` is <= ``dist`` (conservative by a few ulps)."""
    cdef double r
    if dist != dist:
        return -INFINITY
    if dist == INFINITY:
        return INFINITY
    if code == M_EUCLIDEAN:
        return dist * dist * (1.0 + 1e-14) + 1e-300
    if code == M_PEARSON or code == M_COSINE:
        if dist >= 2.0:
            return INFINITY
        return dist - 1.0 + 1e-15
    if code == M_SQCOSINE:
        if dist >= 1.0:
            return INFINITY
        r = 1.0 - dist - 1e-15
        if r <= 0.0:
            return 0.0
        return -sqrt(r) + 1e-15
    return dist


cdef inline floating _key_bound_t(int code, double dist, floating dummy) noexcept nogil:
    """``_key_bound`` rounded up into the input precision."""
    return _widen(_key_bound(code, dist), dummy)


cdef inline floating _widen(double b, floating dummy) noexcept nogil:
    """``b`` rounded up into the precision of ``dummy``."""
    cdef float bf
    if floating is float:
        bf = <float> b
        if bf == bf and <double> bf < b:
            bf = nextafterf(bf, INFINITY)
        return bf
    else:
        return b


def final_scores(int code, keys):
    """Distances for an array of keys (exposed for tests of the key/bound contract)."""
    cdef double[::1] k = np.ascontiguousarray(keys, dtype=np.float64)
    out = np.empty(k.shape[0], dtype=np.float64)
    cdef double[::1] o = out
    cdef Py_ssize_t a
    for a in range(k.shape[0]):
        o[a] = _final(code, k[a])
    return out


def key_bound(int code, double dist):
    """A key >= every key whose distance is <= ``dist`` (the tiles' filter, before widening)."""
    return _key_bound(code, dist)


# --------------------------------------------------------------------------------------------
# Per-thread edge buffers, grown geometrically, then concatenated once.
# --------------------------------------------------------------------------------------------
cdef struct EdgeBuf:
    int64_t* i
    int64_t* j
    double* s
    Py_ssize_t n
    Py_ssize_t cap
    int failed


cdef int _buf_grow(EdgeBuf* b) noexcept nogil:
    cdef Py_ssize_t cap = b.cap * 2 if b.cap else 4096
    cdef void* pi = PyMem_RawRealloc(b.i, cap * sizeof(int64_t))
    if pi == NULL:
        b.failed = 1
        return -1
    b.i = <int64_t*> pi
    cdef void* pj = PyMem_RawRealloc(b.j, cap * sizeof(int64_t))
    if pj == NULL:
        b.failed = 1
        return -1
    b.j = <int64_t*> pj
    cdef void* ps = PyMem_RawRealloc(b.s, cap * sizeof(double))
    if ps == NULL:
        b.failed = 1
        return -1
    b.s = <double*> ps
    b.cap = cap
    return 0


cdef inline int _push(EdgeBuf* b, int64_t i, int64_t j, double s) noexcept nogil:
    if b.n == b.cap:
        if _buf_grow(b) != 0:
            return -1
    b.i[b.n] = i
    b.j[b.n] = j
    b.s[b.n] = s
    b.n += 1
    return 0


cdef EdgeBuf* _bufs_new(int nthreads) except NULL:
    cdef EdgeBuf* bufs = <EdgeBuf*> PyMem_RawMalloc(nthreads * sizeof(EdgeBuf))
    if bufs == NULL:
        raise MemoryError()
    cdef int t
    for t in range(nthreads):
        bufs[t].i = NULL
        bufs[t].j = NULL
        bufs[t].s = NULL
        bufs[t].n = 0
        bufs[t].cap = 0
        bufs[t].failed = 0
    return bufs


cdef tuple _bufs_collect(EdgeBuf* bufs, int nthreads):
    """Concatenate and free the per-thread buffers; raise MemoryError if any growth failed."""
    cdef Py_ssize_t total = 0, off = 0
    cdef int t
    cdef bint failed = False
    for t in range(nthreads):
        total += bufs[t].n
        failed = failed or bufs[t].failed
    if failed:
        _bufs_free(bufs, nthreads)
        raise MemoryError("similarity kernel could not grow its edge buffer")
    ii = np.empty(total, dtype=np.int64)
    jj = np.empty(total, dtype=np.int64)
    ss = np.empty(total, dtype=np.float64)
    cdef int64_t[::1] vi = ii
    cdef int64_t[::1] vj = jj
    cdef double[::1] vs = ss
    for t in range(nthreads):
        if bufs[t].n:
            memcpy(&vi[off], bufs[t].i, bufs[t].n * sizeof(int64_t))
            memcpy(&vj[off], bufs[t].j, bufs[t].n * sizeof(int64_t))
            memcpy(&vs[off], bufs[t].s, bufs[t].n * sizeof(double))
            off += bufs[t].n
    _bufs_free(bufs, nthreads)
    return ii, jj, ss


cdef void _bufs_free(EdgeBuf* bufs, int nthreads) noexcept:
    cdef int t
    for t in range(nthreads):
        PyMem_RawFree(bufs[t].i)
        PyMem_RawFree(bufs[t].j)
        PyMem_RawFree(bufs[t].s)
    PyMem_RawFree(bufs)


# --------------------------------------------------------------------------------------------
# Tile scans: a row of keys against a threshold, or against a query's top-k heap.
# --------------------------------------------------------------------------------------------
cdef inline double _exact_key(int code, const double* x, const double* y,
                              Py_ssize_t d) noexcept nogil:
    """float64 key of one NaN-free pair (re-scoring a candidate of a float32 filter)."""
    cdef double s = 0.0, t, den
    cdef Py_ssize_t k
    if code == M_EUCLIDEAN:
        for k in range(d):
            t = x[k] - y[k]
            s += t * t
        return s
    if code == M_MANHATTAN:
        for k in range(d):
            s += fabs(x[k] - y[k])
        return s
    if code == M_CANBERRA:
        for k in range(d):
            den = fabs(x[k]) + fabs(y[k])
            s += fabs(x[k] - y[k]) / (den + (den == 0))
        return s
    for k in range(d):
        s += x[k] * y[k]
    return -fabs(s) if code == M_SQCOSINE else -s


cdef inline int _scan_threshold(int code, const floating* keys, Py_ssize_t lo, Py_ssize_t hi,
                                floating cut, double threshold, int64_t i, int64_t j0,
                                EdgeBuf* buf, const double* xe, const double* Ye,
                                Py_ssize_t d) noexcept nogil:
    """Push the lanes lo..hi of a row of keys whose distance is <= threshold.

    With ``xe`` (not NULL) the keys are a float32 filter of float64 data: a lane that passes the
    widened ``cut`` is re-scored from the float64 rows ``xe`` and ``Ye[j]`` before the test.
    """
    cdef Py_ssize_t jj, hits = 0
    cdef double s
    # Branch-free count first: almost every lane of almost every row fails.
    for jj in range(lo, hi):
        hits += keys[jj] <= cut
    if hits == 0:
        return 0
    for jj in range(lo, hi):
        if keys[jj] <= cut:
            if xe != NULL:
                s = _final(code, _exact_key(code, xe, Ye + (j0 + jj) * d, d))
            else:
                s = _final(code, keys[jj])
            if s <= threshold:
                if _push(buf, i, j0 + jj, s) != 0:
                    return -1
    return 0


cdef inline bint _worse(double da, int64_t ia, double db, int64_t ib) noexcept nogil:
    """(da, ia) ranks after (db, ib): larger distance, ties to the larger index."""
    return da > db or (da == db and ia > ib)


cdef inline void _heap_replace_top(double* hd, int64_t* hi, Py_ssize_t k, double dist,
                                   int64_t idx) noexcept nogil:
    """Max-heap on (distance, index): replace the worst entry and sift down."""
    cdef Py_ssize_t pos = 0, child
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        if child + 1 < k and _worse(hd[child + 1], hi[child + 1], hd[child], hi[child]):
            child += 1
        if _worse(hd[child], hi[child], dist, idx):
            hd[pos] = hd[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hd[pos] = dist
    hi[pos] = idx


cdef inline floating _offer_row(int code, const floating* keys, Py_ssize_t nj, int64_t j0,
                                floating cut, double* hd, int64_t* hi,
                                Py_ssize_t k) noexcept nogil:
    """Offer one row of keys to one query's heap; return the new key cut."""
    cdef Py_ssize_t jj, hits = 0
    cdef double s
    for jj in range(nj):
        hits += keys[jj] <= cut
    if hits == 0:
        return cut
    for jj in range(nj):
        if keys[jj] <= cut:
            s = _final(code, keys[jj])
            if s == s and _worse(hd[0], hi[0], s, j0 + jj):
                _heap_replace_top(hd, hi, k, s, j0 + jj)
                cut = _key_bound_t(code, hd[0], cut)
    return cut


# --------------------------------------------------------------------------------------------
# Tile engine: every profile metric. A panel of jb library columns is packed k-major once and
# swept by blocks of 4 rows with the register-blocked micro-kernels of tiles.h.
# --------------------------------------------------------------------------------------------
cdef extern from "tiles.h" nogil:
    int prof_rows(int code)
    void prof_block_f32(int code, const float* const* xs, Py_ssize_t d, const float* P,
                        const float* AP, Py_ssize_t jb, float* out)
    void prof_block_f64(int code, const double* const* xs, Py_ssize_t d, const double* P,
                        const double* AP, Py_ssize_t jb, double* out)

cdef enum:
    MAX_ROWS = 6  # the largest prof_rows()


cdef inline void _pack_panel(const floating* Y, Py_ssize_t d, Py_ssize_t j0, Py_ssize_t nj,
                             Py_ssize_t jb, floating* P, floating* AP, bint with_abs) noexcept nogil:
    """Columns j0..j0+nj of Y, k-major, zero-padded to jb lanes; AP = |P| when asked."""
    cdef Py_ssize_t jj, k
    cdef floating v
    for jj in range(jb):
        for k in range(d):
            v = Y[(j0 + jj) * d + k] if jj < nj else 0
            P[k * jb + jj] = v
            if with_abs:
                AP[k * jb + jj] = -v if v < 0 else v


cdef inline void _block(int code, const floating* X, Py_ssize_t r0, Py_ssize_t nr, Py_ssize_t d,
                        const floating* P, const floating* AP, Py_ssize_t jb,
                        floating* out) noexcept nogil:
    """Keys of rows r0..r0+nr (nr <= prof_rows(code); missing rows repeat the last one) into
    out[rows, jb]."""
    cdef const floating* xs[MAX_ROWS]
    cdef Py_ssize_t r
    for r in range(MAX_ROWS):
        xs[r] = X + (r0 + min(r, nr - 1)) * d
    if floating is float:
        prof_block_f32(code, xs, d, P, AP, jb, out)
    else:
        prof_block_f64(code, xs, d, P, AP, jb, out)
    if code == M_SQCOSINE:
        for r in range(nr):
            _sq_keys(out + r * jb, jb)


cdef inline void _sq_keys(floating* row, Py_ssize_t n) noexcept nogil:
    """Squared cosine ranks by |cos|: turn -cos into -|cos|."""
    cdef Py_ssize_t a
    for a in range(n):
        if floating is float:
            row[a] = -fabsf(row[a])
        else:
            row[a] = -fabs(row[a])


def tile_pairs(const floating[:, ::1] X, const floating[:, ::1] Y, int code,
               double threshold, bint within, int threads, const double[:, ::1] Xe=None,
               const double[:, ::1] Ye=None, double filter_cut=INFINITY):
    """Edges (i, j, distance) with distance <= threshold; within: Y is X and only i < j.

    Mixed precision for float64 data: X, Y are float32 copies of the float64 rows Xe, Ye; a
    float32 key <= ``filter_cut`` (a proven bound: every pair whose float64 distance is
    <= threshold has such a key) makes a candidate, re-scored from Xe, Ye in float64.
    """
    cdef Py_ssize_t nx = X.shape[0], ny = Y.shape[0], d = X.shape[1]
    cdef Py_ssize_t jb = JB_F32 if floating is float else JB_F64
    cdef Py_ssize_t npanels = (ny + jb - 1) // jb
    cdef Py_ssize_t pp, p, j0, nj, i, i_end, lo, r, nr, blk
    cdef Py_ssize_t rows = prof_rows(code)
    cdef floating cut = _key_bound_t(code, threshold + 0.0, <floating> 0)
    cdef bint with_abs = code == M_CANBERRA
    cdef EdgeBuf* bufs
    cdef floating* P
    cdef floating* AP
    cdef floating* out
    cdef const double* xe_base = NULL
    cdef const double* ye_base = NULL
    cdef const double* xe
    if nx == 0 or ny == 0:
        return _bufs_collect(_bufs_new(threads), threads)
    if Xe is not None:
        if (Ye is None or Xe.shape[0] != nx or Ye.shape[0] != ny or Xe.shape[1] != d
                or Ye.shape[1] != d or not filter_cut >= _key_bound(code, threshold)):
            raise ValueError("mixed precision needs float64 rows matching X and Y and a cut")
        xe_base = &Xe[0, 0]
        ye_base = &Ye[0, 0]
        cut = _widen(filter_cut, cut)
    # Per-thread scratch: panel (d x jb), |panel| (d x jb), keys of a block of rows.
    scratch_arr = np.zeros((threads, (2 * d + MAX_ROWS) * jb),
                           dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] scratch = scratch_arr
    bufs = _bufs_new(threads)
    with nogil, parallel(num_threads=threads):
        P = &scratch[threadid(), 0]
        AP = P + d * jb
        out = AP + d * jb
        # Largest triangle panels first so that the dynamic schedule ends balanced.
        for pp in prange(npanels, schedule="dynamic"):
            p = npanels - 1 - pp
            j0 = p * jb
            nj = min(jb, ny - j0)
            _pack_panel(&Y[0, 0], d, j0, nj, jb, P, AP, with_abs)
            i_end = min(nx, j0 + nj - 1) if within else nx
            for blk in range((i_end + rows - 1) // rows):
                i = blk * rows
                nr = min(rows, i_end - i)
                _block(code, &X[0, 0], i, nr, d, P, AP, jb, out)
                for r in range(nr):
                    lo = max(0, i + r - j0 + 1) if within else 0
                    xe = xe_base + (i + r) * d if xe_base != NULL else NULL
                    if _scan_threshold(code, out + r * jb, lo, nj, cut, threshold, i + r, j0,
                                       &bufs[threadid()], xe, ye_base, d) != 0:
                        break
    return _bufs_collect(bufs, threads)


def tile_topk(const floating[:, ::1] Q, const floating[:, ::1] L, int code, Py_ssize_t k,
              int threads):
    """Per library chunk c and query q, the k best (distance, index) as heaps [C, nq, k]."""
    cdef Py_ssize_t nq = Q.shape[0], nl = L.shape[0], d = Q.shape[1]
    cdef Py_ssize_t jb = JB_F32 if floating is float else JB_F64
    cdef Py_ssize_t npanels = (nl + jb - 1) // jb
    cdef Py_ssize_t nchunks = max(1, min(<Py_ssize_t> threads, npanels))
    cdef Py_ssize_t nqb = (nq + QB_TOPK - 1) // QB_TOPK
    cdef Py_ssize_t item, c, qb, p, p0, p1, j0, nj, q, q0, q1, r, nr, blk
    cdef Py_ssize_t rows = prof_rows(code)
    cdef bint with_abs = code == M_CANBERRA
    hd_arr = np.full((nchunks, nq, k), np.inf)
    hi_arr = np.full((nchunks, nq, k), np.iinfo(np.int64).max, dtype=np.int64)
    cuts_arr = np.full((nchunks, nq), np.inf, dtype=np.float32 if floating is float else np.float64)
    cdef double[:, :, ::1] hd = hd_arr
    cdef int64_t[:, :, ::1] hi = hi_arr
    cdef floating[:, ::1] cuts = cuts_arr
    cdef floating* P
    cdef floating* AP
    cdef floating* out
    if nq == 0 or nl == 0:
        return hd_arr, hi_arr
    scratch_arr = np.zeros((threads, (2 * d + MAX_ROWS) * jb),
                           dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] scratch = scratch_arr
    with nogil, parallel(num_threads=threads):
        P = &scratch[threadid(), 0]
        AP = P + d * jb
        out = AP + d * jb
        for item in prange(nchunks * nqb, schedule="dynamic"):
            c = item // nqb
            qb = item % nqb
            p0 = c * npanels // nchunks
            p1 = (c + 1) * npanels // nchunks
            q0 = qb * QB_TOPK
            q1 = min(nq, q0 + QB_TOPK)
            for p in range(p0, p1):
                j0 = p * jb
                nj = min(jb, nl - j0)
                _pack_panel(&L[0, 0], d, j0, nj, jb, P, AP, with_abs)
                for blk in range((q1 - q0 + rows - 1) // rows):
                    q = q0 + blk * rows
                    nr = min(rows, q1 - q)
                    _block(code, &Q[0, 0], q, nr, d, P, AP, jb, out)
                    for r in range(nr):
                        cuts[c, q + r] = _offer_row(code, out + r * jb, nj, j0, cuts[c, q + r],
                                                    &hd[c, q + r, 0], &hi[c, q + r, 0], k)
    return hd_arr, hi_arr


# --------------------------------------------------------------------------------------------
# Set engine: Jaccard and Dice on bit-packed uint64 rows.
# --------------------------------------------------------------------------------------------
cdef inline double _set_final(int code, int64_t union_, int64_t inter) noexcept nogil:
    """scipy's value on boolean vectors; NaN for two empty sets (see profiling.similarity)."""
    if union_ == 0:
        return NAN
    if code == M_JACCARD:
        return <double> (union_ - inter) / <double> union_
    return <double> (union_ - inter) / <double> (union_ + inter)


cdef inline int64_t _inter(const uint64_t* a, const uint64_t* b, Py_ssize_t w) noexcept nogil:
    cdef int64_t s = 0
    cdef Py_ssize_t q
    for q in range(w):
        s += prof_popcount64(a[q] & b[q])
    return s


def popcounts(const uint64_t[:, ::1] A):
    out = np.empty(A.shape[0], dtype=np.int64)
    cdef int64_t[::1] o = out
    cdef Py_ssize_t a, q
    cdef int64_t s
    for a in range(A.shape[0]):
        s = 0
        for q in range(A.shape[1]):
            s += prof_popcount64(A[a, q])
        o[a] = s
    return out


cdef object _need_table(int code, double threshold, int64_t max_count):
    """need[pa, pb]: the smallest intersection of sets of sizes pa and pb whose distance is
    <= threshold, or min(pa, pb) + 1 when none is (then the size pair cannot link).

    Built with the very division that produces the score (``_set_final``), and the distance
    falls as the intersection grows at fixed sizes, so ``inter >= need[pa, pb]`` is exactly
    ``score <= threshold``. Size pairs that cannot reach the threshold are skipped whole: the
    size filter of set-similarity joins, exact by construction.
    """
    table = np.empty((max_count + 1, max_count + 1), dtype=np.int64)
    cdef int64_t[:, ::1] tb = table
    cdef int64_t pa, pb, lo, hi, mid
    for pa in range(max_count + 1):
        for pb in range(max_count + 1):
            lo = 0
            hi = min(pa, pb) + 1  # answer in [lo, hi]; hi = min + 1 means none
            while lo < hi:
                mid = (lo + hi) // 2
                if _set_final(code, pa + pb - mid, mid) <= threshold:
                    hi = mid
                else:
                    lo = mid + 1
            tb[pa, pb] = lo
    return table


cdef inline int _set_row(int code, const uint64_t* a, int64_t pa, int64_t orig_i,
                         const uint64_t* Bs, const int64_t* order_b, const int64_t* group_start,
                         const int64_t* need_row, int64_t max_count, Py_ssize_t w,
                         Py_ssize_t q_min, bint within, Py_ssize_t* hits,
                         EdgeBuf* buf) noexcept nogil:
    """Row ``a`` against every feasible size group of the popcount-sorted ``Bs`` (from q_min)."""
    cdef int64_t pb, inter, union_, j
    cdef Py_ssize_t q0, q1, nh, h, q
    for pb in range(max_count + 1):
        if need_row[pb] > min(pa, pb):
            continue
        q0 = max(group_start[pb], q_min)
        q1 = group_start[pb + 1]
        if q0 >= q1:
            continue
        nh = prof_set_scan(a, Bs + q0 * w, w, q1 - q0, need_row[pb], hits)
        for h in range(nh):
            q = q0 + hits[h]
            inter = _inter(a, Bs + q * w, w)
            union_ = pa + pb - inter
            j = order_b[q]
            if within and j < orig_i:
                if _push(buf, j, orig_i, _set_final(code, union_, inter)) != 0:
                    return -1
            else:
                if _push(buf, orig_i, j, _set_final(code, union_, inter)) != 0:
                    return -1
    return 0


def set_pairs(const uint64_t[:, ::1] A, const uint64_t[:, ::1] B, int code, double threshold,
              bint within, int threads):
    """Edges of bit-packed sets with distance <= threshold; within: B is A and only i < j.

    B is sorted by popcount (stable), so each size group is a contiguous run; within, row p of the
    sorted order meets the rows after it, and every unordered pair is met once.
    """
    cdef Py_ssize_t na = A.shape[0], nb = B.shape[0], w = A.shape[1]
    cdef Py_ssize_t p
    cdef EdgeBuf* bufs = _bufs_new(threads)
    if na == 0 or nb == 0:
        return _bufs_collect(bufs, threads)
    pcb_arr = popcounts(B)
    order_arr = np.argsort(pcb_arr, kind="stable").astype(np.int64)
    bs_arr = np.ascontiguousarray(np.asarray(B)[order_arr])
    pcs_arr = pcb_arr[order_arr]
    pca_arr = pcs_arr if within else popcounts(A)
    max_count = int(max(pca_arr.max(), pcs_arr.max()))
    starts_arr = np.searchsorted(pcs_arr, np.arange(max_count + 2)).astype(np.int64)
    need_arr = _need_table(code, threshold, max_count)
    hits_arr = np.empty((threads, nb), dtype=np.intp)
    cdef const uint64_t[:, ::1] Bs = bs_arr
    cdef const uint64_t[:, ::1] Ause = bs_arr if within else A
    cdef int64_t[::1] pca = pca_arr
    cdef int64_t[::1] order_b = order_arr
    cdef int64_t[::1] starts = starts_arr
    cdef int64_t[:, ::1] need = need_arr
    cdef Py_ssize_t[:, ::1] hits = hits_arr
    cdef int64_t mc = max_count
    with nogil, parallel(num_threads=threads):
        for p in prange(na, schedule="dynamic", chunksize=16):
            _set_row(code, &Ause[p, 0], pca[p], order_b[p] if within else p, &Bs[0, 0],
                     &order_b[0], &starts[0], &need[pca[p], 0], mc, w,
                     p + 1 if within else 0, within, &hits[threadid(), 0], &bufs[threadid()])
    return _bufs_collect(bufs, threads)


def set_topk(const uint64_t[:, ::1] Q, const uint64_t[:, ::1] L, int code, Py_ssize_t k,
             int threads):
    cdef Py_ssize_t nq = Q.shape[0], nl = L.shape[0], w = Q.shape[1]
    cdef Py_ssize_t q, j
    cdef int64_t inter, union_
    cdef double s
    hd_arr = np.full((1, nq, k), np.inf)
    hi_arr = np.full((1, nq, k), np.iinfo(np.int64).max, dtype=np.int64)
    cdef double[:, :, ::1] hd = hd_arr
    cdef int64_t[:, :, ::1] hi = hi_arr
    if nq == 0 or nl == 0:
        return hd_arr, hi_arr
    pcq_arr = popcounts(Q)
    pcl_arr = popcounts(L)
    cdef int64_t[::1] pcq = pcq_arr
    cdef int64_t[::1] pcl = pcl_arr
    with nogil, parallel(num_threads=threads):
        for q in prange(nq, schedule="dynamic"):
            for j in range(nl):
                inter = _inter(&Q[q, 0], &L[j, 0], w)
                union_ = pcq[q] + pcl[j] - inter
                s = _set_final(code, union_, inter)
                if s == s and _worse(hd[0, q, 0], hi[0, q, 0], s, j):
                    _heap_replace_top(&hd[0, q, 0], &hi[0, q, 0], k, s, j)
    return hd_arr, hi_arr


def set_scores(const uint64_t[:, ::1] A, const uint64_t[:, ::1] B, const int64_t[::1] ia,
               const int64_t[::1] jb, int code, int threads):
    cdef Py_ssize_t n = ia.shape[0], w = A.shape[1], a
    cdef int64_t inter, pa, pb
    cdef Py_ssize_t q
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    with nogil, parallel(num_threads=threads):
        for a in prange(n, schedule="static"):
            inter = 0
            pa = 0
            pb = 0
            for q in range(w):
                inter = inter + prof_popcount64(A[ia[a], q] & B[jb[a], q])
                pa = pa + prof_popcount64(A[ia[a], q])
                pb = pb + prof_popcount64(B[jb[a], q])
            o[a] = _set_final(code, pa + pb - inter, inter)
    return out


# --------------------------------------------------------------------------------------------
# Generic pair engine: pairwise deletion of NaN, float64 accumulation.
# --------------------------------------------------------------------------------------------
cdef double _pair_distance(int code, const floating* x, const floating* y,
                           Py_ssize_t d) noexcept nogil:
    """Distance over the compounds observed in both profiles; NaN if fewer than 2, or if the
    metric is undefined there (Pearson: a constant profile; cosine: a zero profile)."""
    cdef Py_ssize_t k, n = 0
    cdef double a, b, s = 0.0, sa = 0.0, sb = 0.0, saa = 0.0, sbb = 0.0, sab = 0.0
    cdef double ma, mb, den, c, first_a = 0.0, first_b = 0.0
    cdef bint const_a = True, const_b = True
    if code == M_EUCLIDEAN or code == M_MANHATTAN or code == M_CANBERRA:
        for k in range(d):
            a = x[k]
            b = y[k]
            if a != a or b != b:
                continue
            n += 1
            if code == M_EUCLIDEAN:
                s += (a - b) * (a - b)
            elif code == M_MANHATTAN:
                s += fabs(a - b)
            else:
                den = fabs(a) + fabs(b)
                s += fabs(a - b) / (den + (den == 0))
        if n < 2:
            return NAN
        return sqrt(s) if code == M_EUCLIDEAN else s
    # correlation family
    for k in range(d):
        a = x[k]
        b = y[k]
        if a != a or b != b:
            continue
        if n == 0:
            first_a = a
            first_b = b
        const_a = const_a and a == first_a
        const_b = const_b and b == first_b
        n += 1
        sa += a
        sb += b
    if n < 2:
        return NAN
    if code == M_PEARSON:
        if const_a or const_b:
            return NAN
        ma = sa / n
        mb = sb / n
    else:
        ma = 0.0
        mb = 0.0
    for k in range(d):
        a = x[k]
        b = y[k]
        if a != a or b != b:
            continue
        a = a - ma
        b = b - mb
        saa += a * a
        sbb += b * b
        sab += a * b
    if saa == 0.0 or sbb == 0.0:
        return NAN
    c = sab / (sqrt(saa) * sqrt(sbb))
    if code == M_SQCOSINE:
        return _final(code, -fabs(c))
    return _final(code, -c)


def pair_scores(const floating[:, ::1] X, const floating[:, ::1] Y, const int64_t[::1] ia,
                const int64_t[::1] jb, int code, int threads):
    """Distance of X[ia[a]] and Y[jb[a]] for every a (pairwise deletion of NaN)."""
    cdef Py_ssize_t n = ia.shape[0], d = X.shape[1], a
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    if n == 0:
        return out
    with nogil, parallel(num_threads=threads):
        for a in prange(n, schedule="static"):
            o[a] = _pair_distance(code, &X[ia[a], 0], &Y[jb[a], 0], d)
    return out


def generic_pairs(const floating[:, ::1] X, const int64_t[::1] rows_x,
                  const floating[:, ::1] Y, const int64_t[::1] rows_y, int code,
                  double threshold, bint within, const unsigned char[::1] in_rows_x,
                  int threads):
    """Edges over rows_x x rows_y with pairwise deletion.

    within (Y is X, rows_y is every row): pairs (a, b) with a in rows_x, b != a, and b not in
    rows_x or b > a (``in_rows_x`` marks rows_x), emitted as (min, max). Between: (a, b) as is.
    """
    cdef Py_ssize_t na = rows_x.shape[0], nb = rows_y.shape[0], d = X.shape[1]
    cdef Py_ssize_t ai, bi
    cdef int64_t a, b
    cdef double s
    cdef EdgeBuf* bufs = _bufs_new(threads)
    cdef EdgeBuf* buf
    if na == 0 or nb == 0:
        return _bufs_collect(bufs, threads)
    with nogil, parallel(num_threads=threads):
        for ai in prange(na, schedule="dynamic"):
            buf = &bufs[threadid()]
            a = rows_x[ai]
            for bi in range(nb):
                b = rows_y[bi]
                if within and (b == a or (in_rows_x[b] and b < a)):
                    continue
                s = _pair_distance(code, &X[a, 0], &Y[b, 0], d)
                if s <= threshold:
                    if within and b < a:
                        if _push(buf, b, a, s) != 0:
                            break
                    else:
                        if _push(buf, a, b, s) != 0:
                            break
    return _bufs_collect(bufs, threads)


def generic_topk(const floating[:, ::1] Q, const int64_t[::1] rows_q,
                 const floating[:, ::1] L, const int64_t[::1] rows_l, int code, Py_ssize_t k,
                 int threads):
    """Heaps [1, len(rows_q), k] of the k best (distance, library row) over rows_l."""
    cdef Py_ssize_t nq = rows_q.shape[0], nl = rows_l.shape[0], d = Q.shape[1]
    cdef Py_ssize_t qi, li
    cdef double s
    hd_arr = np.full((1, nq, k), np.inf)
    hi_arr = np.full((1, nq, k), np.iinfo(np.int64).max, dtype=np.int64)
    cdef double[:, :, ::1] hd = hd_arr
    cdef int64_t[:, :, ::1] hi = hi_arr
    if nq == 0 or nl == 0:
        return hd_arr, hi_arr
    with nogil, parallel(num_threads=threads):
        for qi in prange(nq, schedule="dynamic"):
            for li in range(nl):
                s = _pair_distance(code, &Q[rows_q[qi], 0], &L[rows_l[li], 0], d)
                if s == s and _worse(hd[0, qi, 0], hi[0, qi, 0], s, rows_l[li]):
                    _heap_replace_top(&hd[0, qi, 0], &hi[0, qi, 0], k, s, rows_l[li])
    return hd_arr, hi_arr
