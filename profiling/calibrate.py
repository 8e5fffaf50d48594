"""Calibration of a link the way forensic science does it.

Populations (DOMAIN: Populations; Popovic's rules):

- ``R1``: linked = pairs of exhibits of the same seizure; unlinked = pairs from different seizures;
- ``R2``: linked only inside seizures of 2 to 10 exhibits; unlinked only between single-exhibit
  seizures;
- attribute rules, combinable with either: linked pairs must agree on every ``linked_same``
  column; unlinked pairs must differ on every ``unlinked_differ`` column; a pair with a missing
  value (blank) in any listed column, or a missing seizure reference, is in neither population.

Scores follow :mod:`profiling.similarity`'s convention: a distance, lower = more similar. The
threshold at a false-positive rate ``alpha`` is the largest distance at which at most
``alpha`` of the unlinked pairs would be linked; links keep pairs with distance <= threshold.

Likelihood ratios are score-based (KDE or logistic calibration of the distance, as the NFI
``lir`` package does), with Cllr and Cllr-min (after pool-adjacent-violators calibration).
Unlinked populations larger than ``max_unlinked`` pairs are sampled uniformly with a seed; the
counts reported are always those of the whole population.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from profiling.errors import InputError

RULES = ("R1", "R2")
_ENUMERATE_ROWS = 6000   # up to 18M candidate pairs enumerated exactly; beyond, sampled


@dataclass(frozen=True)
class PopulationRule:
    rule: str = "R1"
    linked_same: tuple[str, ...] = ()
    unlinked_differ: tuple[str, ...] = ()
    max_unlinked: int = 200_000
    seed: int = 0

    def describe(self) -> dict:
        return {"rule": self.rule, "linked_same": list(self.linked_same),
                "unlinked_differ": list(self.unlinked_differ), "max_unlinked": self.max_unlinked,
                "seed": self.seed}


@dataclass
class Population:
    linked_i: np.ndarray
    linked_j: np.ndarray
    unlinked_i: np.ndarray
    unlinked_j: np.ndarray
    n_linked: int
    n_unlinked: int            # size of the whole unlinked population
    sampled: bool              # unlinked pairs are a uniform sample of it

    @property
    def n_unlinked_used(self) -> int:
        return len(self.unlinked_i)


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes, -1 for missing ('' or NaN)."""
    v = values.astype(object).where(values.astype(str).str.strip() != "", None)
    codes, _ = pd.factorize(v, use_na_sentinel=True)
    return codes


def build_population(records: pd.DataFrame, rule: PopulationRule = PopulationRule(),
                     seizure_column: str = "seizure_id") -> Population:
    """Linked and unlinked pairs (i < j, row positions of ``records``) under ``rule``."""
    if rule.rule not in RULES:
        raise InputError(f"population rule must be one of {RULES}, not {rule.rule!r}.")
    for col in (*rule.linked_same, *rule.unlinked_differ):
        if col not in records.columns:
            raise InputError(f"population rule names column {col!r}, which the records lack "
                             f"(columns: {', '.join(map(str, records.columns))}).")
    n = len(records)
    seizure = _codes(records[seizure_column])
    size = np.bincount(seizure[seizure >= 0], minlength=max(1, seizure.max() + 1)) if n else np.zeros(1, int)
    seizure_size = np.where(seizure >= 0, size[np.maximum(seizure, 0)], 0)
    same_cols = [_codes(records[c]) for c in rule.linked_same]
    differ_cols = [_codes(records[c]) for c in rule.unlinked_differ]
    listed = same_cols + differ_cols
    complete = (seizure >= 0)
    for c in listed:
        complete &= c >= 0

    # linked: pairs inside each seizure
    if rule.rule == "R1":
        linked_ok = complete
    else:
        linked_ok = complete & (seizure_size >= 2) & (seizure_size <= 10)
    li, lj = _within_groups(seizure, linked_ok)
    keep = np.ones(len(li), dtype=bool)
    for c in same_cols:
        keep &= c[li] == c[lj]
    li, lj = li[keep], lj[keep]

    # unlinked: pairs from different seizures
    eligible = complete & ((seizure_size == 1) if rule.rule == "R2" else True)
    rows = np.flatnonzero(eligible)
    keys = [seizure, *differ_cols]
    total = _count_all_differ([k[rows] for k in keys])
    rng = np.random.default_rng(rule.seed)
    if total <= rule.max_unlinked and len(rows) <= _ENUMERATE_ROWS:
        ui, uj = np.triu_indices(len(rows), k=1)
        ui, uj = rows[ui], rows[uj]
        keep = np.ones(len(ui), dtype=bool)
        for k in keys:
            keep &= k[ui] != k[uj]
        ui, uj = ui[keep], uj[keep]
        sampled = False
    else:
        ui, uj = _sample_differing(rows, keys, min(rule.max_unlinked, total), rng)
        sampled = len(ui) < total
    return Population(li, lj, ui, uj, len(li), int(total), sampled)


def _within_groups(groups: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(ok)
    order = rows[np.argsort(groups[rows], kind="stable")]
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(g)]
    parts_i, parts_j = [], []
    for s, e in zip(starts, ends):
        if e - s >= 2:
            a, b = np.triu_indices(e - s, k=1)
            members = np.sort(order[s:e])
            parts_i.append(members[a])
            parts_j.append(members[b])
    if not parts_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i, j = np.concatenate(parts_i), np.concatenate(parts_j)
    o = np.lexsort((j, i))
    return i[o].astype(np.int64), j[o].astype(np.int64)


def _pairs_agreeing(keys: list[np.ndarray]) -> int:
    """Number of pairs equal on every key (keys are codes of the same rows)."""
    frame = pd.DataFrame({f"k{t}": k for t, k in enumerate(keys)})
    sizes = frame.groupby(list(frame.columns), sort=False).size().to_numpy(dtype=np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def _count_all_differ(keys: list[np.ndarray]) -> int:
    """Pairs that differ on every key, by inclusion-exclusion over the keys they agree on."""
    n = len(keys[0]) if keys else 0
    total = n * (n - 1) // 2
    result = total
    for r in range(1, len(keys) + 1):
        for subset in combinations(range(len(keys)), r):
            result += (-1) ** r * _pairs_agreeing([keys[s] for s in subset])
    return int(result)


def _sample_differing(rows: np.ndarray, keys: list[np.ndarray], n_pairs: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform sample without replacement of pairs (i < j) of ``rows`` differing on every key."""
    m = len(rows)
    chosen_i: list[np.ndarray] = []
    chosen_j: list[np.ndarray] = []
    seen: set[int] = set()
    need = n_pairs
    while need > 0:
        a = rng.integers(0, m, size=2 * need + 64)
        b = rng.integers(0, m, size=2 * need + 64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keep = lo != hi
        for k in keys:
            keep &= k[rows[lo]] != k[rows[hi]]
        lo, hi = lo[keep], hi[keep]
        code = lo.astype(np.int64) * m + hi
        _, first = np.unique(code, return_index=True)
        first.sort()
        fresh = [f for f in first.tolist() if int(code[f]) not in seen][:need]
        seen.update(int(code[f]) for f in fresh)
        chosen_i.append(rows[lo[fresh]])
        chosen_j.append(rows[hi[fresh]])
        need -= len(fresh)
    i, j = np.concatenate(chosen_i), np.concatenate(chosen_j)
    o = np.lexsort((j, i))
    return i[o].astype(np.int64), j[o].astype(np.int64)


# --- ROC, thresholds -------------------------------------------------------------------------


def _finite_or_worst(d: np.ndarray) -> np.ndarray:
    """NaN distances (metric undefined for the pair) count as the least similar."""
    d = np.asarray(d, dtype=float)
    return np.where(np.isnan(d), np.inf, d)


def auc(linked: np.ndarray, unlinked: np.ndarray) -> float:
    """Area under the ROC curve of -distance separating linked from unlinked pairs: the
    Mann-Whitney statistic from mid-ranks (ties count a half), one sort, no per-threshold
    curve (equal to scikit-learn's roc_auc_score; tests/test_calibrate.py). NaN distances count
    as the least similar."""
    n1, n0 = len(linked), len(unlinked)
    if n1 == 0 or n0 == 0:
        return float("nan")
    d = np.r_[_finite_or_worst(linked), _finite_or_worst(unlinked)]
    order = np.argsort(d, kind="stable")
    ds = d[order]
    # mid-ranks of the distances, ascending (a tie group shares the mean of its ranks)
    starts = np.r_[0, np.flatnonzero(ds[1:] != ds[:-1]) + 1]
    ends = np.r_[starts[1:], len(ds)]
    mid = (starts + ends + 1) / 2.0
    ranks = np.empty(len(d))
    ranks[order] = np.repeat(mid, ends - starts)
    # linked pairs should have the small distances: U counts unlinked above linked
    u = n1 * n0 + n1 * (n1 + 1) / 2.0 - ranks[:n1].sum()
    return float(u / (n1 * n0))


def roc(linked: np.ndarray, unlinked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, distance threshold) along the ROC curve."""
    from sklearn.metrics import roc_curve
    y = np.r_[np.ones(len(linked)), np.zeros(len(unlinked))]
    s = -np.r_[_finite_or_worst(linked), _finite_or_worst(unlinked)]
    s = np.where(np.isinf(s), np.finfo(float).min, s)
    fpr, tpr, thr = roc_curve(y, s)
    return fpr, tpr, -thr


@dataclass
class Threshold:
    distance: float
    fpr: float        # realised on the unlinked population
    fnr: float        # linked pairs left unlinked
    target_fpr: float


def threshold_at_fpr(linked: np.ndarray, unlinked: np.ndarray, fpr: float = 0.01) -> Threshold:
    """The largest distance t with (unlinked pairs with d <= t) / n_unlinked <= fpr."""
    if not 0 <= fpr < 1:
        raise InputError(f"false-positive rate must be in [0, 1), not {fpr}.")
    u = np.sort(_finite_or_worst(unlinked))
    if len(u) == 0:
        raise InputError("the unlinked population is empty: cannot choose a threshold.")
    k = int(np.floor(fpr * len(u)))
    if k >= len(u):
        t = float(u[-1])
    else:
        t = float(np.nextafter(u[k], -np.inf))
        # ties at u[k]: step below every tied value
        while k > 0 and u[k - 1] > t:
            k -= 1
            t = float(np.nextafter(u[k], -np.inf))
    lk = _finite_or_worst(linked)
    return Threshold(t, float(np.mean(u <= t)), float(np.mean(lk > t)) if len(lk) else float("nan"), fpr)


# --- likelihood ratios -----------------------------------------------------------------------


def cllr(log10_lr_linked: np.ndarray, log10_lr_unlinked: np.ndarray) -> float:
    """Log-likelihood-ratio cost (Brümmer): 0 perfect, 1 uninformative."""
    a = np.log2(1 + 10.0 ** (-np.asarray(log10_lr_linked, float)))
    b = np.log2(1 + 10.0 ** np.asarray(log10_lr_unlinked, float))
    return float(0.5 * (a.mean() + b.mean()))


def pav_log10_lr(linked: np.ndarray, unlinked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators calibration of -distance: optimal monotone LRs (for Cllr-min)."""
    from sklearn.isotonic import IsotonicRegression
    x = -np.r_[_finite_or_worst(linked), _finite_or_worst(unlinked)]
    x = np.where(np.isinf(x), np.finfo(float).min, x)
    y = np.r_[np.ones(len(linked)), np.zeros(len(unlinked))]
    post = IsotonicRegression(increasing=True, out_of_bounds="clip").fit_transform(x, y)
    prior_odds = len(linked) / len(unlinked)
    with np.errstate(divide="ignore"):
        log10_lr = np.log10(post) - np.log10(1 - post) - np.log10(prior_odds)
    return log10_lr[: len(linked)], log10_lr[len(linked):]


def cllr_min(linked: np.ndarray, unlinked: np.ndarray) -> float:
    a, b = pav_log10_lr(linked, unlinked)
    return cllr(a, b)


@dataclass
class LRModel:
    """Score-based LR: log10 LR as a function of distance, bounded to the data's support."""

    kind: str                                   # 'logistic' | 'kde'
    params: dict = field(default_factory=dict)

    def log10_lr(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=float)
        lo, hi = self.params["bounds"]
        if self.kind == "logistic":
            a, b = self.params["intercept"], self.params["slope"]
            out = (a + b * d) / np.log(10) - self.params["log10_prior_odds"]
        else:
            from scipy.stats import gaussian_kde

            k1 = gaussian_kde(np.asarray(self.params["linked_sample"]), self.params["bw_linked"])
            k0 = gaussian_kde(np.asarray(self.params["unlinked_sample"]), self.params["bw_unlinked"])
            x = np.nan_to_num(d, nan=0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                f1, f0 = k1(x), k0(x)
                out = np.log10(f1) - np.log10(f0)
            out[out == np.inf], out[out == -np.inf] = hi, lo
            # far outside both samples both densities underflow: the side decides, at the bound
            both = np.isnan(out)
            out[both] = np.where(x[both] > np.median(self.params["unlinked_sample"]), lo, hi)
        out = np.where(np.isnan(d), lo, out)
        return np.clip(out, lo, hi)

    def as_json(self) -> dict:
        return {"kind": self.kind, **{k: v for k, v in self.params.items()}}


def _bounds(n_linked: int, n_unlinked: int) -> tuple[float, float]:
    """LRs the data can support: no stronger than one error in the population sizes."""
    return (-float(np.log10(max(n_linked, 1) + 1)), float(np.log10(max(n_unlinked, 1) + 1)))


def fit_lr(linked: np.ndarray, unlinked: np.ndarray, kind: str = "logistic",
           sample: int = 5000, seed: int = 0) -> LRModel:
    """Fit a score-based LR model on linked and unlinked distances."""
    from scipy.stats import gaussian_kde
    from sklearn.linear_model import LogisticRegression
    lk = np.asarray(linked, float)
    uk = np.asarray(unlinked, float)
    lk, uk = lk[np.isfinite(lk)], uk[np.isfinite(uk)]
    if len(lk) < 2 or len(uk) < 2:
        raise InputError("need at least two linked and two unlinked pairs to fit likelihood ratios.")
    bounds = _bounds(len(lk), len(uk))
    if kind == "logistic":
        x = np.r_[lk, uk].reshape(-1, 1)
        y = np.r_[np.ones(len(lk)), np.zeros(len(uk))]
        model = LogisticRegression(C=1e6, max_iter=1000).fit(x, y)
        return LRModel("logistic", {
            "intercept": float(model.intercept_[0]), "slope": float(model.coef_[0, 0]),
            "log10_prior_odds": float(np.log10(len(lk) / len(uk))), "bounds": list(bounds)})
    if kind == "kde":
        rng = np.random.default_rng(seed)
        ls = rng.choice(lk, size=min(sample, len(lk)), replace=False)
        us = rng.choice(uk, size=min(sample, len(uk)), replace=False)
        k1, k0 = gaussian_kde(ls), gaussian_kde(us)
        return LRModel("kde", {"linked_sample": ls.tolist(), "unlinked_sample": us.tolist(),
                               "bw_linked": float(k1.factor), "bw_unlinked": float(k0.factor),
                               "bounds": list(bounds)})
    raise InputError(f"LR calibration must be logistic or kde, not {kind!r}.")

