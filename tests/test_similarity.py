"""Similarity kernels against an independent oracle: scipy's pdist/cdist on the jointly observed
compounds, with the documented transforms of profiling.similarity (squared cosine, NaN rules)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial import distance

from profiling import similarity as sim
from profiling.similarity import SimilarityInputError

PROFILE_METRICS = ["pearson", "cosine", "squared_cosine", "euclidean", "manhattan", "canberra"]
SET_METRICS = ["jaccard", "dice"]
DTYPES = [np.float64, np.float32]

HYPO = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tol(dtype) -> dict:
    return {"rtol": 1e-10, "atol": 1e-10} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-5}


# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------


def oracle_pair(x: np.ndarray, y: np.ndarray, metric: str) -> float:
    """scipy on the compounds observed in both rows, with the documented NaN rules."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    seen = ~np.isnan(x) & ~np.isnan(y)
    if seen.sum() < 2:
        return np.nan
    u, v = x[seen], y[seen]
    if metric == "pearson" and (np.ptp(u) == 0 or np.ptp(v) == 0):
        return np.nan
    if metric in ("cosine", "squared_cosine") and (not u.any() or not v.any()):
        return np.nan
    name = sim.METRICS[metric].scipy_name
    value = distance.cdist(u[None], v[None], name)[0, 0]
    if metric == "squared_cosine":
        value = 1.0 - (1.0 - value) ** 2
    return value


def oracle_matrix(X, Y, metric) -> np.ndarray:
    """oracle_pair for every (x, y): cdist for NaN-free rows, pair by pair for the others."""
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    D = np.full((len(X), len(Y)), np.nan)
    cx, cy = ~np.isnan(X).any(1), ~np.isnan(Y).any(1)
    if cx.any() and cy.any():
        with np.errstate(all="ignore"):
            C = distance.cdist(X[cx], Y[cy], sim.METRICS[metric].scipy_name)
        if metric == "squared_cosine":
            C = 1.0 - (1.0 - C) ** 2
        if metric == "pearson":
            bad_x, bad_y = np.ptp(X[cx], 1) == 0, np.ptp(Y[cy], 1) == 0
        elif metric in ("cosine", "squared_cosine"):
            bad_x, bad_y = ~X[cx].any(1), ~Y[cy].any(1)
        else:
            bad_x, bad_y = np.zeros(cx.sum(), bool), np.zeros(cy.sum(), bool)
        C[bad_x, :] = np.nan
        C[:, bad_y] = np.nan
        D[np.ix_(cx, cy)] = C
    for a, b in zip(*np.nonzero(~cx[:, None] | ~cy[None, :])):
        D[a, b] = oracle_pair(X[a], Y[b], metric)
    return D


def oracle_sets(A: np.ndarray, B: np.ndarray, metric: str) -> np.ndarray:
    """scipy on boolean membership vectors; two empty sets are NaN (documented)."""
    D = distance.cdist(A, B, metric) if len(A) and len(B) else np.zeros((len(A), len(B)))
    empty = (~A.any(axis=1))[:, None] & (~B.any(axis=1))[None, :]
    D[empty] = np.nan
    return D


def edges_dict(e: sim.Edges) -> dict:
    return {(int(a), int(b)): float(s) for a, b, s in zip(e.i, e.j, e.score)}


# ---------------------------------------------------------------------------------------------
# Strategies: grid values (exact in binary, so constant rows are exactly constant) with
# adversarial structure: zero rows, identical rows, constant rows, NaN entries.
# ---------------------------------------------------------------------------------------------


@st.composite
def profiles(draw, min_rows=2, max_rows=10, d=None):
    n = draw(st.integers(min_rows, max_rows))
    d = d if d is not None else draw(st.integers(2, 7))
    signed = draw(st.booleans())
    lo = -64 if signed else 0
    X = (
        np.array(
            draw(st.lists(st.integers(lo, 64), min_size=n * d, max_size=n * d)), dtype=np.float64
        ).reshape(n, d)
        / 8.0
    )
    for r in range(n):
        kind = draw(st.sampled_from(["plain", "plain", "plain", "zero", "copy", "constant"]))
        if kind == "zero":
            X[r] = 0.0
        elif kind == "copy" and r > 0:
            X[r] = X[draw(st.integers(0, r - 1))]
        elif kind == "constant":
            X[r] = draw(st.integers(lo, 64)) / 8.0
    if draw(st.booleans()):
        nan_mask = np.array(draw(st.lists(st.booleans(), min_size=n * d, max_size=n * d))).reshape(
            n, d
        ) & (np.arange(n * d).reshape(n, d) % 3 == 0)
        X[nan_mask] = np.nan
    return X


@st.composite
def bool_sets(draw, min_rows=2, max_rows=12, width=None):
    n = draw(st.integers(min_rows, max_rows))
    w = width if width is not None else draw(st.sampled_from([3, 24, 64, 70, 130]))
    rows = draw(st.lists(st.lists(st.booleans(), min_size=w, max_size=w), min_size=n, max_size=n))
    B = np.array(rows, dtype=bool).reshape(n, w)
    if n > 2 and draw(st.booleans()):
        B[1] = B[0]
        B[2] = False
    return B


# ---------------------------------------------------------------------------------------------
# Values equal scipy's, for every metric, precision and adversarial input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", PROFILE_METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
@HYPO
@given(X=profiles())
def test_pairs_within_equals_scipy_on_every_pair(metric, dtype, X):
    Xt = X.astype(dtype)
    D = oracle_matrix(Xt, Xt, metric)
    top = sim.METRICS[metric].max_distance
    e = sim.pairs_within(Xt, metric, top if np.isfinite(top) else 1e9)
    got = edges_dict(e)
    want = {
        (a, b): D[a, b]
        for a in range(len(X))
        for b in range(a + 1, len(X))
        if not np.isnan(D[a, b])
    }
    assert set(got) == set(want), "NaN pairs must be absent and every defined pair present"
    keys = sorted(want)
    np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], **tol(dtype))
    assert np.all(e.i < e.j)
    assert e.i.dtype == np.int64 and e.j.dtype == np.int64 and e.score.dtype == np.float64


@pytest.mark.parametrize("metric", PROFILE_METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
@HYPO
@given(data=st.data())
def test_pairs_between_and_score_pairs_equal_scipy(metric, dtype, data):
    d = data.draw(st.integers(2, 6))
    X = data.draw(profiles(min_rows=1, max_rows=8, d=d)).astype(dtype)
    Y = data.draw(profiles(min_rows=1, max_rows=9, d=d)).astype(dtype)
    D = oracle_matrix(X, Y, metric)
    top = sim.METRICS[metric].max_distance
    got = edges_dict(sim.pairs_between(X, Y, metric, top if np.isfinite(top) else 1e9))
    want = {(a, b): D[a, b] for a in range(len(X)) for b in range(len(Y)) if not np.isnan(D[a, b])}
    assert set(got) == set(want)
    keys = sorted(want)
    np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], **tol(dtype))
    ii, jj = np.meshgrid(np.arange(len(X)), np.arange(len(Y)), indexing="ij")
    scores = sim.score_pairs(X, ii.ravel(), jj.ravel(), metric, Y=Y)
    np.testing.assert_allclose(scores, D.ravel(), **tol(np.float64))  # float64 accumulation


@pytest.mark.parametrize("metric", SET_METRICS)
@HYPO
@given(B=bool_sets())
def test_set_metrics_equal_scipy_on_boolean_vectors(metric, B):
    packed, vocab = sim.pack_sets([set(np.flatnonzero(r)) for r in B], vocabulary=range(B.shape[1]))
    assert vocab == tuple(range(B.shape[1]))
    D = oracle_sets(B, B, metric)
    got = edges_dict(sim.pairs_within(packed, metric, 1.0))
    want = {
        (a, b): D[a, b]
        for a in range(len(B))
        for b in range(a + 1, len(B))
        if not np.isnan(D[a, b])
    }
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == v  # same integer counts and the same IEEE division: bit-identical
    half = len(B) // 2
    between = edges_dict(sim.pairs_between(B[:half], B[half:], metric, 1.0))  # bool input packs
    Db = oracle_sets(B[:half], B[half:], metric)
    assert between == {
        (a, b): Db[a, b]
        for a in range(half)
        for b in range(len(B) - half)
        if not np.isnan(Db[a, b])
    }
    ii, jj = np.triu_indices(len(B), 1)
    np.testing.assert_array_equal(sim.score_pairs(packed, ii, jj, metric), D[ii, jj])


def test_documented_nan_rules_and_scipy_divergences():
    # scipy gives 0 for two empty sets under Jaccard; we give NaN (no evidence of a shared cut).
    B = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 1]], dtype=bool)
    assert distance.pdist(B, "jaccard")[0] == 0.0
    np.testing.assert_array_equal(sim.score_pairs(B, [0, 0], [1, 2], "jaccard"), [np.nan, 1.0])
    X = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [np.nan, np.nan, 5.0]])
    i, j = np.array([0, 2, 1, 0]), np.array([1, 1, 3, 2])
    # constant row (the zero row too) -> Pearson undefined; zero row -> cosine undefined;
    # a single shared compound -> NaN for every metric.
    assert np.isnan(sim.score_pairs(X, i, j, "pearson")).tolist() == [True, True, True, True]
    assert np.isnan(sim.score_pairs(X, i, j, "cosine")).tolist() == [False, True, True, True]
    assert np.isnan(sim.score_pairs(X, i, j, "euclidean")).tolist() == [False, False, True, False]
    # Canberra: a 0/0 term counts 0, like scipy.
    assert sim.score_pairs(X, [2], [2], "canberra")[0] == 0.0
    # pairwise deletion: the oracle is scipy on the jointly observed columns
    Y = np.array([[1.0, np.nan, 3.0, 4.0], [2.0, 5.0, np.nan, 1.0]])
    got = sim.score_pairs(Y, [0], [1], "manhattan")[0]
    assert got == distance.cityblock([1.0, 4.0], [2.0, 1.0])


def test_squared_cosine_treats_antiparallel_profiles_as_identical():
    X = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0], [3.0, 2.0, 1.0]])
    e = edges_dict(sim.pairs_within(X, "squared_cosine", 1.0))
    assert e[(0, 1)] == pytest.approx(0.0, abs=1e-15)
    assert edges_dict(sim.pairs_within(X, "cosine", 2.0))[(0, 1)] == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------
# Thresholded output: the same edge set as pdist + threshold
# ---------------------------------------------------------------------------------------------


def _threshold_in_gap(values: np.ndarray, q_lo: float, q_hi: float) -> tuple[float, float]:
    """The middle of the widest gap between sorted distances in a quantile band, and its width:
    a threshold there is far from every distance, so rounding cannot move a pair across it."""
    v = np.sort(values[np.isfinite(values)])
    a, b = int(q_lo * len(v)), int(q_hi * len(v))
    gaps = np.diff(v[a:b])
    g = int(np.argmax(gaps))
    return (v[a + g] + v[a + g + 1]) / 2, gaps[g]


def _random_profiles(rng, n, d, nan_rows=0):
    X = sim.pretreat(rng.gamma(2.0, 1.0, (n, d)), "sum_4root")
    rows = rng.choice(n, size=nan_rows, replace=False)
    X[rows, rng.integers(0, d, nan_rows)] = np.nan
    return X


@pytest.mark.parametrize("metric", PROFILE_METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_threshold_edge_set_equals_pdist(metric, dtype):
    rng = np.random.default_rng(7)
    X = _random_profiles(rng, 700, 24).astype(dtype)  # > 2 panels of 256 lanes, 700 % 6 != 0
    ref = distance.pdist(X.astype(np.float64), sim.METRICS[metric].scipy_name)
    if metric == "squared_cosine":
        ref = 1.0 - (1.0 - ref) ** 2
    t, gap = _threshold_in_gap(ref, 0.01, 0.05)
    e = sim.pairs_within(X, metric, t, threads=2)
    assert np.all(np.diff(e.i * len(X) + e.j) > 0)  # sorted by (i, j), no duplicates
    assert np.all(e.score <= t)
    ii, jj = np.triu_indices(len(X), 1)
    # Ties handled explicitly (as scikit-learn's radius tests do): a pair whose reference
    # distance is within the precision's tolerance of t may fall either side. The threshold sits
    # in the widest gap, so in float64 no pair is that close and the sets must be identical.
    band = tol(dtype)["atol"] * max(1.0, t)
    near = np.abs(ref - t) <= band
    if dtype == np.float64:
        assert not near.any() and gap > 1e-8
    got = set(zip(e.i.tolist(), e.j.tolist()))
    want = set(zip(ii[(ref <= t) & ~near].tolist(), jj[(ref <= t) & ~near].tolist()))
    unsure = set(zip(ii[near].tolist(), jj[near].tolist()))
    assert want <= got and got - want <= unsure
    assert near.sum() <= 0.01 * len(want)  # the tie band is a sliver of the edge set
    lookup = dict(zip(zip(ii.tolist(), jj.tolist()), ref))
    np.testing.assert_allclose(
        e.score, [lookup[p] for p in zip(e.i.tolist(), e.j.tolist())], **tol(dtype)
    )


@pytest.mark.parametrize("metric", PROFILE_METRICS)
def test_key_bound_covers_every_key_within_the_distance(metric):
    """The tiles filter on keys: every key whose distance is <= d must be <= key_bound(d)."""
    from profiling._native import similarity as native

    code = native.METRIC_CODES[metric]
    rng = np.random.default_rng(23)
    # keys: -dot (Pearson, cosine), -|dot| <= 0 (squared cosine), sums >= 0 (the others)
    lo, hi = {"pearson": (-1.5, 1.5), "cosine": (-1.5, 1.5), "squared_cosine": (-1.5, 0.0)}.get(
        metric, (0.0, 9.0)
    )
    keys = np.concatenate([rng.uniform(lo, hi, 20000), np.linspace(lo, hi, 20001)])
    dist = native.final_scores(code, keys)
    assert np.all(np.diff(dist[20000:]) >= 0)  # monotone in the key
    for d in np.concatenate([rng.choice(dist, 200), [0.0, 1.0, 2.0]]):
        bound = native.key_bound(code, d)
        assert np.all(keys[dist <= d] <= bound)
        near = np.nextafter(bound, np.inf)  # the bound is tight to a few ulps, not loose
        assert native.final_scores(code, [near])[0] >= d or metric in (
            "pearson",
            "cosine",
            "squared_cosine",
            "euclidean",
        )


@pytest.mark.parametrize("metric", PROFILE_METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_pair_exactly_at_the_threshold_is_kept(metric, dtype):
    """The float32 filter of float64 data (and the key bounds of float32 data) are conservative:
    a threshold equal to a pair's own score keeps that pair, the hardest case for a filter."""
    rng = np.random.default_rng(13)
    X = _random_profiles(rng, 400, 24).astype(dtype)
    ref = distance.pdist(X.astype(np.float64), sim.METRICS[metric].scipy_name)
    ii, jj = np.triu_indices(len(X), 1)
    picks = np.argsort(ref)[[50, 500, 2000, 8000]]
    for p in picks:
        t = float(edges_dict(sim.pairs_within(X, metric, 2 * ref[p] + 1e-3))[(ii[p], jj[p])])
        e = edges_dict(sim.pairs_within(X, metric, t))
        assert (ii[p], jj[p]) in e and e[(ii[p], jj[p])] == t
        assert all(v <= t for v in e.values())


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "canberra", "pearson"])
def test_float64_filter_holds_over_a_wide_dynamic_range(metric):
    rng = np.random.default_rng(17)
    X = rng.gamma(2.0, 1.0, (500, 12)) * 10.0 ** rng.uniform(-12, 12, 12)  # per-compound scale
    X[rng.random(X.shape) < 0.2] = 0.0
    ref = distance.pdist(X, sim.METRICS[metric].scipy_name)
    t, gap = _threshold_in_gap(ref, 0.01, 0.05)
    assert gap > 1e-9 * t
    e = sim.pairs_within(X, metric, t)
    ii, jj = np.triu_indices(len(X), 1)
    np.testing.assert_array_equal(e.i, ii[ref <= t])
    np.testing.assert_array_equal(e.j, jj[ref <= t])
    # sums are accurate relative to their size; 1 - r is accurate to rounding of r (~1e-16)
    atol = 1e-12 if metric == "pearson" else 0.0
    np.testing.assert_allclose(e.score, ref[ref <= t], rtol=1e-10, atol=atol)


@pytest.mark.parametrize("metric", PROFILE_METRICS)
def test_values_beyond_float32_range_use_the_float64_kernel(metric):
    rng = np.random.default_rng(19)
    X = rng.gamma(2.0, 1.0, (300, 8)) * 1e35  # float32 would overflow
    ref = distance.pdist(X, sim.METRICS[metric].scipy_name)
    if metric == "squared_cosine":
        ref = 1.0 - (1.0 - ref) ** 2
    t, _ = _threshold_in_gap(ref, 0.01, 0.05)
    e = sim.pairs_within(X, metric, t)
    ii, jj = np.triu_indices(len(X), 1)
    np.testing.assert_array_equal(e.i, ii[ref <= t])
    np.testing.assert_array_equal(e.j, jj[ref <= t])
    np.testing.assert_allclose(e.score, ref[ref <= t], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("metric", PROFILE_METRICS)
def test_threshold_between_sets_equals_cdist_with_nan_rows(metric):
    rng = np.random.default_rng(11)
    X = _random_profiles(rng, 300, 24, nan_rows=12)
    Y = _random_profiles(rng, 530, 24, nan_rows=15)
    D = oracle_matrix(X, Y, metric)
    t, gap = _threshold_in_gap(D.ravel(), 0.01, 0.05)
    assert gap > 1e-8
    e = sim.pairs_between(X, Y, metric, t)
    ii, jj = np.nonzero(D <= t)  # row-major: sorted by (i, j)
    np.testing.assert_array_equal(e.i, ii)
    np.testing.assert_array_equal(e.j, jj)
    np.testing.assert_allclose(e.score, D[ii, jj], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("metric", SET_METRICS)
def test_set_threshold_equals_pdist_exactly_including_ties(metric):
    rng = np.random.default_rng(3)
    B = rng.random((900, 70)) < 0.1  # two words per set, many exact ties
    ref = distance.pdist(B, metric)
    packed, _ = sim.pack_sets([set(np.flatnonzero(r)) for r in B], vocabulary=range(70))
    for t in (0.0, 0.5, float(np.quantile(ref[np.isfinite(ref)], 0.01))):
        e = sim.pairs_within(packed, metric, t)
        ii, jj = np.triu_indices(len(B), 1)
        keep = ref <= t  # ties at t included: same division, same doubles
        np.testing.assert_array_equal(e.i, ii[keep])
        np.testing.assert_array_equal(e.j, jj[keep])
        np.testing.assert_array_equal(e.score, ref[keep])


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(5)
    X = _random_profiles(rng, 900, 24, nan_rows=40).astype(np.float32)
    runs = [sim.pairs_within(X, "pearson", 0.02, threads=t) for t in (1, 2, 3, 5)]
    for r in runs[1:]:
        for a, b in zip(runs[0], r):
            np.testing.assert_array_equal(a, b)
    tops = [sim.topk(X[:50], X, "canberra", 7, threads=t) for t in (1, 2, 4)]
    for idx, sc in tops[1:]:
        np.testing.assert_array_equal(idx, tops[0][0])
        np.testing.assert_array_equal(sc, tops[0][1])


def test_concurrent_calls_from_python_threads_agree_and_restore_blas_limits():
    from threadpoolctl import threadpool_info

    before = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    rng = np.random.default_rng(9)
    X = _random_profiles(rng, 600, 24)
    ref = sim.pairs_within(X, "cosine", 0.01, threads=1)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: sim.pairs_within(X, "cosine", 0.01, threads=2), range(8)))
    for o in outs:
        np.testing.assert_array_equal(o.i, ref.i)
        np.testing.assert_array_equal(o.score, ref.score)
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == before


def test_default_threads_follows_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert sim.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3,2")
    assert sim.default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert sim.default_threads() == len(os.sched_getaffinity(0))


def test_kernels_run_under_dask_like_environment():
    """A fresh process with OMP_NUM_THREADS=1 (as Dask workers set) finishes and agrees."""
    code = (
        "import numpy as np; from profiling import similarity as s;"
        "X = np.random.default_rng(1).random((400, 24));"
        "e = s.pairs_within(X, 'euclidean', 1.0); print(s.default_threads(), len(e))"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    X = np.random.default_rng(1).random((400, 24))
    assert out == ["1", str(int((distance.pdist(X) <= 1.0).sum()))]


# ---------------------------------------------------------------------------------------------
# Top-k
# ---------------------------------------------------------------------------------------------


def brute_topk(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference: sort each row by (distance, index), NaN last, pad with -1/NaN."""
    nl = D.shape[1]
    key = np.where(np.isnan(D), np.inf, D)
    order = np.lexsort((np.broadcast_to(np.arange(nl), D.shape), key), axis=-1)[:, :k]
    d = np.take_along_axis(key, order, 1)
    idx = np.where(np.isinf(d), -1, order)
    return idx, np.where(np.isinf(d), np.nan, d)


@pytest.mark.parametrize("metric", PROFILE_METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_topk_equals_brute_force(metric, dtype):
    rng = np.random.default_rng(21)
    L = _random_profiles(rng, 1500, 24, nan_rows=25).astype(dtype)
    L[100] = L[7]  # exact duplicates: ties must go to the lower index
    L[900] = L[7]
    Q = np.vstack([_random_profiles(rng, 40, 24, nan_rows=5), L[[7, 3, 1200]]]).astype(dtype)
    idx, sc = sim.topk(Q, L, metric, 12)
    D = oracle_matrix(Q, L, metric)
    want_idx, want_sc = brute_topk(D, 12)
    np.testing.assert_allclose(sc, want_sc, **tol(dtype))
    # Indices must agree wherever the reference distances are not within rounding of a tie.
    t = tol(dtype)["atol"] * 10
    for q in range(len(Q)):
        for r in range(12):
            if idx[q, r] != want_idx[q, r]:
                assert abs(D[q, idx[q, r]] - D[q, want_idx[q, r]]) < t
    # duplicates of L[7]: query L[7] finds 7, 100, 900 in that order at distance ~0
    q7 = len(Q) - 3
    assert idx[q7, :3].tolist() == [7, 100, 900]
    assert idx.dtype == np.int64 and sc.dtype == np.float64


def test_topk_ties_and_padding_are_exact():
    L = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [np.nan, 1.0], [1.0, 2.0]])
    Q = np.array([[1.0, 2.0], [np.nan, 3.0]])
    idx, sc = sim.topk(Q, L, "manhattan", 5)
    assert idx[0].tolist() == [0, 2, 4, 1, -1]
    assert sc[0, :4].tolist() == [0.0, 0.0, 0.0, 2.0] and np.isnan(sc[0, 4])
    assert idx[1].tolist() == [-1] * 5  # a single observed compound: nothing comparable


@pytest.mark.parametrize("metric", SET_METRICS)
def test_set_topk_equals_brute_force(metric):
    rng = np.random.default_rng(2)
    B = rng.random((400, 24)) < 0.2
    Q = rng.random((30, 24)) < 0.2
    idx, sc = sim.topk(Q, B, metric, 10)
    want_idx, want_sc = brute_topk(oracle_sets(Q, B, metric), 10)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(sc, want_sc)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


def test_sample_pairs_are_distinct_uniform_and_scored_directly():
    rng = np.random.default_rng(4)
    X = _random_profiles(rng, 300, 24, nan_rows=10)
    e = sim.sample_pairs(X, "canberra", 2000, seed=42)
    assert len(e) == 2000
    assert np.all((0 <= e.i) & (e.i < e.j) & (e.j < 300))
    assert len(set(zip(e.i.tolist(), e.j.tolist()))) == 2000
    assert np.all(np.diff(e.i * 300 + e.j) > 0)  # sorted by (i, j)
    want = [oracle_pair(X[a], X[b], "canberra") for a, b in zip(e.i, e.j)]
    np.testing.assert_allclose(e.score, want, rtol=1e-10, atol=1e-10)
    again = sim.sample_pairs(X, "canberra", 2000, seed=42)
    np.testing.assert_array_equal(again.i, e.i)
    np.testing.assert_array_equal(again.j, e.j)
    other = sim.sample_pairs(X, "canberra", 2000, seed=43)
    assert not np.array_equal(other.i * 300 + other.j, e.i * 300 + e.j)


@pytest.mark.parametrize("n", [2, 3, 17, 64])
def test_sample_pairs_can_draw_every_pair_exactly_once(n):
    X = np.random.default_rng(n).random((n, 3))
    e = sim.sample_pairs(X, "euclidean", n * (n - 1) // 2, seed=0)
    ii, jj = np.triu_indices(n, 1)
    np.testing.assert_array_equal(e.i, ii)
    np.testing.assert_array_equal(e.j, jj)
    np.testing.assert_allclose(e.score, distance.pdist(X), rtol=1e-12)


def test_unrank_pairs_is_exact_for_a_large_library():
    n = 3_000_000
    rank = np.array([0, 1, n - 2, n - 1, n * (n - 1) // 2 - 1, 123_456_789_012])
    i, j = sim._unrank_pairs(rank, n)
    np.testing.assert_array_equal(sim._pair_start(i, n) + (j - i - 1), rank)
    assert np.all((0 <= i) & (i < j) & (j < n))


# ---------------------------------------------------------------------------------------------
# Pretreatments
# ---------------------------------------------------------------------------------------------


def test_pretreatments_match_their_formulas():
    rng = np.random.default_rng(8)
    X = rng.gamma(2.0, 1.0, (50, 6))
    N = X / X.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(sim.pretreat(X, "none"), X)
    np.testing.assert_allclose(sim.pretreat(X, "sum"), N)
    np.testing.assert_allclose(sim.pretreat(X, "sum").sum(axis=1), 1.0)
    np.testing.assert_allclose(sim.pretreat(X, "sum_sqrt"), np.sqrt(N))
    np.testing.assert_allclose(sim.pretreat(X, "sum_4root"), N**0.25)
    np.testing.assert_allclose(sim.pretreat(X, "sum_log"), np.log10(N + sim.SUM_LOG_OFFSET))
    np.testing.assert_allclose(sim.pretreat(X, "sum_std"), N / N.std(axis=0, ddof=1))
    np.testing.assert_allclose(
        sim.pretreat(X, "sum_4root_std"), N**0.25 / (N**0.25).std(axis=0, ddof=1)
    )
    assert set(sim.PRETREATMENTS) >= {"none", "sum", "sum_sqrt", "sum_4root", "sum_log", "sum_std"}


def test_pretreatments_treat_nan_as_not_measured():
    X = np.array([[1.0, np.nan, 3.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0], [np.nan] * 3])
    N = sim.pretreat(X, "sum")
    np.testing.assert_allclose(N[0], [0.25, np.nan, 0.75])
    np.testing.assert_allclose(N[1], [0.5, 0.5, 0.0])
    assert np.isnan(N[2]).all() and np.isnan(N[3]).all()  # no composition without a sum
    assert sim.pretreat(X, "sum_log")[1, 2] == pytest.approx(np.log10(sim.SUM_LOG_OFFSET))


def test_std_scaling_comes_from_the_reference_when_given():
    rng = np.random.default_rng(1)
    library = rng.gamma(2.0, 1.0, (200, 5))
    queries = rng.gamma(2.0, 1.0, (10, 5))
    p = sim.PRETREATMENTS["sum_std"]
    std = p.fit(library)
    N_lib = library / library.sum(1, keepdims=True)
    np.testing.assert_allclose(std, N_lib.std(axis=0, ddof=1))
    out, used = p.apply(queries, reference_std=std)
    np.testing.assert_array_equal(used, std)
    np.testing.assert_allclose(out, queries / queries.sum(1, keepdims=True) / std)
    np.testing.assert_allclose(sim.pretreat(queries, "sum_std", reference=library), out)
    # a compound without spread keeps its scale instead of becoming inf
    flat = np.column_stack([np.ones(4), np.arange(1.0, 5.0)])
    assert np.isfinite(sim.pretreat(flat, "sum_std")).all()


# ---------------------------------------------------------------------------------------------
# Input handling and validation errors
# ---------------------------------------------------------------------------------------------


def test_other_dtypes_and_layouts_are_converted():
    X = np.arange(40, dtype=np.int32).reshape(8, 5) % 7
    e_int = sim.pairs_within(X, "manhattan", 10.0)
    e_f = sim.pairs_within(X.astype(np.float64), "manhattan", 10.0)
    np.testing.assert_array_equal(e_int.score, e_f.score)
    F = np.asfortranarray(np.random.default_rng(0).random((30, 6)).astype(np.float32))
    e = sim.pairs_within(F, "euclidean", 0.8)
    np.testing.assert_allclose(
        e.score,
        distance.pdist(F.astype(np.float64))[distance.pdist(F.astype(np.float64)) <= 0.8],
        rtol=1e-5,
    )


def test_pack_sets_layout_and_vocabulary():
    packed, vocab = sim.pack_sets([{"lidocaine", "caffeine"}, set(), {"levamisole"}])
    assert vocab == ("caffeine", "levamisole", "lidocaine")
    assert packed.dtype == np.uint64 and packed.shape == (3, 1)
    assert packed[:, 0].tolist() == [0b101, 0, 0b010]
    wide, _ = sim.pack_sets([{100}, {0, 64}], vocabulary=range(130))
    assert wide.shape == (2, 3) and wide[0, 1] == 1 << 36 and wide[1].tolist() == [1, 1, 0]
    with pytest.raises(SimilarityInputError, match="not in the vocabulary: lignocaine"):
        sim.pack_sets([{"lignocaine"}], vocabulary=["lidocaine"])


GOOD = np.random.default_rng(0).random((5, 4))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sim.pairs_within(GOOD[0], "pearson", 0.1), "2-D"),
        (lambda: sim.pairs_within(GOOD[None], "pearson", 0.1), "2-D"),
        (lambda: sim.pairs_within(GOOD.astype(complex), "pearson", 0.1), "dtype"),
        (lambda: sim.pairs_within(GOOD.astype(str), "pearson", 0.1), "dtype"),
        (lambda: sim.pairs_within(np.where(GOOD > 0.5, np.inf, GOOD), "cosine", 0.1), "infinite"),
        (lambda: sim.pairs_within(GOOD[:, :1], "euclidean", 0.1), "at least 2"),
        (lambda: sim.pairs_within(GOOD, "pearson", -0.1), "outside the range"),
        (lambda: sim.pairs_within(GOOD, "pearson", 2.5), "outside the range"),
        (lambda: sim.pairs_within(GOOD, "squared_cosine", 1.5), "outside the range"),
        (lambda: sim.pairs_within(GOOD, "euclidean", np.nan), "outside the range"),
        (lambda: sim.pairs_within(GOOD, "euclidean", np.inf), "outside the range"),
        (lambda: sim.pairs_within(GOOD, "euclidean", "near"), "not a number"),
        (lambda: sim.pairs_within(GOOD, "spearman", 0.1), "unknown metric"),
        (lambda: sim.pairs_within(GOOD, "euclidean", 0.1, threads=0), "at least 1"),
        (lambda: sim.pairs_within(GOOD, "euclidean", 0.1, threads=1.5), "positive integer"),
        (lambda: sim.pairs_within(GOOD, "jaccard", 0.1), "uint64"),
        (lambda: sim.pairs_between(GOOD, GOOD[:, :3], "cosine", 0.1), "must match"),
        (lambda: sim.pairs_between(GOOD, GOOD.astype(np.float32), "cosine", 0.1), "precision"),
        (lambda: sim.topk(GOOD, GOOD, "cosine", 0), "out of range"),
        (lambda: sim.topk(GOOD, GOOD, "cosine", 6), "out of range"),
        (lambda: sim.topk(GOOD, GOOD, "cosine", 2.0), "integer"),
        (lambda: sim.sample_pairs(GOOD, "cosine", 11, seed=0), "out of range"),
        (lambda: sim.sample_pairs(GOOD, "cosine", 0, seed=0), "out of range"),
        (lambda: sim.score_pairs(GOOD, [0, 5], [1, 2], "cosine"), "outside 0..4"),
        (lambda: sim.score_pairs(GOOD, [0, 1], [1], "cosine"), "lengths"),
        (lambda: sim.score_pairs(GOOD, [0.0], [1.0], "cosine"), "integer row indices"),
        (lambda: sim.pretreat(GOOD, "sum_cuberoot"), "unknown pretreatment"),
        (lambda: sim.pretreat(-GOOD, "sum"), "non-negative"),
        (lambda: sim.PRETREATMENTS["sum_std"].apply(GOOD, reference_std=[1.0]), "one per compound"),
    ],
)
def test_bad_input_raises_a_clear_project_error(call, message):
    with pytest.raises(SimilarityInputError, match=message):
        call()


def test_nan_is_allowed_and_small_inputs_give_empty_results():
    assert issubclass(SimilarityInputError, ValueError)
    X = GOOD.copy()
    X[0, 0] = np.nan
    assert len(sim.pairs_within(X, "euclidean", 10.0)) == 10
    empty = sim.pairs_within(GOOD[:1], "euclidean", 10.0)
    assert len(empty) == 0 and empty.i.dtype == np.int64
    assert len(sim.pairs_between(GOOD[:0], GOOD, "canberra", 1.0)) == 0
