"""Trends per area and the availability indicator.

A trend is the Theil-Sen slope (median of pairwise slopes, ``scipy.stats.theilslopes``) of a
measure over the periods with data, against time in months, with Sen's confidence interval and
a Mann-Kendall test of a monotone trend — DOMAIN: Price series and evaluation methods.

A market's period values are autocorrelated: dealers, lots and batches persist for months, so
a month's median purity or price resembles the last month's. Sen's interval and the
Mann-Kendall test assume independent periods and are then too narrow (on simulated markets,
84 % of nominal 95 % intervals held the true slope, and 21 % of trendless series were
"significant"). Both therefore use the variance of Kendall's S multiplied by ``n / n*`` (the
effective sample size ``n*``, as in Hamed & Rao's and Yue & Wang's modified Mann-Kendall tests),
with ``n / n*`` the factor by which the autocorrelation inflates the variance of a slope:
``w' R w / w' w`` (``w`` the centred times, ``R`` the residual correlation matrix).

``R`` is estimated once per measure from the detrended series of *every* area (see
:func:`fit_correlation`): a correlation ``lam * phi ** h`` between periods ``h`` months apart —
a persistent part (share ``lam`` of the variance, decaying by ``phi`` a month) plus independent
noise (a period median's sampling noise) — fitted by restricted maximum likelihood with each
area's own level, trend and variance. One series of 24 months cannot tell its autocorrelation
from its trend (estimates from it are biased low and scatter widely, which is why the per-series
correction with significant lags left the intervals too narrow); twelve areas of the same market
can. The areas share the structure of the market, not its level, trend or noise.

Slopes are relative, per month (SPEC trends.csv: -0.015 = -1.5 % a month):

- prices and purity are positive, so the slope is fitted to the natural log of the period
  medians and reported as ``exp(slope) - 1``;
- seizure counts can be zero, so the slope is fitted to the counts and divided by the median
  count of the area's periods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from profiling.market.seizures import DAYS_PER_MONTH, config, period_start

TREND_COLUMNS = ("area", "measure", "slope_per_month", "slope_lo", "slope_hi", "p_value", "n")
EXTRA_COLUMNS = ("n_periods", "n_observations", "direction", "variance_factor", "warning")
#: measure -> (market.csv column, observations column, scale). The standard deal of the hedonic
#: index is not here: its area and period effects are additive, so every area shares one time
#: path — its trend is reported once, for area "all" (:func:`index_trend`).
MEASURES = {
    "price_per_g": ("median_price_per_g", "n_priced", "log"),
    "price_per_pure_g": ("price_per_pure_g", "n_pure_priced", "log"),
    "purity": ("median_purity", "n_purity", "log"),
    "n_seizures": ("n_seizures", "n_seizures", "count"),
}


def theil_sen(x: np.ndarray, y: np.ndarray, level: float,
              variance_factor: float = 1.0) -> tuple[float, float, float, float]:
    """(slope, lo, hi, p-value) of y on x: the Theil-Sen slope, Sen's interval and the
    Mann-Kendall test, with the variance of Kendall's S (ties in y corrected) multiplied by
    ``variance_factor`` = n / n* (see :meth:`ResidualCorrelation.variance_factor`; 1 for
    independent periods, when the interval is scipy's). p = 1 when y does not vary."""
    n = len(x)
    slope = float(stats.theilslopes(y, x).slope)
    i, j = np.triu_indices(n, 1)
    dx = x[j] - x[i]
    pair = dx != 0
    slopes = np.sort((y[j] - y[i])[pair] / dx[pair])
    s_stat = float(np.sum(np.sign(y[j] - y[i]) * np.sign(x[j] - x[i])))
    # Var S with ties in y (x, the period starts, has none)
    _, counts = np.unique(y, return_counts=True)
    var_s = (n * (n - 1) * (2 * n + 5)
             - np.sum(counts * (counts - 1) * (2 * counts + 5))) / 18.0
    var_s *= max(1.0, variance_factor)
    z_q = stats.norm.ppf(0.5 + level / 2)
    c = z_q * np.sqrt(var_s)
    m = len(slopes)
    # the ranks of Sen's interval, as scipy.stats.theilslopes takes them
    lo_i = min(max(int(np.round((m - c) / 2)) - 1, 0), m - 1)
    hi_i = min(int(np.round((m + c) / 2)), m - 1)
    if np.all(y == y[0]) or var_s <= 0:
        p = 1.0
    else:
        z = (s_stat - np.sign(s_stat)) / np.sqrt(var_s)      # continuity correction
        p = float(2 * stats.norm.sf(abs(z)))
    return slope, float(slopes[lo_i]), float(slopes[hi_i]), p


@dataclass(frozen=True)
class ResidualCorrelation:
    """Correlation of a measure's detrended period values ``h`` months apart (h > 0):
    ``lam * phi ** h``. ``phi`` in [0, 1): how much of the persistent part is left a month
    later; ``lam`` in [0, 1]: its share of the variance. (0, 0) = independent periods."""

    phi: float = 0.0
    lam: float = 0.0
    n_series: int = 0          # series the estimate pooled

    def matrix(self, x: np.ndarray) -> np.ndarray:
        h = np.abs(x[:, None] - x[None, :])
        r = self.lam * self.phi ** h
        np.fill_diagonal(r, 1.0)
        return r

    def variance_factor(self, x: np.ndarray) -> float:
        """n / n*: the variance of a least-squares slope on ``x`` (months) under this
        correlation, over its variance under independence; at least 1."""
        w = x - x.mean()
        ww = float(w @ w)
        if ww <= 0 or self.lam <= 0:
            return 1.0
        return max(1.0, float(w @ self.matrix(x) @ w) / ww)


#: The likelihood is searched on a grid of (phi, lam) and then on a finer grid around the best
#: point (steps of 0.05, then 0.01: finer than the estimate's own uncertainty). phi stops at
#: PHI_MAX so that R stays well conditioned.
_COARSE, _FINE = 0.05, 0.01
PHI_MAX = 0.98


def _reml_deviance(phi: np.ndarray, lam: np.ndarray,
                   groups: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """-2 x restricted log-likelihood (up to a constant), for each (phi[g], lam[g]), of series
    sharing that correlation, each with its own level, trend and variance (profiled out).
    ``groups``: (x, Y) with the series that share the times ``x`` as the columns of Y."""
    total = np.zeros(len(phi))
    for x, y in groups:
        n, k = y.shape
        h = np.abs(x[:, None] - x[None, :])
        r = lam[:, None, None] * phi[:, None, None] ** h[None]
        r[:, np.arange(n), np.arange(n)] = 1.0
        chol = np.linalg.cholesky(r)                                  # (G, n, n)
        design = np.column_stack([np.ones(n), x - x.mean()])
        dw = np.linalg.solve(chol, np.broadcast_to(design, (len(phi), n, 2)))
        yw = np.linalg.solve(chol, np.broadcast_to(y, (len(phi), n, k)))
        dt = np.swapaxes(dw, 1, 2)
        xtx = dt @ dw
        resid = yw - dw @ np.linalg.solve(xtx, dt @ yw)
        rss = np.sum(resid ** 2, axis=1)                              # (G, k)
        log_det_r = 2 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        total += (n - 2) * np.sum(np.log(rss), axis=1) + k * (log_det_r
                                                               + np.linalg.slogdet(xtx)[1])
    return total


def _grid(phi: tuple[float, float], lam: tuple[float, float], step: float):
    p = np.arange(phi[0], phi[1] + step / 2, step)
    q = np.arange(lam[0], lam[1] + step / 2, step)
    pp, qq = np.meshgrid(np.clip(p, 0.0, PHI_MAX), np.clip(q, 0.0, 1.0))
    return pp.ravel(), qq.ravel()


def fit_correlation(series: list[tuple[np.ndarray, np.ndarray]]) -> ResidualCorrelation:
    """The residual correlation shared by ``series`` ((x in months, y) pairs; each with its
    own level, linear trend and variance), by restricted maximum likelihood over a grid of
    (phi, lam). Series with fewer than 4 points or no variation around a line say nothing and
    are skipped; with none left, periods are taken as independent."""
    by_times: dict[bytes, tuple[np.ndarray, list[np.ndarray]]] = {}
    for x, y in series:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if len(x) < 4:
            continue
        w = x - x.mean()
        resid = y - y.mean() - w * float(w @ y) / float(w @ w)
        if float(resid @ resid) <= 1e-12 * max(1.0, float(y @ y)):
            continue
        by_times.setdefault(x.tobytes(), (x, []))[1].append(y)
    groups = [(x, np.column_stack(ys)) for x, ys in by_times.values()]
    if not groups:
        return ResidualCorrelation()
    phi, lam = _grid((0.0, PHI_MAX), (0.0, 1.0), _COARSE)
    best = int(np.argmin(_reml_deviance(phi, lam, groups)))
    phi, lam = _grid((phi[best] - _COARSE, phi[best] + _COARSE),
                     (lam[best] - _COARSE, lam[best] + _COARSE), _FINE)
    best = int(np.argmin(_reml_deviance(phi, lam, groups)))
    return ResidualCorrelation(float(phi[best]), float(lam[best]),
                               sum(y.shape[1] for _, y in groups))


def _months(periods) -> np.ndarray:
    return np.array([(period_start(p) - pd.Timestamp("1970-01-01")).days / DAYS_PER_MONTH
                     for p in periods])


def _usable(y: np.ndarray, scale: str) -> np.ndarray:
    return np.isfinite(y) & ((y > 0) if scale == "log" else True)


def _fitted(x: np.ndarray, y: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, values the slope is fitted to) over the usable periods, or None when there are too
    few of them (``small_numbers.min_trend_points``) or the counts' median is zero."""
    ok = _usable(y, scale)
    if ok.sum() < int(config("market.toml")["small_numbers"]["min_trend_points"]):
        return None
    if scale == "log":
        return x[ok], np.log(y[ok])
    if float(np.median(y[ok])) <= 0:
        return None
    return x[ok], y[ok]


def trend_row(area: str, measure: str, x: np.ndarray, y: np.ndarray, n_obs: np.ndarray,
              scale: str, correlation: ResidualCorrelation,
              per_period_counts: bool = True) -> dict:
    """One trends.csv row from a series (x in months; y NaN where a period has no value), its
    interval and test allowing for the ``correlation`` of its periods.
    ``per_period_counts``: ``n_obs`` counts the observations behind each period's value (a
    small-numbers warning when they are few)."""
    cfg = config("market.toml")
    level, alpha = float(cfg["trend"]["level"]), float(cfg["trend"]["alpha"])
    min_points, min_n = int(cfg["small_numbers"]["min_trend_points"]), int(cfg["small_numbers"]["min_n"])
    ok = _usable(y, scale)
    n = int(n_obs[ok].sum())
    row = {"area": area, "measure": measure, "slope_per_month": np.nan, "slope_lo": np.nan,
           "slope_hi": np.nan, "p_value": np.nan, "n": n, "n_periods": int(ok.sum()),
           "n_observations": n, "direction": "", "variance_factor": np.nan, "warning": ""}
    if ok.sum() < min_points:
        row["warning"] = (f"{int(ok.sum())} periods with data (fewer than {min_points}): "
                          "no trend estimated")
        return row
    fitted = _fitted(x, y, scale)
    if fitted is None:
        row["warning"] = "median count is zero: no relative trend"
        return row
    xs, z = fitted
    factor = correlation.variance_factor(xs)
    s, lo, hi, p = theil_sen(xs, z, level, factor)
    rel = np.expm1([s, lo, hi]) if scale == "log" else np.array([s, lo, hi]) / float(np.median(z))
    row.update(slope_per_month=float(rel[0]), slope_lo=float(rel[1]), slope_hi=float(rel[2]),
               p_value=p, variance_factor=factor)
    if p < alpha:
        row["direction"] = "rising" if rel[0] > 0 else "falling" if rel[0] < 0 else "no_trend"
    else:
        row["direction"] = "no_trend"
    if scale == "log" and per_period_counts and n < min_n * ok.sum():
        row["warning"] = (f"{n} observations over {int(ok.sum())} periods: small numbers per "
                          "period")
    return row


def area_trends(table: pd.DataFrame, measures=tuple(MEASURES)) -> pd.DataFrame:
    """trends.csv: one row per area and measure (a warning and blanks where there are too few
    periods with data). The residual correlation of each measure is fitted once, on every
    area's series (:func:`fit_correlation`)."""
    series = [(area, _months(g["period"]), g) for area, g in table.groupby("area", sort=True)]
    correlation = {}
    for m in measures:
        col, _, scale = MEASURES[m]
        fitted = [_fitted(x, g[col].to_numpy(dtype=float), scale) for _, x, g in series]
        correlation[m] = fit_correlation([f for f in fitted if f is not None])
    rows = []
    for area, x, g in series:
        for m in measures:
            col, n_col, scale = MEASURES[m]
            rows.append(trend_row(area, m, x, g[col].to_numpy(dtype=float),
                                  g[n_col].to_numpy(dtype=float), scale, correlation[m]))
    return pd.DataFrame(rows, columns=[*TREND_COLUMNS, *EXTRA_COLUMNS])


def index_trend(table: pd.DataFrame, hedonic_n: int) -> pd.DataFrame:
    """The hedonic index's trend (area "all", measure "standard_deal"): the standard deal's
    expected price over the periods of one area (every area has the same path). Its residual
    correlation is fitted on this one series."""
    rows = []
    with_values = table[np.isfinite(table["standard_deal_gbp"].to_numpy(dtype=float))]
    if len(with_values):
        g = table[table["area"] == with_values["area"].iloc[0]]
        n = np.zeros(len(g))
        n[0] = hedonic_n
        x, y = _months(g["period"]), g["standard_deal_gbp"].to_numpy(dtype=float)
        fitted = _fitted(x, y, "log")
        rows.append(trend_row("all", "standard_deal", x, y, n, "log",
                              fit_correlation([fitted] if fitted else []),
                              per_period_counts=False))
    return pd.DataFrame(rows, columns=[*TREND_COLUMNS, *EXTRA_COLUMNS])


def availability(table: pd.DataFrame) -> np.ndarray:
    """Availability indicator per row: weighted mean of the changes against the area's median
    period (natural log units) of price per pure gram (falling = more available), purity and
    seizure count (log of count + 0.5). 0 = usual for the area; NaN where nothing is known."""
    w = config("market.toml")["availability"]
    parts = []
    for col, weight, sign in (("price_per_pure_g", w["weight_price"], -1.0),
                              ("median_purity", w["weight_purity"], 1.0),
                              ("n_seizures", w["weight_seizures"], 1.0)):
        v = table[col].to_numpy(dtype=float)
        if col == "n_seizures":
            v = np.log(v + 0.5)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v > 0, np.log(v), np.nan)
        centre = pd.Series(v).groupby(table["area"].to_numpy()).transform("median").to_numpy()
        parts.append((sign * (v - centre), float(weight)))
    num = np.zeros(len(table))
    den = np.zeros(len(table))
    for v, weight in parts:
        ok = np.isfinite(v)
        num[ok] += weight * v[ok]
        den[ok] += weight
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)
