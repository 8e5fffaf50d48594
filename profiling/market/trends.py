"""Trends per area and the availability indicator.

A trend is the Theil-Sen slope (median of pairwise slopes, ``scipy.stats.theilslopes``, with its
confidence interval) of a measure over the periods with data, against time in months, and a
Mann-Kendall test of a monotone trend (Kendall's tau of the series against time,
``scipy.stats.kendalltau``) — DOMAIN: Price series and evaluation methods.

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
#: measure -> (market.csv column, observations column, scale)
MEASURES = {
    "price_per_g": ("median_price_per_g", "n_priced", "log"),
    "price_per_pure_g": ("price_per_pure_g", "n_pure_priced", "log"),
    "standard_deal": ("standard_deal_gbp", "n_priced", "log"),
    "purity": ("median_purity", "n_purity", "log"),
    "n_seizures": ("n_seizures", "n_seizures", "count"),
}


def theil_sen(x: np.ndarray, y: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """(slope, lo, hi, Mann-Kendall p-value) of y on x; NaN when y does not vary in order."""
    res = stats.theilslopes(y, x, alpha=level)
    if np.all(y == y[0]):
        p = 1.0
    else:
        p = float(stats.kendalltau(x, y).pvalue)
    return float(res.slope), float(res.low_slope), float(res.high_slope), p


def area_trends(table: pd.DataFrame, measures=tuple(MEASURES)) -> pd.DataFrame:
    """trends.csv: one row per area and measure (a warning and blanks where there are too few
    periods with data)."""
    cfg = config("market.toml")
    level = float(cfg["trend"]["level"])
    alpha = float(cfg["trend"]["alpha"])
    min_points = int(cfg["small_numbers"]["min_trend_points"])
    rows = []
    starts = {p: period_start(p) for p in table["period"].unique()}
    for area, g in table.groupby("area", sort=True):
        x_all = np.array([(starts[p] - pd.Timestamp("1970-01-01")).days / DAYS_PER_MONTH
                          for p in g["period"]])
        for m in measures:
            col, n_col, scale = MEASURES[m]
            y = g[col].to_numpy(dtype=float)
            ok = np.isfinite(y) & ((y > 0) if scale == "log" else True)
            n_obs = int(g[n_col].to_numpy()[ok].sum())
            row = {"area": area, "measure": m, "slope_per_month": np.nan, "slope_lo": np.nan,
                   "slope_hi": np.nan, "p_value": np.nan, "n": n_obs, "n_periods": int(ok.sum()),
                   "n_observations": n_obs, "direction": "", "warning": ""}
            if ok.sum() < min_points:
                row["warning"] = (f"{int(ok.sum())} periods with data (fewer than {min_points}): "
                                  "no trend estimated")
                rows.append(row)
                continue
            x = x_all[ok]
            if scale == "log":
                s, lo, hi, p = theil_sen(x, np.log(y[ok]), level)
                rel = np.expm1([s, lo, hi])
            else:
                typical = float(np.median(y[ok]))
                if typical <= 0:
                    row["warning"] = "median count is zero: no relative trend"
                    rows.append(row)
                    continue
                s, lo, hi, p = theil_sen(x, y[ok], level)
                rel = np.array([s, lo, hi]) / typical
            row.update(slope_per_month=float(rel[0]), slope_lo=float(rel[1]),
                       slope_hi=float(rel[2]), p_value=p)
            if p < alpha:
                row["direction"] = "rising" if rel[0] > 0 else "falling" if rel[0] < 0 else ""
            else:
                row["direction"] = "no_trend"
            if n_obs < int(cfg["small_numbers"]["min_n"]) * ok.sum():
                row["warning"] = (f"{n_obs} observations over {int(ok.sum())} periods: "
                                  "small numbers per period")
            rows.append(row)
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
