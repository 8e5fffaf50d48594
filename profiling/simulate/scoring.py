"""Scoring links and classes against a simulation's truth (batch, lot, dealer per exhibit).

Shared by the acceptance tests and ``benchmarks/link_truth.py``. Pair counts come from
scikit-learn's pair confusion matrix (never an n^2 loop), so classes of 200,000 exhibits are
scored in a second.

- **classes**: adjusted Rand index and pairwise precision / recall against the import batch;
- **chemical links**: the pairs the link stage asserts (same class, or distance within the
  threshold) against the import batch: precision and recall over *all* pairs;
- **layers**: of the links reported with ``same_cut`` (``same_distribution``), the share whose
  exhibits share the middle-market lot (the street dealer), among those where the truth has one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import pair_confusion_matrix


@dataclass
class PairScore:
    ari: float
    precision: float
    recall: float
    true_pairs: int
    asserted_pairs: int

    def row(self) -> dict:
        return dict(self.__dict__)


def pair_counts(truth: np.ndarray, labels: np.ndarray) -> tuple[int, int, int]:
    """(pairs in one truth group and one label, pairs in one label, pairs in one truth group)."""
    (_, fp), (fn, tp) = pair_confusion_matrix(truth, labels)
    return int(tp // 2), int((tp + fp) // 2), int((tp + fn) // 2)


def class_score(truth: np.ndarray, labels: np.ndarray) -> PairScore:
    tp, asserted, true = pair_counts(truth, labels)
    return PairScore(float(adjusted_rand_score(truth, labels)),
                     tp / asserted if asserted else float("nan"), tp / true if true else float("nan"),
                     true, asserted)


def link_score(truth: np.ndarray, labels: np.ndarray, cross_i: np.ndarray,
               cross_j: np.ndarray) -> PairScore:
    """Chemical links = pairs of one class, plus ``cross`` pairs (different classes, within the
    threshold)."""
    tp, asserted, true = pair_counts(truth, labels)
    different = labels[cross_i] != labels[cross_j]
    ci, cj = cross_i[different], cross_j[different]
    hit = int((truth[ci] == truth[cj]).sum())
    tp, asserted = tp + hit, asserted + len(ci)
    return PairScore(float("nan"), tp / asserted if asserted else float("nan"),
                     tp / true if true else float("nan"), true, asserted)


def best_threshold_recall(truth: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray,
                          precision: float = 0.95) -> tuple[float, float]:
    """The recall a single threshold tuned on the truth reaches at ``precision`` or better,
    from candidate pairs ``(i, j, d)`` (every pair below some generous distance): (recall,
    threshold)."""
    sizes = np.unique(truth, return_counts=True)[1].astype(np.int64)
    true = int((sizes * (sizes - 1) // 2).sum())
    order = np.argsort(d, kind="stable")
    same = truth[i[order]] == truth[j[order]]
    tp = np.cumsum(same)
    prec = tp / np.arange(1, len(same) + 1)
    ok = np.flatnonzero(prec >= precision)
    if not len(ok):
        return 0.0, float("nan")
    k = ok.max()
    return float(tp[k] / true), float(d[order][k])


def layer_precision(links: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Of links marked same cut / same distribution: the share truly of one lot / one dealer."""
    t = truth.set_index("exhibit_id")
    out = {}
    for flag, key in (("same_cut", "lot"), ("same_distribution", "dealer")):
        sel = links[links[flag].astype(bool)]
        a = t[key].reindex(sel["exhibit_a"].astype(str)).to_numpy()
        b = t[key].reindex(sel["exhibit_b"].astype(str)).to_numpy()
        known = (a >= 0) & (b >= 0)
        out[flag] = {"links": len(sel), "judged": int(known.sum()),
                     "precision": float(np.mean(a[known] == b[known])) if known.any()
                     else float("nan")}
    return out
