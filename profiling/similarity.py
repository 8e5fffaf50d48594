"""Pretreatments, similarity metrics and the compiled linking kernels behind them.

THE SCORE CONVENTION (every caller relies on it)
================================================
Every metric returns a **distance**: lower = more similar, 0 = identical profiles. Where scipy has
the metric, the value is scipy's:

==================  ==========================================  ==============================
metric              distance                                    scipy oracle
==================  ==========================================  ==============================
``pearson``         1 - r, in [0, 2]                            ``pdist(X, "correlation")``
``cosine``          1 - cos, in [0, 2]                          ``pdist(X, "cosine")``
``squared_cosine``  1 - cos**2, in [0, 1] (anti-parallel        ``1 - (1 - pdist(X, "cosine"))**2``
                    profiles count as identical)
``euclidean``       sqrt(sum (x - y)**2)                        ``pdist(X, "euclidean")``
``manhattan``       sum |x - y|                                 ``pdist(X, "cityblock")``
``canberra``        sum |x - y| / (|x| + |y|), 0/0 terms = 0    ``pdist(X, "canberra")``
``jaccard``         1 - |A & B| / |A | B| on sets               ``pdist(B, "jaccard")`` on bool
``dice``            1 - 2|A & B| / (|A| + |B|) on sets          ``pdist(B, "dice")`` on bool
==================  ==========================================  ==============================

Pearson and cosine are clipped to [0, 2] (and squared cosine to [0, 1]) so that rounding never
yields a negative distance; scipy's ``pdist`` may return -2e-16 or 2e-16 for identical rows.
Literature scales such as 100 * (1 - cos**2) or (1 - r) / 2 * 100 are affine transforms of these.

Thresholded outputs keep the pairs whose **returned** distance is ``<= threshold``.

MISSING VALUES (NaN)
====================
NaN means "compound not measured" (a compound that was measured and not detected is 0, not NaN).
For each pair, a compound that is NaN in either profile is skipped (pairwise deletion) and the
metric is computed on the compounds observed in both; the oracle is scipy on those columns. Sums
(Manhattan, Canberra, Euclidean) are over the jointly observed compounds, not rescaled.

The distance is NaN - and a NaN never passes a threshold nor enters a top-k - when:

- fewer than 2 compounds are observed in both profiles (scipy would compute on 0 or 1 column);
- Pearson, and one profile is constant over those compounds (scipy returns NaN when the centred
  row is exactly zero, and an arbitrary number when rounding leaves ~1e-17 residues);
- cosine or squared cosine, and one profile is all zero there (scipy returns NaN);
- Jaccard or Dice of two empty sets (scipy returns 0 for Jaccard, NaN for Dice; "no adulterant
  in either" is no evidence of a shared cut, so both are NaN here).

Rows with a NaN go through a slower pair-at-a-time path; NaN-free rows use the fast tiled
kernels. Map "not detected"/"<LOQ" to 0 at ingest so that only truly unmeasured compounds are NaN.

PRECISION
=========
float32 and float64 C-contiguous input is used as is and the fast kernels compute in that
precision (scores are returned as float64). Other real dtypes (integers, bool, float16) are
converted to float64; other layouts are copied to C order. Pearson/cosine rows are centred and
scaled in float64 before being cast back to the input precision. For float64 input the
thresholded kernel runs a float32 pass as a filter, widened by a proven bound on its error, and
re-scores every surviving pair in float64: the scores and the edge set are float64 results
(values outside [1e-30, 1e30] in magnitude skip the filter and run the float64 kernel). float32 Canberra (on AVX builds) replaces each division by the hardware
reciprocal estimate refined by one Newton step: relative error below 3e-7 per term. The
pair-at-a-time path (rows with NaN, ``score_pairs``, ``sample_pairs``) accumulates in float64, so
a float32 pair may differ from the tiled value in the 7th digit; in float64 the two agree to
~1e-15.

THREADS
=======
``threads=None`` uses ``OMP_NUM_THREADS`` when set (Dask workers set it to 1) and otherwise every
core available to the process. The kernels run an OpenMP region with exactly that many threads
(called from inside another OpenMP region they run on one thread: nesting is off by default) and
limit BLAS to one thread meanwhile (threadpoolctl; the kernels themselves call no BLAS, the limit
keeps anything BLAS-backed that runs in the same process from adding threads on top), so nothing
is oversubscribed. Results do not depend on the thread count: edges are sorted by (i, j) and
top-k ties go to the lower index.

MEMORY
======
O(n * compounds + edges): the kernels never hold an n x n block; each thread keeps one packed
panel (compounds x 128-256 values), one block of keys (6 x 256) and its own edge buffer, grown
geometrically and concatenated once at the end.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from profiling._native import similarity as _native

__all__ = [
    "METRICS",
    "PRETREATMENTS",
    "Edges",
    "Metric",
    "Pretreatment",
    "SimilarityInputError",
    "default_threads",
    "pack_sets",
    "pairs_between",
    "pairs_within",
    "pretreat",
    "sample_pairs",
    "score_pairs",
    "sort_edges",
    "topk",
]


class SimilarityInputError(ValueError):
    """Input that the similarity kernels cannot score: wrong shape, dtype, values or ranges."""


class Edges(NamedTuple):
    """Sparse pairs: ``i``, ``j`` (int64 row indices) and ``score`` (float64 distance).

    Within one set ``i < j``; between two sets ``i`` indexes the first and ``j`` the second.
    Sorted by (i, j).
    """

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:  # number of edges, not of fields
        return int(self.i.shape[0])


# =============================================================================================
# Pretreatments
# =============================================================================================

#: Offset of ``sum_log``: log10(x + 1e-4) on profiles normalised to sum 1. Minor target compounds
#: are reported down to about 1e-3 of the summed peak areas, so 1e-4 sits below every detected
#: proportion: it changes detected values by < 10 % of a decade and maps "not detected" (0) to
#: -4 instead of -inf.
SUM_LOG_OFFSET = 1e-4


def _normalise_to_sum(X: np.ndarray) -> np.ndarray:
    if np.any(X < 0):
        raise SimilarityInputError(
            "normalising to the sum needs non-negative peak areas; found a negative value"
        )
    total = np.nansum(X, axis=1, keepdims=True)
    observed = ~np.isnan(X).all(axis=1, keepdims=True)
    # A row with nothing observed, or nothing detected (sum 0), has no composition: all NaN.
    ok = observed & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, X / np.where(ok, total, 1.0), np.nan)


def _std_scale(X: np.ndarray, reference_std: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if reference_std is None:
        with np.errstate(invalid="ignore"):
            counts = np.sum(~np.isnan(X), axis=0)
            std = np.full(X.shape[1], np.nan)
            enough = counts >= 2
            if enough.any():
                std[enough] = np.nanstd(X[:, enough], axis=0, ddof=1)
    else:
        std = np.asarray(reference_std, dtype=np.float64)
        if std.shape != (X.shape[1],):
            raise SimilarityInputError(
                f"reference_std has shape {std.shape}; expected ({X.shape[1]},), one per compound"
            )
    # A compound without spread (or seen fewer than twice) keeps its scale: dividing by 0 would
    # turn every value into inf, and it carries no ranking information anyway.
    usable = np.isfinite(std) & (std > 0)
    scale = np.where(usable, std, 1.0)
    return X / scale, scale


@dataclass(frozen=True)
class Pretreatment:
    """One pretreatment of the literature: normalise to sum, then transform, then scale.

    ``transform`` acts element-wise on the normalised profile; ``std_scaled`` divides each
    compound by its standard deviation over the data (or over a reference), the "N+S" of
    Lociciro et al. 2008.
    """

    name: str
    description: str
    normalise: bool
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    std_scaled: bool = False

    def _before_scaling(self, X: np.ndarray) -> np.ndarray:
        out = _normalise_to_sum(X) if self.normalise else X.copy()
        if self.transform is not None:
            out = self.transform(out)
        return out

    def fit(self, reference: np.ndarray) -> np.ndarray | None:
        """Per-compound standard deviation of ``reference`` after the earlier steps (or None)."""
        if not self.std_scaled:
            return None
        ref = _as_profiles(reference, "reference", pretreatment=True).astype(np.float64)
        return _std_scale(self._before_scaling(ref), None)[1]

    def apply(
        self, X: np.ndarray, *, reference_std: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Pretreated copy of ``X`` (float64) and the per-compound scale used (or None)."""
        Xf = _as_profiles(X, "X", pretreatment=True).astype(np.float64)
        out = self._before_scaling(Xf)
        if self.std_scaled:
            out, std = _std_scale(out, reference_std)
            return out, std
        return out, None


PRETREATMENTS: dict[str, Pretreatment] = {
    p.name: p
    for p in (
        Pretreatment("none", "raw values", normalise=False),
        Pretreatment("sum", "normalise each profile to sum 1 (N)", normalise=True),
        Pretreatment("sum_sqrt", "N, then square root", normalise=True, transform=np.sqrt),
        Pretreatment(
            "sum_4root", "N, then fourth root (N4R)", normalise=True, transform=lambda x: x**0.25
        ),
        Pretreatment(
            "sum_log",
            f"N, then log10(x + {SUM_LOG_OFFSET:g})",
            normalise=True,
            transform=lambda x: np.log10(x + SUM_LOG_OFFSET),
        ),
        Pretreatment(
            "sum_std",
            "N, then each compound divided by its standard deviation over the data (N+S)",
            normalise=True,
            std_scaled=True,
        ),
        Pretreatment(
            "sum_4root_std",
            "N4R, then each compound divided by its standard deviation",
            normalise=True,
            transform=lambda x: x**0.25,
            std_scaled=True,
        ),
        Pretreatment(
            "sum_log_std",
            "N + log, then each compound divided by its standard deviation",
            normalise=True,
            transform=lambda x: np.log10(x + SUM_LOG_OFFSET),
            std_scaled=True,
        ),
    )
}


def pretreat(
    X: np.ndarray,
    name: str,
    *,
    reference: np.ndarray | None = None,
    reference_std: np.ndarray | None = None,
) -> np.ndarray:
    """Pretreated copy of the profile matrix ``X`` [n, compounds] as float64.

    NaN (not measured) stays NaN and is left out of sums and standard deviations. For the
    std-scaled pretreatments the scale comes from ``reference_std`` if given, else from
    ``reference`` (e.g. the library, so queries and library share one scaling), else from ``X``.
    """
    p = _lookup(PRETREATMENTS, name, "pretreatment")
    if reference_std is None and reference is not None:
        reference_std = p.fit(reference)
    return p.apply(X, reference_std=reference_std)[0]


# =============================================================================================
# Metrics
# =============================================================================================


def _unit_rows(X: np.ndarray, *, centre: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows centred (Pearson) and scaled to unit norm in float64, cast to X's precision.

    Returns (indices of rows where the metric is defined, their normalised rows). For NaN-free
    rows 1 - r (or 1 - cos) is then 1 - dot.
    """
    Xd = X.astype(np.float64)
    if centre:
        defined = np.ptp(Xd, axis=1) > 0 if len(Xd) else np.zeros(0, bool)
        Xd = Xd - Xd.mean(axis=1, keepdims=True)
    else:
        defined = np.any(Xd != 0, axis=1)
    norm = np.sqrt(np.einsum("ij,ij->i", Xd, Xd))
    defined &= norm > 0
    rows = np.flatnonzero(defined)
    Z = Xd[rows] / norm[rows, None]
    return rows, np.ascontiguousarray(Z, dtype=X.dtype)


def _all_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(len(X)), X


# ---------------------------------------------------------------------------------------------
# float64 through a float32 filter. With u = 2**-24 and d compounds, rounding the rows to float32
# moves each value by at most u|x|, and the float32 kernel adds at most (d + 4) u relative error
# (differences, products or reciprocal + Newton step, and accumulation). Each metric's bound
# below takes twice that, so every pair whose float64 distance is <= t has a float32 key <= the
# cut; the kernel re-scores those pairs from the float64 rows.
# ---------------------------------------------------------------------------------------------

_U32 = 2.0**-24  # unit roundoff of float32


def _grow(d: int) -> float:
    return 1.0 + 2.0 * (d + 4) * _U32


def _fits_float32(*arrays: np.ndarray) -> bool:
    """Every value a normal float32 number (or zero): outside, the float64 kernel runs."""
    for A in arrays:
        a = np.abs(A)
        if a.size and (a.max() > 1e30 or np.any((a > 0) & (a < 1e-30))):
            return False
    return True


def _cut_unit_rows(code, Zx, Zy, t):
    """Unit rows: |dot32 - dot| <= (d + 3) u."""
    return _native.key_bound(code, t) + 2.0 * (Zx.shape[1] + 4) * _U32


def _cut_euclidean(code, Zx, Zy, t):
    """||x32 - y32|| <= ||x - y|| + u (||x|| + ||y||); key = squared distance."""
    if not _fits_float32(Zx, Zy):
        return None
    norms = [np.sqrt(np.einsum("ij,ij->i", Z, Z).max(initial=0.0)) for Z in (Zx, Zy)]
    return (t + _U32 * sum(norms)) ** 2 * _grow(Zx.shape[1]) * (1.0 + 4 * _U32)


def _cut_manhattan(code, Zx, Zy, t):
    """|x32 - y32|_1 <= |x - y|_1 + u (|x|_1 + |y|_1)."""
    if not _fits_float32(Zx, Zy):
        return None
    reach = _U32 * sum(np.abs(Z).sum(axis=1).max(initial=0.0) for Z in (Zx, Zy))
    return (t + reach) * _grow(Zx.shape[1])


def _cut_canberra(code, Zx, Zy, t):
    """Each term grows by at most u absolute and 4e-7 relative (reciprocal estimate refined by
    one Newton step: < 2e-7; plus three roundings)."""
    if not _fits_float32(Zx, Zy):
        return None
    return (t + Zx.shape[1] * _U32) * (_grow(Zx.shape[1]) + 4e-6)


def _tile_pairs(m: Metric, Zx, Zy, threshold, within, threads):
    """Thresholded pairs of NaN-free rows with the tile kernels.

    float64 input runs the float32 kernel as a filter whose cut is the metric's proven bound on
    the float32 error, and every pair that passes is re-scored from the float64 rows: scores and
    edge set are those of a float64 computation, at float32 speed.
    """
    cut = None
    if Zx.dtype == np.float64 and m.float32_cut is not None:
        cut = m.float32_cut(m.code, Zx, Zy, threshold)
    if cut is None:
        return _native.tile_pairs(Zx, Zy, m.code, threshold, within, threads)
    zx32 = Zx.astype(np.float32)
    zy32 = zx32 if within else Zy.astype(np.float32)
    return _native.tile_pairs(zx32, zy32, m.code, threshold, within, threads, Zx, Zy, cut)


def _set_pairs(m: Metric, A, B, threshold, within, threads):
    return _native.set_pairs(A, B, m.code, threshold, within, threads)


@dataclass(frozen=True)
class _Engine:
    """A family of compiled kernels: thresholded pairs and top-k on prepared rows."""

    pairs: Callable
    topk: Callable


_TILES = _Engine(_tile_pairs, _native.tile_topk)
_SETS = _Engine(_set_pairs, _native.set_topk)


@dataclass(frozen=True)
class Metric:
    """A registry entry: canonical name, what it compares, its range and its kernels."""

    name: str
    kind: str  # "profile" (float rows, NaN = not measured) or "set" (bit-packed uint64 rows)
    max_distance: float
    scipy_name: str
    description: str
    engine: _Engine
    prepare: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] = _all_rows
    #: float64 data: cut for the float32 filter (None: no filter, the float64 kernel runs)
    float32_cut: Callable | None = None

    @property
    def code(self) -> int:
        return _native.METRIC_CODES[self.name]


def _pearson_rows(X):
    return _unit_rows(X, centre=True)


def _cosine_rows(X):
    return _unit_rows(X, centre=False)


_M = Metric
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _M("pearson", "profile", 2.0, "correlation", "1 - Pearson r", _TILES,
           _pearson_rows, _cut_unit_rows),
        _M("cosine", "profile", 2.0, "cosine", "1 - cosine", _TILES, _cosine_rows,
           _cut_unit_rows),
        _M("squared_cosine", "profile", 1.0, "cosine", "1 - cosine**2", _TILES, _cosine_rows,
           _cut_unit_rows),
        _M("euclidean", "profile", math.inf, "euclidean", "Euclidean distance", _TILES,
           float32_cut=_cut_euclidean),
        _M("manhattan", "profile", math.inf, "cityblock", "sum of |x - y|", _TILES,
           float32_cut=_cut_manhattan),
        _M("canberra", "profile", math.inf, "canberra", "Canberra distance", _TILES,
           float32_cut=_cut_canberra),
        _M("jaccard", "set", 1.0, "jaccard", "1 - |A&B| / |A|B|", _SETS),
        _M("dice", "set", 1.0, "dice", "1 - 2|A&B| / (|A|+|B|)", _SETS),
    )
}  # fmt: skip


def _lookup(registry: dict, name: str, what: str):
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise SimilarityInputError(
            f"unknown {what} {name!r}; choose one of {', '.join(registry)}"
        ) from None


# =============================================================================================
# Validation
# =============================================================================================


def _as_profiles(X, what: str, *, pretreatment: bool = False) -> np.ndarray:
    """C-contiguous float32/float64 [n, d]: float32 and float64 kept, other reals -> float64."""
    try:
        A = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise SimilarityInputError(f"{what} is not a numeric array: {exc}") from None
    if A.ndim != 2:
        raise SimilarityInputError(
            f"{what} must be a 2-D array [profiles, compounds]; got {A.ndim}-D shape {A.shape}"
        )
    if A.dtype.kind not in "biuf":
        raise SimilarityInputError(
            f"{what} has dtype {A.dtype}; profiles must be real numbers (float32 or float64)"
        )
    if A.dtype not in (np.float32, np.float64):
        A = A.astype(np.float64)
    if np.isinf(A).any():
        raise SimilarityInputError(
            f"{what} contains an infinite value; only NaN (not measured) is allowed"
        )
    if not pretreatment and A.shape[1] < 2:
        raise SimilarityInputError(
            f"{what} has {A.shape[1]} compound(s); a profile metric needs at least 2"
        )
    return np.ascontiguousarray(A)


def _as_sets(B, what: str) -> np.ndarray:
    """Bit-packed uint64 [n, words] (from ``pack_sets``); a bool [n, tokens] matrix is packed."""
    A = np.asarray(B)
    if A.ndim != 2:
        raise SimilarityInputError(
            f"{what} must be a 2-D array of bit-packed sets [n, words]; got shape {A.shape}"
        )
    if A.dtype == np.bool_:
        return _pack_bool(A)
    if A.dtype != np.uint64:
        raise SimilarityInputError(
            f"{what} has dtype {A.dtype}; Jaccard/Dice take uint64 sets from pack_sets() "
            "or a bool membership matrix"
        )
    if A.shape[1] < 1:
        raise SimilarityInputError(f"{what} has no words; pack_sets() gives at least one")
    return np.ascontiguousarray(A)


def _validate_data(m: Metric, X, what: str) -> np.ndarray:
    return _as_sets(X, what) if m.kind == "set" else _as_profiles(X, what)


def _validate_threshold(m: Metric, threshold) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise SimilarityInputError(f"threshold {threshold!r} is not a number") from None
    if not (0.0 <= t <= m.max_distance) or not math.isfinite(t):
        hi = "inf)" if math.isinf(m.max_distance) else f"{m.max_distance:g}]"
        raise SimilarityInputError(
            f"threshold {threshold!r} is outside the range of {m.name} distances: "
            f"a finite value in [0, {hi}"
        )
    return t


def _same_width(m: Metric, X: np.ndarray, Y: np.ndarray) -> None:
    if X.shape[1] != Y.shape[1]:
        unit = "words" if m.kind == "set" else "compounds"
        raise SimilarityInputError(
            f"the two sets have {X.shape[1]} and {Y.shape[1]} {unit}; they must match"
        )
    if m.kind == "profile" and X.dtype != Y.dtype:
        raise SimilarityInputError(
            f"the two sets have dtypes {X.dtype} and {Y.dtype}; pass both in one precision"
        )


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set to a positive integer, else the cores this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _threads(threads) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise SimilarityInputError(f"threads must be a positive integer or None; got {threads!r}")
    if threads < 1:
        raise SimilarityInputError(f"threads must be at least 1; got {threads}")
    return int(threads)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None
_controller: ThreadpoolController | None = None


@contextmanager
def _one_blas_thread():
    """BLAS runs single-threaded inside our parallel regions (ref-counted across Python threads,
    so concurrent calls neither race on the setting nor restore it early)."""
    global _blas_users, _blas_limit, _controller
    with _blas_lock:
        if _blas_users == 0:
            if _controller is None:
                _controller = ThreadpoolController()
            _blas_limit = _controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


# =============================================================================================
# Public API
# =============================================================================================


def sort_edges(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], n_cols: int) -> Edges:
    """Concatenate edges (i, j, score) of several parts and sort them by (i, j) (unique pairs:
    one int64 key); ``n_cols`` bounds j."""
    parts = [list(p) for p in parts if len(p[0])]
    if not parts:
        empty = np.zeros(0, np.int64)
        return Edges(empty, empty.copy(), np.zeros(0, np.float64))
    width = np.int64(max(n_cols, 1))
    index = np.result_type(*[p[0].dtype for p in parts], *[p[1].dtype for p in parts])
    # peak memory ~ 32 bytes a link: the key and the scores, then the order and one gathered
    # copy; each part's positions are dropped as soon as they are in the key
    n = sum(len(p[0]) for p in parts)
    key = np.empty(n, np.int64)
    s = np.empty(n, np.float64)
    at = 0
    for p in parts:
        m = len(p[0])
        np.multiply(p[0], width, out=key[at:at + m], dtype=np.int64, casting="unsafe")
        key[at:at + m] += p[1]
        s[at:at + m] = p[2]
        p.clear()
        at += m
    del parts
    order = np.argsort(key)
    s = s[order]
    key = key[order]
    del order
    i = (key // width).astype(index)
    j = (key - i.astype(np.int64) * width).astype(index)
    return Edges(i, j, s)


def _nan_rows(X: np.ndarray) -> np.ndarray:
    return np.isnan(X).any(axis=1)


def pairs_within(X, metric: str, threshold: float, *, threads: int | None = None) -> Edges:
    """Every pair i < j of rows of ``X`` whose distance is <= ``threshold``.

    ``X``: profiles [n, compounds] (float32/float64, NaN = not measured) or, for ``jaccard`` and
    ``dice``, bit-packed sets from :func:`pack_sets`. Memory O(n * compounds + edges).
    """
    m = _lookup(METRICS, metric, "metric")
    X = _validate_data(m, X, "X")
    t = _validate_threshold(m, threshold)
    nthreads = _threads(threads)
    with _one_blas_thread():
        if m.kind == "set":
            return sort_edges([m.engine.pairs(m, X, X, t, True, nthreads)], len(X))
        missing = _nan_rows(X)
        clean = np.flatnonzero(~missing)
        rows, Z = m.prepare(X[clean])
        fast = clean[rows]
        i, j, s = m.engine.pairs(m, Z, Z, t, True, nthreads)
        parts = [(fast[i], fast[j], s)]
        if missing.any():
            mask = missing.astype(np.uint8)
            parts.append(
                _native.generic_pairs(
                    X,
                    np.flatnonzero(missing),
                    X,
                    np.arange(len(X), dtype=np.int64),
                    m.code,
                    t,
                    True,
                    mask,
                    nthreads,
                )
            )
    return sort_edges(parts, len(X))


def pairs_between(X, Y, metric: str, threshold: float, *, threads: int | None = None) -> Edges:
    """Every pair (i, j), i a row of ``X`` and j a row of ``Y``, with distance <= ``threshold``."""
    m = _lookup(METRICS, metric, "metric")
    X = _validate_data(m, X, "X")
    Y = _validate_data(m, Y, "Y")
    _same_width(m, X, Y)
    t = _validate_threshold(m, threshold)
    nthreads = _threads(threads)
    with _one_blas_thread():
        if m.kind == "set":
            return sort_edges([m.engine.pairs(m, X, Y, t, False, nthreads)], len(Y))
        mx, my = _nan_rows(X), _nan_rows(Y)
        cx, cy = np.flatnonzero(~mx), np.flatnonzero(~my)
        rx, Zx = m.prepare(X[cx])
        ry, Zy = m.prepare(Y[cy])
        fx, fy = cx[rx], cy[ry]
        i, j, s = m.engine.pairs(m, Zx, Zy, t, False, nthreads)
        parts = [(fx[i], fy[j], s)]
        none = np.zeros(0, np.uint8)
        if mx.any():  # rows of X with a NaN against every row of Y
            parts.append(
                _native.generic_pairs(
                    X,
                    np.flatnonzero(mx),
                    Y,
                    np.arange(len(Y), dtype=np.int64),
                    m.code,
                    t,
                    False,
                    none,
                    nthreads,
                )
            )
        if my.any():  # NaN-free rows of X against rows of Y with a NaN
            parts.append(
                _native.generic_pairs(
                    X, cx.astype(np.int64), Y, np.flatnonzero(my), m.code, t, False, none, nthreads
                )
            )
    return sort_edges(parts, len(Y))


def topk(Q, L, metric: str, k: int, *, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` library rows of ``L`` nearest to each query row of ``Q``.

    Returns (indices int64 [nq, k], scores float64 [nq, k]), each row sorted by increasing
    distance, ties to the lower library index. Library rows at NaN distance are never returned; a
    query with fewer than ``k`` comparable library rows is padded with index -1 and score NaN.
    """
    m = _lookup(METRICS, metric, "metric")
    Q = _validate_data(m, Q, "Q")
    L = _validate_data(m, L, "L")
    _same_width(m, Q, L)
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise SimilarityInputError(f"k must be an integer; got {k!r}")
    if not 1 <= k <= len(L):
        raise SimilarityInputError(f"k = {k} is out of range: 1 <= k <= {len(L)} library rows")
    k = int(k)
    nthreads = _threads(threads)
    nq = len(Q)
    candidates: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (query rows, d, idx)
    with _one_blas_thread():
        if m.kind == "set":
            hd, hi = m.engine.topk(Q, L, m.code, k, nthreads)
            candidates.append((np.arange(nq), hd, hi))
        else:
            mq, ml = _nan_rows(Q), _nan_rows(L)
            cq, cl = np.flatnonzero(~mq), np.flatnonzero(~ml)
            rq, Zq = m.prepare(Q[cq])
            rl, Zl = m.prepare(L[cl])
            fq, fl = cq[rq], cl[rl]
            if len(fq) and len(fl):
                hd, hi = m.engine.topk(Zq, Zl, m.code, k, nthreads)
                hi = np.where(hi == np.iinfo(np.int64).max, hi, fl[np.minimum(hi, len(fl) - 1)])
                candidates.append((fq, hd, hi))
            all_l = np.arange(len(L), dtype=np.int64)
            if mq.any():  # queries with a NaN against the whole library
                rows = np.flatnonzero(mq)
                hd, hi = _native.generic_topk(Q, rows, L, all_l, m.code, k, nthreads)
                candidates.append((rows, hd, hi))
            if ml.any() and len(cq):  # NaN-free queries against library rows with a NaN
                hd, hi = _native.generic_topk(
                    Q, cq.astype(np.int64), L, np.flatnonzero(ml), m.code, k, nthreads
                )
                candidates.append((cq, hd, hi))
    return _merge_topk(nq, k, candidates)


def _merge_topk(nq, k, candidates) -> tuple[np.ndarray, np.ndarray]:
    width = sum(hd.shape[0] * k for _, hd, _ in candidates) or k
    dist = np.full((nq, width), np.inf)
    idx = np.full((nq, width), np.iinfo(np.int64).max, dtype=np.int64)
    col = 0
    for rows, hd, hi in candidates:
        for c in range(hd.shape[0]):
            dist[rows, col : col + k] = hd[c]
            idx[rows, col : col + k] = hi[c]
            col += k
    order = np.lexsort((idx, dist), axis=-1)[:, :k]
    d = np.take_along_axis(dist, order, axis=1)
    j = np.take_along_axis(idx, order, axis=1)
    empty = ~np.isfinite(d)
    d[empty] = np.nan
    j[empty] = -1
    return j, d


def score_pairs(X, i, j, metric: str, *, Y=None, threads: int | None = None) -> np.ndarray:
    """Distances of the given pairs: rows ``X[i[a]]`` and ``(Y if given else X)[j[a]]``.

    Computed pair by pair with the NaN rule (float64 accumulation); used to score known-linked
    pairs for calibration.
    """
    m = _lookup(METRICS, metric, "metric")
    X = _validate_data(m, X, "X")
    Y = X if Y is None else _validate_data(m, Y, "Y")
    _same_width(m, X, Y)
    ia = _indices(i, len(X), "i")
    jb = _indices(j, len(Y), "j")
    if ia.shape != jb.shape:
        raise SimilarityInputError(f"i and j have lengths {len(ia)} and {len(jb)}; they must match")
    nthreads = _threads(threads)
    if m.kind == "set":
        return _native.set_scores(X, Y, ia, jb, m.code, nthreads)
    return _native.pair_scores(X, Y, ia, jb, m.code, nthreads)


def _indices(a, n: int, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise SimilarityInputError(f"{what} must be a 1-D array of integer row indices")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise SimilarityInputError(f"{what} has a row index outside 0..{n - 1}")
    return arr


def sample_pairs(X, metric: str, n_pairs: int, *, seed, threads: int | None = None) -> Edges:
    """``n_pairs`` distinct pairs i < j drawn uniformly without replacement, with their scores.

    For calibration without all n(n-1)/2 pairs; reproducible for a given ``seed``. Scores may be
    NaN (undefined pairs are kept so that the sample stays uniform). Sorted by (i, j).
    """
    m = _lookup(METRICS, metric, "metric")
    X = _validate_data(m, X, "X")
    n = len(X)
    total = n * (n - 1) // 2
    if isinstance(n_pairs, (bool, np.bool_)) or not isinstance(n_pairs, (int, np.integer)):
        raise SimilarityInputError(f"n_pairs must be an integer; got {n_pairs!r}")
    if not 1 <= n_pairs <= total:
        raise SimilarityInputError(
            f"n_pairs = {n_pairs} is out of range: 1 <= n_pairs <= {total} distinct pairs"
        )
    rng = np.random.default_rng(seed)
    rank = np.sort(rng.choice(total, size=int(n_pairs), replace=False)).astype(np.int64)
    i, j = _unrank_pairs(rank, n)
    return Edges(i, j, score_pairs(X, i, j, metric, threads=threads))


def _pair_start(i: np.ndarray, n: int) -> np.ndarray:
    """Rank of the pair (i, i + 1) in the lexicographic order of pairs i < j."""
    return i * (2 * n - i - 1) // 2


def _unrank_pairs(rank: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lexicographic rank -> (i, j), i < j; float estimate corrected in exact integers."""
    est = n - 0.5 - np.sqrt((n - 0.5) ** 2 - 2.0 * rank)
    i = np.clip(np.floor(est).astype(np.int64), 0, n - 2)
    for _ in range(3):
        i = np.where(_pair_start(i + 1, n) <= rank, i + 1, i)
        i = np.where(_pair_start(i, n) > rank, i - 1, i)
    j = rank - _pair_start(i, n) + i + 1
    return i, j


def pack_sets(
    sets: Iterable[Iterable[str]], vocabulary: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Bit-pack token sets (adulterants, packaging tokens) for Jaccard and Dice.

    Returns (uint64 [n, words], vocabulary): token ``vocabulary[b]`` is bit ``b % 64`` of word
    ``b // 64``. Without a vocabulary, the sorted union of the tokens is used. A token outside a
    given vocabulary is an error (never dropped silently).
    """
    rows = [set(s) for s in sets]
    if vocabulary is None:
        vocab = tuple(sorted(set().union(*rows)))
    else:
        vocab = tuple(vocabulary)
        if len(set(vocab)) != len(vocab):
            raise SimilarityInputError("the vocabulary lists a token twice")
    position = {tok: b for b, tok in enumerate(vocab)}
    member = np.zeros((len(rows), max(1, len(vocab))), dtype=bool)
    for r, tokens in enumerate(rows):
        unknown = tokens - position.keys()
        if unknown:
            raise SimilarityInputError(
                f"set {r} has token(s) not in the vocabulary: {', '.join(sorted(map(str, unknown)))}"
            )
        member[r, [position[t] for t in tokens]] = True
    return _pack_bool(member), vocab


def _pack_bool(member: np.ndarray) -> np.ndarray:
    n, bits = member.shape
    words = max(1, -(-bits // 64))
    padded = np.zeros((n, words * 64), dtype=bool)
    padded[:, :bits] = member
    packed = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False).reshape(n, words)
