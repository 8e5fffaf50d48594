"""Operation evaluation: what changed in the target area while an operation ran, against
comparison areas, and in the areas next to it (displacement; DOMAIN: Before/after, Operation
Crackdown).

Method: a comparative interrupted time series (difference in differences by imputation). Time is
counted in weeks from the operation's start.

1. **Comparison areas give the common time effects**, per block of
   ``evaluation.time_block_weeks`` weeks (aligned on the operation's start) so that sparse
   data still pin each block down. Seizure counts per area and week: Poisson regression
   ``log mu = area + block``; prices and purity per exhibit: least squares
   ``log y = area + area trend + block + drug``.
   With no comparison area the time effects are zero: a segmented regression of the target.
2. **The target's own baseline** — level and linear trend — is fitted on its weeks before the
   operation, after removing the common time effects (Poisson with the time effects as offset
   for counts; least squares for log prices and purity).
3. **The effect** is the mean gap, on the log scale, between what the target shows during the
   operation and its baseline projected forward: ``exp(gap) - 1`` (0.25 = +25 %). For counts,
   ``log(seizures seen / seizures expected)``. The same is computed after the operation ended
   (``after``) when an end date is given.
   The baseline is the ``evaluation.baseline_weeks`` weeks just before the operation.
4. **Inference by placebo windows**: the same gap is computed for every window of the
   operation's length that lies wholly before it — in the comparison areas (each judged against
   the others) and in the target — each against a baseline of the same length just before it,
   so that a placebo carries the same extrapolation error as the real gap. The gap's variance
   is its independent-observation variance plus a between-window variance ``tau2`` (the slowly
   changing mix of dealers and batches), estimated from the placebos. The p-value is the share
   of placebo gaps, standardised by the same variance, at least as large as the target's (a
   permutation test over areas and pre-period windows), and the interval is that test inverted,
   so that it leaves out 0 exactly when p < 1 - level (see :meth:`Evaluator.effect`). With
   fewer than ``evaluation.min_placebo_windows`` windows the interval assumes independent
   observations, and says so.

   One pooled ``tau2`` per measure is deliberate: standardising each area by its own placebos
   (a handful of overlapping windows) or each window by the placebos near it in time gave no
   better calibration on simulated markets, because those scales are too noisy to estimate;
   see BENCHMARKS.md (Market intelligence) for the false-positive rates measured over seeds.

Displacement: the same measures in each area adjacent to the target, against the same comparison
areas (which, by default, exclude the target and its neighbours).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from profiling.errors import InputError
from profiling.market.prices import exhibit_prices, select_drug
from profiling.market.seizures import (
    DAYS_PER_MONTH,
    Source,
    config,
    open_source,
    seizure_keys,
)
from profiling.reference_data import __file__ as _reference_init

MEASURES = ("n_seizures", "price_per_g", "price_per_pure_g", "purity")
DEFAULT_ADJACENCY = Path(_reference_init).with_name("adjacency.csv")


# --- adjacency ------------------------------------------------------------------------------


# Log-scale differences below this are floating-point rounding, not data (a billionth).
_ROUNDING = 1e-9


def _standardised(gap: float, se: float) -> float:
    """|gap| / se. A series with no spread (every price the same) has a gap and a standard
    error of rounding size, or exactly 0: no change is then no change (0), not a significant
    one, and a real change with no spread at all is certain (inf), not a division by zero."""
    if abs(gap) <= _ROUNDING:
        return 0.0
    return abs(gap) / se if se > _ROUNDING else math.inf


def _coarse_adjacency(adj: dict[str, set[str]], coarse: dict[str, str]) -> dict[str, set[str]]:
    """Adjacency between coarse areas: two coarse areas border when any of their areas do."""
    out: dict[str, set[str]] = {}
    for a, near in adj.items():
        ca = coarse.get(a, a)
        out.setdefault(ca, set()).update(coarse.get(b, b) for b in near)
    return {a: near - {a} for a, near in out.items()}


def read_adjacency(path: str | Path | None = None) -> dict[str, set[str]]:
    """Area -> adjacent areas, made symmetric. A CSV with an ``area`` column and an ``adjacent``
    column of ';'-joined areas (the simulator's areas.csv has this shape); lines starting with
    '#' are comments."""
    path = Path(path) if path else DEFAULT_ADJACENCY
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read adjacency file {path}: {err}.") from None
    cols = {c.strip().lower(): c for c in frame.columns}
    adj_col = next((cols[c] for c in ("adjacent", "adjacent_areas", "neighbours", "neighbors")
                    if c in cols), None)
    if "area" not in cols or adj_col is None:
        raise InputError(f"adjacency file {path} needs the columns area and adjacent "
                         "(';'-joined areas).")
    out: dict[str, set[str]] = {}
    for area, adj in zip(frame[cols["area"]], frame[adj_col]):
        area = area.strip()
        for b in (x.strip() for x in adj.split(";")):
            if b and b != area:
                out.setdefault(area, set()).add(b)
                out.setdefault(b, set()).add(area)
        out.setdefault(area, set())
    return out


# --- common time effects from the comparison areas ------------------------------------------


def poisson_irls(X: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None,
                 max_iter: int = 100, tol: float = 1e-9) -> tuple[np.ndarray, int]:
    """(beta, rank) of a log-linear Poisson regression with an optional offset (iteratively
    reweighted least squares on the normal equations; rank-deficient designs are reported,
    not solved)."""
    n, k = X.shape
    off = np.zeros(n) if offset is None else offset
    mu = y + 0.5
    eta = np.log(mu)
    beta = np.zeros(k)
    for _ in range(max_iter):
        z = eta - off + (y - mu) / mu
        Xw = X * mu[:, None]
        new, _, rank, _ = np.linalg.lstsq(Xw.T @ X, Xw.T @ z, rcond=None)
        if rank < k:
            return beta, rank
        done = np.max(np.abs(new - beta)) < tol
        beta = new
        eta = np.clip(X @ beta + off, -30, 30)
        mu = np.exp(eta)
        if done:
            break
    return beta, k


def _indicators(values: np.ndarray, prefix: str) -> tuple[list[np.ndarray], list[str], list]:
    levels = sorted(set(values.tolist()))
    return ([(values == v).astype(float) for v in levels[1:]],
            [f"{prefix}:{v}" for v in levels[1:]], levels)


def _time_design(area: np.ndarray, time_key: np.ndarray, t_months: np.ndarray,
                 drug: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """intercept + area (all but the first) + area trends (all but the first) + time key (all
    but the first) + drug (all but the first)."""
    parts, cols = [np.ones(len(area))], ["intercept"]
    a_parts, a_cols, areas = _indicators(area, "area")
    parts += a_parts
    cols += a_cols
    for a in areas[1:]:
        parts.append(np.where(area == a, t_months, 0.0))
        cols.append(f"trend:{a}")
    t_parts, t_cols, _ = _indicators(time_key, "time")
    parts += t_parts
    cols += t_cols
    if drug is not None:
        d_parts, d_cols, _ = _indicators(drug, "drug")
        parts += d_parts
        cols += d_cols
    return np.column_stack(parts), cols


@dataclass
class TimeEffects:
    """Common effects of time (and drug) on the log scale, from the comparison areas."""

    time: dict[int, float]          # week (counts) or time block (exhibits) -> effect
    drug: dict[str, float]

    def of(self, keys: np.ndarray, drugs: np.ndarray | None = None) -> np.ndarray:
        """Effects for observations; NaN where the comparison areas say nothing of the time."""
        out = np.array([self.time.get(int(k), np.nan) for k in keys], dtype=float)
        if drugs is not None:
            out += np.array([self.drug.get(d, 0.0) for d in drugs])
        return out


def count_time_effects(counts: pd.DataFrame, block_weeks: int) -> TimeEffects:
    """Time effects of the comparison areas' weekly counts (``area``, ``week``, ``n``; every
    week of the range present), per block of ``block_weeks`` weeks: the Poisson regression with
    area and block effects, whose maximum-likelihood block effect is the log of the block's
    total (the areas' own trends are left to each target's baseline). Keys are weeks."""
    if counts.empty:
        return TimeEffects({}, {})
    block = np.floor(counts["week"].to_numpy() / block_weeks)
    total = counts.groupby(block)["n"].sum()
    total = total[total > 0]       # a block without any comparison seizure says nothing
    mean = float(np.log(total).mean()) if len(total) else 0.0
    effect = {b: float(np.log(v)) - mean for b, v in total.items()}
    return TimeEffects({int(w): effect[b] for w, b in zip(counts["week"], block) if b in effect},
                       {})


def linear_time_effects(area: np.ndarray, block: np.ndarray, t_months: np.ndarray,
                        drug: np.ndarray, y: np.ndarray) -> TimeEffects:
    """Time-block and drug effects of least squares on the comparison areas' log values (area
    effects and area trends absorb each area's own level and drift)."""
    if len(y) == 0:
        return TimeEffects({}, {})
    X, cols = _time_design(area, block, t_months, drug)
    if len(y) <= X.shape[1]:
        return TimeEffects({}, {})
    # normal equations: p is small (areas, blocks, drugs) while n can be large
    beta, _, rank, _ = np.linalg.lstsq(X.T @ X, X.T @ y, rcond=None)
    if rank < X.shape[1]:
        return TimeEffects({}, {})
    coef = dict(zip(cols, beta))
    blocks = sorted(set(block.tolist()))
    drugs = sorted(set(drug.tolist()))
    return TimeEffects({int(b): float(coef.get(f"time:{b}", 0.0)) for b in blocks},
                       {d: float(coef.get(f"drug:{d}", 0.0)) for d in drugs})


# --- the target's baseline and the gap ------------------------------------------------------


def linear_gap(t: np.ndarray, z: np.ndarray, base: np.ndarray, window: np.ndarray,
               min_n: int) -> tuple[float, float]:
    """(mean gap of ``z`` in the window from the line ``a + b t`` fitted on ``base``, its
    standard error if observations were independent — residual variance of the window mean
    plus the prediction variance of the line at the window's mean time); NaN when either side
    has fewer than ``min_n`` observations."""
    fit = base & ~window
    nf, nw = int(fit.sum()), int(window.sum())
    if nf < min_n or nw < min_n:
        return np.nan, np.nan
    tf, zf = t[fit], z[fit]
    tm, zm = tf.mean(), zf.mean()
    sxx = float(((tf - tm) ** 2).sum())
    slope = float(((tf - tm) * (zf - zm)).sum() / sxx) if sxx > 0 and nf > 2 else 0.0
    resid = zf - (zm + slope * (tf - tm))
    s2 = float(resid @ resid / max(nf - (2 if slope else 1), 1))
    tw = float(t[window].mean())
    gap = float(z[window].mean() - (zm + slope * (tw - tm)))
    var = s2 / nw + s2 / nf + (s2 * (tw - tm) ** 2 / sxx if slope else 0.0)
    return gap, float(np.sqrt(var))


def count_gap(t: np.ndarray, y: np.ndarray, offset: np.ndarray, base: np.ndarray,
              window: np.ndarray, min_n: int) -> tuple[float, float]:
    """(log of seizures seen / expected in the window, its Poisson standard error) with the
    expected counts from ``exp(a + b t + offset)`` fitted on ``base``; NaN when the baseline
    holds fewer than ``min_n`` seizures."""
    fit = base & ~window
    if y[fit].sum() < min_n or window.sum() == 0:
        return np.nan, np.nan
    with_slope = len(np.unique(t[fit])) > 1
    X = np.column_stack([np.ones(fit.sum()), t[fit]]) if with_slope else np.ones((fit.sum(), 1))
    beta, rank = poisson_irls(X, y[fit], offset[fit])
    if rank < X.shape[1]:
        return np.nan, np.nan
    mu_fit = np.exp(X @ beta + offset[fit])
    cov = np.linalg.inv((X * mu_fit[:, None]).T @ X)
    Xw = np.column_stack([np.ones(window.sum()), t[window]]) if with_slope else \
        np.ones((window.sum(), 1))
    mu_w = np.exp(Xw @ beta + offset[window])
    expected = float(mu_w.sum())
    grad = (Xw * mu_w[:, None]).sum(axis=0) / expected
    seen = float(y[window].sum())
    gap = float(np.log(max(seen, 0.5) / expected))
    return gap, float(np.sqrt(1 / max(seen, 0.5) + grad @ cov @ grad))


@dataclass
class Effect:
    estimate: float | None = None
    lo: float | None = None
    hi: float | None = None
    p_value: float | None = None
    log_effect: float | None = None
    se: float | None = None
    n_placebo: int = 0
    inference: str = ""

    def as_json(self) -> dict:
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "p_value": self.p_value,
                "log_effect": self.log_effect, "se": self.se, "n_placebo": self.n_placebo,
                "inference": self.inference or None}


def _finite(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


# --- the evaluation -------------------------------------------------------------------------


@dataclass
class Window:
    start: pd.Timestamp
    end: pd.Timestamp          # last day of the operation (inclusive)
    end_given: bool


def _week(dates, start: pd.Timestamp) -> np.ndarray:
    days = (pd.to_datetime(pd.Series(dates)) - start).dt.days.to_numpy(dtype=float)
    return np.floor(days / int(config("market.toml")["evaluation"]["week_days"]))


@dataclass
class Series:
    """One measure in one area, ready for gaps: week of each observation, the value to compare
    (log value less the common time effects, or weekly counts with their offset)."""

    weeks: np.ndarray
    t: np.ndarray              # months
    value: np.ndarray          # z (linear) or y (counts)
    offset: np.ndarray | None  # counts only
    weight: np.ndarray         # observations each entry stands for
    blocked: bool = False      # common time effects per block were taken out

    def gap(self, window: np.ndarray, base: np.ndarray, min_n: int) -> tuple[float, float]:
        if self.offset is None:
            return linear_gap(self.t, self.value, base, window, min_n)
        return count_gap(self.t, self.value, self.offset, base, window, min_n)


class Evaluator:
    """Effects of one operation window for any target area against one set of comparison
    areas. The comparison fits are made once and shared by the target and its neighbours.

    Inference: placebo windows (same length, same baseline, wholly before the operation) in
    the comparison areas — each judged against the other comparison areas — and in the target
    itself say how far a gap strays by chance (see :meth:`effect`)."""

    def __init__(self, frame: pd.DataFrame, comparison: list[str], window: Window):
        cfg = config("market.toml")["evaluation"]
        self.level = float(cfg["level"])
        self.min_n = int(cfg["min_n"])
        self.min_windows = int(cfg["min_placebo_windows"])
        self.block = int(cfg["time_block_weeks"])
        self.history = int(cfg["baseline_weeks"])
        step = int(cfg["week_days"])
        self.window = window
        f = frame.assign(week=_week(frame["seized_on"], window.start))
        self.frame = f[np.isfinite(f["week"].to_numpy())]
        self.end_week = int(np.floor((window.end - window.start).days / step))
        weeks = self.frame["week"].to_numpy()
        self.weeks = np.arange(int(weeks.min()), int(weeks.max()) + 1) if len(weeks) else \
            np.zeros(0, dtype=np.int64)
        self.comparison = [c for c in comparison if c in set(self.frame["area"])]
        self._effects_cache: dict = {}
        self._placebo_cache: dict = {}

    # common time effects from a set of areas (cached)
    def time_effects(self, areas: tuple[str, ...], measure: str) -> TimeEffects | None:
        key = (areas, measure)
        if key not in self._effects_cache:
            if not areas:
                self._effects_cache[key] = None
            else:
                comp = self.frame[self.frame["area"].isin(areas)]
                if measure == "n_seizures":
                    counts = self._counts(comp)
                    counts = counts[counts.groupby("area")["n"].transform("sum") > 0]
                    self._effects_cache[key] = count_time_effects(counts, self.block)
                else:
                    v = comp[measure].to_numpy(dtype=float)
                    ok = np.isfinite(v) & (v > 0)
                    c = comp.loc[ok]
                    wk = c["week"].to_numpy()
                    self._effects_cache[key] = linear_time_effects(
                        c["area"].to_numpy(dtype=object), np.floor(wk / self.block),
                        wk * 7 / DAYS_PER_MONTH, c["drug"].to_numpy(dtype=object),
                        np.log(v[ok]))
        return self._effects_cache[key]

    def _counts(self, f: pd.DataFrame) -> pd.DataFrame:
        s = f.drop_duplicates(["area", "seizure"])
        areas = sorted(set(s["area"])) if len(s) else []
        grid = pd.MultiIndex.from_product([areas, self.weeks], names=["area", "week"])
        n = s.groupby(["area", "week"]).size().reindex(grid, fill_value=0)
        return n.rename("n").reset_index()

    def series(self, area: str, measure: str, against: tuple[str, ...]) -> Series:
        f = self.frame[self.frame["area"] == area]
        eff = self.time_effects(against, measure)
        if measure == "n_seizures":
            y = np.zeros(len(self.weeks))
            if len(f):
                n = f.drop_duplicates("seizure").groupby("week").size()
                y = n.reindex(self.weeks, fill_value=0).to_numpy(dtype=float)
            w = self.weeks.astype(float)
            blocked = eff is not None and bool(eff.time)
            off = eff.of(w) if blocked else np.zeros(len(w))
            ok = np.isfinite(off)
            return Series(w[ok], w[ok] * 7 / DAYS_PER_MONTH, y[ok], off[ok], y[ok], blocked)
        v = f[measure].to_numpy(dtype=float)
        good = np.isfinite(v) & (v > 0)
        wk = f["week"].to_numpy()[good]
        z = np.log(v[good])
        blocked = eff is not None and bool(eff.time)
        if blocked:
            z = z - eff.of(np.floor(wk / self.block), f["drug"].to_numpy(dtype=object)[good])
        keep = np.isfinite(z)
        return Series(wk[keep], wk[keep] * 7 / DAYS_PER_MONTH, z[keep], None,
                      np.ones(int(keep.sum())), blocked)

    def _placebos(self, s: Series, lead: int, length: int) -> list[tuple[float, float]]:
        """(gap, se) of every placebo window of ``s`` wholly before the operation. With common
        time effects per block, placebo windows sit on the block grid as the real window does
        (a window that straddles blocks averages more blocks' noise and would look calmer)."""
        out = []
        if not len(s.weeks):
            return out
        first = int(s.weeks.min()) + self.history + lead
        step = self.block if s.blocked else 1
        first += (lead - first) % step
        for start in range(first, -length + 1, step):
            base = (s.weeks >= start - lead - self.history) & (s.weeks < start - lead)
            g, se = s.gap((s.weeks >= start) & (s.weeks < start + length), base, self.min_n)
            if np.isfinite(g) and se > 0:
                out.append((g, se))
        return out

    def _comparison_placebos(self, measure: str, lead: int, length: int) -> list:
        key = (measure, lead, length)
        if key not in self._placebo_cache:
            out: list = []
            for c in self.comparison:
                others = tuple(x for x in self.comparison if x != c)
                out += self._placebos(self.series(c, measure, others), lead, length)
            self._placebo_cache[key] = out
        return self._placebo_cache[key]

    def effect(self, s: Series, measure: str, lead: int, length: int) -> Effect:
        """The gap of the window [lead, lead + length) weeks against the baseline of the
        ``history`` weeks before the operation, with its placebo-calibrated interval.

        The gap's variance is ``tau2 + se**2``: ``se`` its independent-observation error,
        ``tau2`` what the slowly changing mix of dealers and batches adds whatever the number
        of observations, estimated from the placebo gaps as mean(gap**2) - mean(se**2). The
        p-value is the share of the placebo gaps, standardised the same way (``u``), at least
        as large as the target's, counting the target: ``(1 + #{u >= |z|}) / (1 + n)``. The
        interval ``gap ± q * sqrt(tau2 + se**2)`` inverts that test: ``q`` is the
        ``floor(level * (n + 1)) + 1``-th smallest ``u``, so the interval leaves out 0 exactly
        when p < 1 - level. (A plain ``level`` quantile of ``u`` sits one placebo lower and
        left 0 out of 9 % of intervals in control areas where p < 0.05 said 6 %.)"""
        base = (s.weeks >= -self.history) & (s.weeks <= -1)
        window = (s.weeks >= lead) & (s.weeks < lead + length)
        gap, se = s.gap(window, base, self.min_n)
        if not np.isfinite(gap):
            return Effect()
        pl = np.asarray(self._comparison_placebos(measure, lead, length)
                        + self._placebos(s, lead, length)).reshape(-1, 2)
        tail = (1 - self.level) / 2
        # the rank of q; more placebos than that are needed (20 at the 95 % level)
        rank = int(np.floor(self.level * (len(pl) + 1))) + 1
        if len(pl) >= self.min_windows and rank <= len(pl):
            tau2 = max(0.0, float(np.mean(pl[:, 0] ** 2) - np.mean(pl[:, 1] ** 2)))
            u = np.sort(np.abs(pl[:, 0]) / np.sqrt(tau2 + pl[:, 1] ** 2))
            q = float(u[rank - 1])
            sd = float(np.sqrt(tau2 + se ** 2))
            p = float((1 + np.sum(u >= _standardised(gap, sd))) / (1 + len(u)))
            how = (f"{len(pl)} placebo windows before the operation (comparison areas and "
                   f"target): standard error {sd:.3g} on the log scale, of which "
                   f"{np.sqrt(tau2):.3g} from changes that persist for weeks; interval "
                   f"{q:.2f} standard errors each side (the placebo ranked {rank} of "
                   f"{len(u)})")
        else:
            sd = se
            q = float(stats.norm.ppf(1 - tail))
            p = float(2 * stats.norm.sf(_standardised(gap, se)))
            how = (f"only {len(pl)} placebo windows (fewer than {self.min_windows}, or too "
                   f"few for a {self.level:.0%} interval): the interval assumes independent "
                   "observations and is too narrow if they are not")
        return Effect(float(np.expm1(gap)), float(np.expm1(gap - q * sd)),
                      float(np.expm1(gap + q * sd)), p, gap, sd, len(pl), how)

    def effects(self, target: str) -> dict[str, dict]:
        from threadpoolctl import threadpool_limits

        # many small least-squares problems: BLAS threads only add contention
        with threadpool_limits(1):
            return self._effects(target)

    def _effects(self, target: str) -> dict[str, dict]:
        against = tuple(c for c in self.comparison if c != target)
        method = ("comparative interrupted time series (difference in differences)"
                  if against else "segmented regression of the target alone")
        out = {}
        for m in MEASURES:
            s = self.series(target, m, against)
            length = self.end_week + 1
            base = (s.weeks >= -self.history) & (s.weeks < 0)
            during = (s.weeks >= 0) & (s.weeks <= self.end_week)
            after = s.weeks > self.end_week
            n_before, n_during = int(s.weight[base].sum()), int(s.weight[during].sum())
            eff = self.effect(s, m, 0, length)
            row = {**eff.as_json(), "n_target_before": n_before, "n_target_during": n_during,
                   "method": method, "warning": None}
            if eff.estimate is None:
                row["warning"] = (f"too few observations in the {self.history} weeks before "
                                  f"({n_before}) or during ({n_during}) the operation (at least "
                                  f"{self.min_n} each)")
            if self.window.end_given:
                row["n_target_after"] = int(s.weight[after].sum())
                after_len = int(s.weeks.max() - self.end_week) if after.any() else 0
                if after_len > 0:
                    row["after"] = self.effect(s, m, self.end_week + 1, after_len).as_json()
            comp = self.frame[self.frame["area"].isin(against)]
            if m == "n_seizures":
                row["n_comparison"] = int(comp.drop_duplicates(["area", "seizure"]).shape[0])
            else:
                v = comp[m].to_numpy(dtype=float)
                row["n_comparison"] = int((np.isfinite(v) & (v > 0)).sum())
            out[m] = row
        return out


def estimate(frame: pd.DataFrame, treated: str, comparison: list[str], window: Window) -> dict:
    """Effects of the operation on every measure in ``treated`` against ``comparison``
    (``frame``: per exhibit — area, seized_on, seizure, drug, price_per_g, price_per_pure_g,
    purity)."""
    return Evaluator(frame, comparison, window).effects(treated)


def exhibit_frame(records: pd.DataFrame) -> pd.DataFrame:
    """What :class:`Evaluator` reads, one row per exhibit: area, seized_on, seizure, drug,
    price_per_g, price_per_pure_g, purity."""
    ex = exhibit_prices(records, "area", "month")
    return pd.DataFrame({"area": records["area"].to_numpy(dtype=object),
                         "seized_on": pd.to_datetime(records["seized_on"]).to_numpy(),
                         "seizure": seizure_keys(records),
                         "drug": records["drug"].to_numpy(dtype=object),
                         "price_per_g": ex["price_per_g"].to_numpy(),
                         "price_per_pure_g": ex["price_per_pure_g"].to_numpy(),
                         "purity": records["purity"].to_numpy(dtype=float)})


def _parse_date(text: str, what: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(dt.date.fromisoformat(str(text).strip()))
    except ValueError:
        raise InputError(f"{what} {text!r} is not an ISO date (YYYY-MM-DD).") from None


@dataclass
class EvaluationRun:
    evaluation: dict           # evaluation.json
    weekly: pd.DataFrame       # weekly.csv: area, week, week_start, role, measures


def weekly_series(frame: pd.DataFrame, areas: dict[str, str], start: pd.Timestamp) -> pd.DataFrame:
    """Per area and week: seizures, median price per gram and per pure gram, median purity, and
    ``price_index`` — the median price per gram relative to its drug's median over the data (so
    that weeks mixing crack and powder compare) — with the area's role (target, comparison,
    adjacent)."""
    columns = ["area", "role", "week", "week_start", "n_seizures", "n_priced",
               "median_price_per_g", "price_index", "median_price_per_pure_g", "median_purity"]
    f = frame[frame["area"].isin(areas)]
    wk = _week(f["seized_on"], start)
    f = f.assign(week=wk).loc[np.isfinite(wk)]
    if not len(f):
        return pd.DataFrame(columns=columns)
    typical = f.groupby("drug")["price_per_g"].transform("median")
    f = f.assign(price_index=f["price_per_g"] / typical)
    g = f.groupby(["area", "week"])
    out = pd.DataFrame({
        "n_seizures": g["seizure"].nunique(),
        "n_priced": g["price_per_g"].count(),
        "median_price_per_g": g["price_per_g"].median(),
        "price_index": g["price_index"].median(),
        "median_price_per_pure_g": g["price_per_pure_g"].median(),
        "median_purity": g["purity"].median(),
    }).reset_index()
    weeks = np.arange(int(f["week"].min()), int(f["week"].max()) + 1)
    grid = pd.MultiIndex.from_product([sorted(areas), weeks], names=["area", "week"])
    out = out.set_index(["area", "week"]).reindex(grid).reset_index()
    out["n_seizures"] = out["n_seizures"].fillna(0).astype(np.int64)
    out["n_priced"] = out["n_priced"].fillna(0).astype(np.int64)
    step = int(config("market.toml")["evaluation"]["week_days"])
    out["week"] = out["week"].astype(np.int64)
    out["week_start"] = (start + pd.to_timedelta(out["week"] * step, unit="D")).dt.strftime("%Y-%m-%d")
    out["role"] = out["area"].map(areas)
    return out[columns]


def run_evaluate(source, out, area: str, start: str, end: str | None = None,
                 compare: list[str] | None = None, adjacency: str | Path | None = None,
                 drug: str = "all", level: str = "1", mapping=None, as_of=None,
                 progress=None, redactor=None) -> EvaluationRun:
    """`profile evaluate`: write evaluation.json, weekly.csv and evaluation.html into ``out``.
    ``drug`` and ``level`` select the seizures (default: every drug, street level). With a
    :class:`~profiling.redact.Redactor` that coarsens areas, the evaluation is of coarse areas:
    ``area``, ``compare`` and the adjacency are coarsened the same way before anything is
    fitted; ``redaction.json`` is written beside the outputs."""
    from profiling.market.outputs import write_csv, write_json
    from profiling.market.pages import evaluation_page

    advance = progress or (lambda n: None)
    _parse_date(start, "--start")       # a bad date fails before the data are read
    src = open_source(source, mapping=mapping, as_of=as_of)
    advance(1)
    run = evaluate(src, area, start, end, compare, adjacency, drug, level, advance,
                   redactor=redactor)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "evaluation.json", run.evaluation)
    write_csv(out / "weekly.csv", run.weekly)
    evaluation_page(out / "evaluation.html", run.evaluation, run.weekly)
    if redactor is not None:
        redactor.write_manifest(out, ["evaluation.json", "weekly.csv", "evaluation.html"])
    advance(1)
    return run


def evaluate(src: Source, area: str, start: str, end: str | None = None,
             compare: list[str] | None = None, adjacency: str | Path | None = None,
             drug: str = "all", level: str = "1", progress=None,
             redactor=None) -> EvaluationRun:
    """The evaluation of an operation in ``area`` from ``start`` (to ``end``, default the end
    of the data) on the seizures of ``src``, without writing anything (see
    :func:`run_evaluate`). With a redactor that coarsens areas, areas, comparison areas and
    adjacency are coarsened first."""
    from profiling.market.levels import select_level

    advance = progress or (lambda n: None)
    confidence = float(config("market.toml")["evaluation"]["level"])
    t0 = _parse_date(start, "--start")
    records = src.data.records
    adj = read_adjacency(adjacency)
    if redactor is not None and redactor.coarsens:
        coarse = redactor.area_names(records)
        area = coarse.get(area, area)
        compare = list(dict.fromkeys(coarse.get(c, c) for c in compare)) if compare else compare
        adj = _coarse_adjacency(adj, coarse)
        records = redactor.coarse_records(records)
    rec, level_note = select_level(select_drug(records, drug), src.library, level)
    rec = rec[pd.to_datetime(rec["seized_on"]).notna().to_numpy()]
    areas_present = sorted(set(records["area"].tolist()) - {""})
    if area not in areas_present:
        raise InputError(f"area {area!r} has no seizures in the data; areas are: "
                         + (", ".join(areas_present) or "none") + ".")
    dates = pd.to_datetime(rec["seized_on"])
    last_day = dates.max() if len(dates) else t0
    if end:
        t1 = _parse_date(end, "--end")
        if t1 < t0:
            raise InputError(f"--end {end} is before --start {start}.")
    else:
        t1 = max(last_day, t0)
    window = Window(t0, t1, bool(end))
    neighbours = sorted(adj.get(area, set()) & set(areas_present))
    warnings = []
    if area not in adj:
        warnings.append(f"{area} is not in the adjacency file: no displacement measured")
    if compare:
        unknown = [c for c in compare if c not in areas_present]
        if unknown:
            raise InputError("comparison area(s) " + ", ".join(map(repr, unknown)) +
                             " have no seizures in the data; areas are: " +
                             ", ".join(areas_present) + ".")
        comparison = [c for c in compare if c != area]
    else:
        comparison = [a for a in areas_present if a != area and a not in neighbours]
    if not comparison:
        warnings.append("no comparison area: segmented regression of the target area alone")
    frame = exhibit_frame(rec)
    if not (dates >= t0).any():
        warnings.append(f"no seizures on or after {t0.date()} in the data: nothing during the "
                        "operation to compare")
    evaluator = Evaluator(frame, comparison, window)
    effects = evaluator.effects(area)
    advance(1)
    displacement = {b: evaluator.effects(b) for b in neighbours if b not in comparison}
    advance(1)
    for name, e in [("target", effects), *displacement.items()]:
        for m, v in e.items():
            if v.get("warning"):
                warnings.append(f"{area if name == 'target' else name} {m}: {v['warning']}")
    evaluation = {
        "area": area, "start": t0.date().isoformat(), "end": t1.date().isoformat(),
        "end_given": bool(end), "comparison": comparison, "adjacent": neighbours,
        "drug": drug, "supply_level": level_note, "level": confidence,
        "effects": effects, "displacement": displacement, "warnings": warnings,
        "method": ("comparative interrupted time series: common week effects from the "
                   "comparison areas (Poisson on weekly seizure counts, least squares on log "
                   "price and purity per exhibit), the target's own level and trend fitted "
                   "before the operation, placebo windows for the intervals" if comparison else
                   "segmented regression of the target area alone (level and trend before the "
                   "operation), placebo windows for the intervals"),
    }
    roles = {area: "target", **{c: "comparison" for c in comparison},
             **{b: "adjacent" for b in neighbours if b not in comparison}}
    return EvaluationRun(evaluation, weekly_series(frame, roles, t0))
