"""Trends per area and the availability indicator.

A trend is the Theil-Sen slope (median of pairwise slopes, ``scipy.stats.theilslopes``) of a
measure over the periods with data, against time in months, with Sen's confidence interval and
a Mann-Kendall test of a monotone trend — DOMAIN: Price series and evaluation methods. Both use
the variance of Kendall's S corrected for autocorrelation (Hamed & Rao's modified Mann-Kendall
test), because a market's period medians are autocorrelated (see :func:`theil_sen`).

Slopes are relative, per month (SPEC trends.csv: -0.015 = -1.5 % a month):

- prices and purity are positive, so the slope is fitted to the natural log of the period
  medians and reported as ``exp(slope) - 1``;
- seizure counts can be zero, so the slope is fitted to the counts and divided by the median
  count of the area's periods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from profiling.market.seizures import DAYS_PER_MONTH, config, period_start

TREND_COLUMNS = ("area", "measure", "slope_per_month", "slope_lo", "slope_hi", "p_value", "n")
EXTRA_COLUMNS = ("n_periods", "n_observations", "direction", "warning")
#: measure -> (market.csv column, observations column, scale). The standard deal of the hedonic
#: index is not here: its area and period effects are additive, so every area shares one time
#: path — its trend is reported once, for area "all" (:func:`index_trend`).
MEASURES = {
    "price_per_g": ("median_price_per_g", "n_priced", "log"),
    "price_per_pure_g": ("price_per_pure_g", "n_pure_priced", "log"),
    "purity": ("median_purity", "n_purity", "log"),
    "n_seizures": ("n_seizures", "n_seizures", "count"),
}


def theil_sen(x: np.ndarray, y: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """(slope, lo, hi, p-value) of y on x: the Theil-Sen slope, and Sen's interval and the
    Mann-Kendall test with the variance of Kendall's S corrected for autocorrelation (Hamed &
    Rao 1998, "modified Mann-Kendall": the significant autocorrelations of the ranks of the
    detrended series inflate Var S; never deflate it). Period medians of a market are
    autocorrelated — dealers and batches persist for months — and the uncorrected interval
    would be too narrow. p = 1 when y does not vary."""
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
    var_s *= _autocorrelation_factor(x, y, slope)
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


def _autocorrelation_factor(x: np.ndarray, y: np.ndarray, slope: float) -> float:
    """Hamed & Rao's n/n*: 1 + 2/(n(n-1)(n-2)) * sum over lags k of (n-k)(n-k-1)(n-k-2) r_k,
    r_k the lag-k autocorrelations of the ranks of the detrended series that are significant
    at 5 % (|r_k| > 1.96/sqrt(n)); at least 1."""
    n = len(y)
    if n < 4:
        return 1.0
    order = np.argsort(x, kind="stable")
    r = stats.rankdata(y[order] - slope * x[order])
    r = r - r.mean()
    denom = float(r @ r)
    if denom <= 0:
        return 1.0
    total = 0.0
    bound = stats.norm.ppf(0.975) / np.sqrt(n)
    for k in range(1, n - 2):
        rho = float(r[:-k] @ r[k:]) / denom
        if abs(rho) > bound:
            total += (n - k) * (n - k - 1) * (n - k - 2) * rho
    return max(1.0, 1.0 + 2.0 * total / (n * (n - 1) * (n - 2)))


def _months(periods) -> np.ndarray:
    return np.array([(period_start(p) - pd.Timestamp("1970-01-01")).days / DAYS_PER_MONTH
                     for p in periods])


def trend_row(area: str, measure: str, x: np.ndarray, y: np.ndarray, n_obs: np.ndarray,
              scale: str, per_period_counts: bool = True) -> dict:
    """One trends.csv row from a series (x in months; y NaN where a period has no value).
    ``per_period_counts``: ``n_obs`` counts the observations behind each period's value (a
    small-numbers warning when they are few)."""
    cfg = config("market.toml")
    level, alpha = float(cfg["trend"]["level"]), float(cfg["trend"]["alpha"])
    min_points, min_n = int(cfg["small_numbers"]["min_trend_points"]), int(cfg["small_numbers"]["min_n"])
    ok = np.isfinite(y) & ((y > 0) if scale == "log" else True)
    n = int(n_obs[ok].sum())
    row = {"area": area, "measure": measure, "slope_per_month": np.nan, "slope_lo": np.nan,
           "slope_hi": np.nan, "p_value": np.nan, "n": n, "n_periods": int(ok.sum()),
           "n_observations": n, "direction": "", "warning": ""}
    if ok.sum() < min_points:
        row["warning"] = (f"{int(ok.sum())} periods with data (fewer than {min_points}): "
                          "no trend estimated")
        return row
    if scale == "log":
        s, lo, hi, p = theil_sen(x[ok], np.log(y[ok]), level)
        rel = np.expm1([s, lo, hi])
    else:
        typical = float(np.median(y[ok]))
        if typical <= 0:
            row["warning"] = "median count is zero: no relative trend"
            return row
        s, lo, hi, p = theil_sen(x[ok], y[ok], level)
        rel = np.array([s, lo, hi]) / typical
    row.update(slope_per_month=float(rel[0]), slope_lo=float(rel[1]), slope_hi=float(rel[2]),
               p_value=p)
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
    periods with data)."""
    rows = []
    for area, g in table.groupby("area", sort=True):
        x = _months(g["period"])
        for m in measures:
            col, n_col, scale = MEASURES[m]
            rows.append(trend_row(area, m, x, g[col].to_numpy(dtype=float),
                                  g[n_col].to_numpy(dtype=float), scale))
    return pd.DataFrame(rows, columns=[*TREND_COLUMNS, *EXTRA_COLUMNS])


def index_trend(table: pd.DataFrame, hedonic_n: int) -> pd.DataFrame:
    """The hedonic index's trend (area "all", measure "standard_deal"): the standard deal's
    expected price over the periods of one area (every area has the same path)."""
    rows = []
    with_values = table[np.isfinite(table["standard_deal_gbp"].to_numpy(dtype=float))]
    if len(with_values):
        g = table[table["area"] == with_values["area"].iloc[0]]
        n = np.zeros(len(g))
        n[0] = hedonic_n
        rows.append(trend_row("all", "standard_deal", _months(g["period"]),
                              g["standard_deal_gbp"].to_numpy(dtype=float), n, "log",
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
