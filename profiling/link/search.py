"""Searching the library, with a threshold that knows how many comparisons were made.

A search of one exhibit against a library of N exhibits makes N - 1 comparisons. At a per-pair
false-positive rate ``a`` it collects about ``a (N - 1)`` adventitious links: 1 % is a hundred
links per exhibit at 10,000 and a thousand at 100,000. This is the database-search problem of DNA
databases. The link threshold is therefore set so that the *expected number of adventitious links
per searched exhibit* is ``ADVENTITIOUS`` (default 0.01) at the library's current size:

    per-pair rate a = ADVENTITIOUS / (N - 1),   threshold t = the a-quantile of the null.

The null is the distance between exhibits of *different chemical classes* (after the classes are
built, different classes stand for different batches; before, different seizures), measured on
every pair of a deterministic sample of at most ``NULL_SAMPLE`` exhibits (20,000 exhibits: 2 x
10^8 pairs). When the rate asked for is below what the sample resolves (fewer than ``MIN_TAIL``
expected null pairs), the lower tail is extrapolated: near 0 the null's distribution function
behaves as c t^m (m: the local dimension of the distance), whose exponent is the Hill estimator
on the ``TAIL`` smallest null distances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from profiling import similarity as sim

ADVENTITIOUS = 0.01    # expected adventitious links per searched exhibit
NULL_SAMPLE = 20_000
TAIL = 200             # smallest null distances used for the tail's exponent
MIN_TAIL = 10          # expected null pairs below the threshold for the empirical quantile


@dataclass
class SearchThreshold:
    threshold: float
    per_search: float          # expected adventitious links per searched exhibit
    per_pair: float            # the per-pair rate that gives it
    library_exhibits: int
    null: str                  # "different classes" | "different seizures"
    null_pairs: int            # pairs of the null measured
    method: str                # "empirical quantile" | "tail extrapolation (exponent m)"

    def as_json(self) -> dict:
        return dict(self.__dict__)


def tail_threshold(smallest: np.ndarray, n_null: int, rate: float) -> tuple[float, str]:
    """The ``rate``-quantile of a null of ``n_null`` distances whose smallest values (sorted,
    at least the ones below the quantile or TAIL of them) are ``smallest``."""
    want = rate * n_null
    if len(smallest) == 0:
        return 0.0, "no null pairs"
    if want >= MIN_TAIL and math.ceil(want) <= len(smallest):
        return float(smallest[math.ceil(want) - 1]), "empirical quantile"
    k = min(TAIL, len(smallest))
    top = float(smallest[k - 1])
    low = np.maximum(smallest[:k - 1], top * 1e-9)
    if top <= 0 or k < 3:
        return float(top if want >= k else 0.0), "empirical quantile"
    m = 1.0 / max(float(np.mean(np.log(top / low))), 1e-12)      # Hill estimator of the exponent
    t = top * (want / k) ** (1.0 / m)
    return float(min(t, top)), f"tail extrapolation (exponent {m:.2f})"


def _sample(n: int, size: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(20_261_201).choice(n, size, replace=False))


def search_threshold(Xp: np.ndarray, groups: np.ndarray, metric: str, n_library: int, *,
                     per_search: float = ADVENTITIOUS, null: str = "different classes",
                     threads=None, sample: int = NULL_SAMPLE) -> SearchThreshold:
    """The threshold at which a search against ``n_library`` exhibits expects ``per_search``
    adventitious links. ``groups``: the class (or seizure) of each row of ``Xp``; pairs of
    different groups are the null."""
    rate = per_search / max(n_library - 1, 1)
    s = _sample(len(Xp), sample)
    X, g = np.ascontiguousarray(Xp[s]), np.asarray(groups)[s]
    _, counts = np.unique(g, return_counts=True)
    n_null = int((len(s) * (len(s) - 1) - int((counts * (counts - 1)).sum())) // 2)
    need = max(TAIL, math.ceil(rate * n_null) + 1)
    if n_null == 0:
        return SearchThreshold(0.0, per_search, rate, n_library, null, 0, "no null pairs")
    # a first guess from random pairs, then widen until enough null pairs are in hand
    probe = sim.sample_pairs(X, metric, min(200_000, n_null), seed=7, threads=threads)
    ok = g[probe.i] != g[probe.j]
    d = np.sort(probe.score[ok & np.isfinite(probe.score)])
    if not len(d):
        return SearchThreshold(0.0, per_search, rate, n_library, null, n_null, "no null pairs")
    t = float(d[min(len(d) - 1, max(0, math.ceil(need / n_null * len(d))))])
    smallest = np.zeros(0)
    for _ in range(12):
        e = sim.pairs_within(X, metric, t, threads=threads)
        diff = g[e.i] != g[e.j]
        smallest = np.sort(e.score[diff])
        if len(smallest) >= need or t >= d[-1]:
            break
        t = min(t * 2, float(d[-1])) if t > 0 else float(d[min(len(d) - 1, 10)])
    threshold, method = tail_threshold(smallest, n_null, rate)
    return SearchThreshold(threshold, per_search, rate, n_library, null, n_null, method)


def nearest(Q: np.ndarray, L: np.ndarray, metric: str, k: int,
            threads=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``L`` for each row of ``Q`` (``sim.topk``; -1 pads)."""
    k = min(k, len(L))
    if k < 1 or not len(Q):
        return np.full((len(Q), 0), -1, np.int64), np.zeros((len(Q), 0))
    return sim.topk(Q, L, metric, k, threads=threads)
