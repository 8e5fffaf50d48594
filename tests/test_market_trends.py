"""Trends (profiling/market/trends.py): Sen's interval and the Mann-Kendall test against scipy,
and their correction for autocorrelated periods — the pooled residual correlation recovered from
series with a known one, and 95 % intervals that hold the true slope about 95 % of the time."""

import numpy as np
import pytest
from scipy import stats

from profiling.market.trends import ResidualCorrelation, fit_correlation, theil_sen


def panel(rng, phi: float, lam: float, n_series: int = 12, n: int = 24):
    """Series of n months: level + slope (known, random) + noise of sd 0.05 whose share ``lam``
    is an AR(1) with coefficient ``phi`` a month and the rest independent."""
    x = np.arange(n, dtype=float)
    out = []
    for _ in range(n_series):
        slope = rng.normal(0, 0.01)
        ar = np.empty(n)
        ar[0] = rng.normal()
        for t in range(1, n):
            ar[t] = phi * ar[t - 1] + np.sqrt(1 - phi ** 2) * rng.normal()
        noise = np.sqrt(lam) * ar + np.sqrt(1 - lam) * rng.normal(size=n)
        out.append((x, 1.0 + slope * x + 0.05 * noise, slope))
    return out


def test_theil_sen_is_scipys_for_independent_periods_and_wider_with_a_variance_factor():
    rng = np.random.default_rng(0)
    x = np.arange(24.0)
    y = 0.02 * x + rng.normal(0, 0.1, 24)
    slope, lo, hi, p = theil_sen(x, y, 0.95)
    ref = stats.theilslopes(y, x, alpha=0.95)
    assert (slope, lo, hi) == (ref.slope, ref.low_slope, ref.high_slope)
    # the Mann-Kendall test: S from scipy's Kendall tau against time, continuity-corrected
    s = stats.kendalltau(x, y).statistic * 24 * 23 / 2
    var_s = 24 * 23 * 53 / 18
    assert p == pytest.approx(2 * stats.norm.sf((abs(s) - 1) / np.sqrt(var_s)), rel=1e-6)
    slope3, lo3, hi3, p3 = theil_sen(x, y, 0.95, variance_factor=3.0)
    assert slope3 == slope and lo3 < lo and hi3 > hi
    assert p3 == pytest.approx(2 * stats.norm.sf((abs(s) - 1) / np.sqrt(3 * var_s)), rel=1e-6)
    # a factor below 1 never narrows the interval
    assert theil_sen(x, y, 0.95, variance_factor=0.5) == (slope, lo, hi, p)


def test_variance_factor_is_the_slope_variance_ratio():
    x = np.arange(24.0)
    assert ResidualCorrelation().variance_factor(x) == 1.0
    corr = ResidualCorrelation(phi=0.6, lam=0.8)
    # oracle: the variance of least-squares slopes of series drawn with that correlation
    rng = np.random.default_rng(3)
    e = rng.multivariate_normal(np.zeros(24), corr.matrix(x), size=40_000)
    w = (x - x.mean()) / ((x - x.mean()) @ (x - x.mean()))
    ratio = np.var(e @ w) / (w @ w)
    assert corr.variance_factor(x) == pytest.approx(ratio, rel=0.03)
    # quarters: periods 3 months apart are less correlated than months
    q = np.arange(8.0) * 3
    assert 1.0 < corr.variance_factor(q) < corr.variance_factor(x)


def test_pooled_correlation_is_recovered():
    rng = np.random.default_rng(5)
    fits = np.array([[c.phi, c.lam] for c in
                     (fit_correlation([(x, y) for x, y, _ in panel(rng, 0.7, 0.7)])
                      for _ in range(10))])
    assert fits[:, 0].mean() == pytest.approx(0.7, abs=0.15)
    assert fits[:, 1].mean() == pytest.approx(0.7, abs=0.15)
    white = [fit_correlation([(x, y) for x, y, _ in panel(rng, 0.0, 0.0)]) for _ in range(10)]
    assert np.median([c.variance_factor(np.arange(24.0)) for c in white]) < 1.3
    # nothing to fit: independence
    assert fit_correlation([]) == ResidualCorrelation()
    assert fit_correlation([(np.arange(5.0), np.ones(5))]).lam == 0.0


def test_intervals_hold_the_true_slope_95_percent_of_the_time_with_autocorrelation():
    rng = np.random.default_rng(11)
    covered, covered_uncorrected, n = 0, 0, 0
    for _ in range(30):
        series = panel(rng, 0.7, 0.7)
        corr = fit_correlation([(x, y) for x, y, _ in series])
        for x, y, slope in series:
            _, lo, hi, _ = theil_sen(x, y, 0.95, corr.variance_factor(x))
            covered += lo <= slope <= hi
            _, lo, hi, _ = theil_sen(x, y, 0.95)
            covered_uncorrected += lo <= slope <= hi
            n += 1
    assert n == 360
    assert 0.91 <= covered / n <= 0.99, covered / n
    assert covered_uncorrected / n < 0.85          # what the correction is for
