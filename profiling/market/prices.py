"""Price, purity and the hedonic index by area (or force) and period.

Per cell (area x period) — counts beside every rate (SPEC):

- ``n_seizures``: seizures of the drug; ``n_priced``: priced purchases (exhibits with a price
  and a weight); median price per gram and per rock (``n_rock_priced`` beside it);
- purity: median and interquartile range of measured purities (``n_purity``);
- price per pure gram, ``price / (weight_before_g * purity)``: median with a seeded percentile
  bootstrap interval (each cell's generator is seeded from the configured seed and the cell's
  name, so a cell's interval does not change when other cells are added);
- the hedonic index: ``log(price) = a + b log(quantity_g) + c log(purity) + area effect +
  period effect`` fitted by least squares on every priced purchase with a measured purity
  (DOMAIN: Caulkins; RAND/ONDCP), reported as the expected price of a standard deal (one rock of
  ``standard_deal.quantity_g`` at the median purity) in each cell, with a confidence interval of
  the fitted log price (exponentiated: the interval of the geometric-mean price).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from profiling.errors import InputError
from profiling.market.seizures import Source, config, months, period_labels, seizure_keys
from profiling.records import MISSING_COUNT

MARKET_COLUMNS = ("area", "period", "n_seizures", "n_priced", "median_price_per_g",
                  "median_price_per_rock", "median_purity", "price_per_pure_g",
                  "price_per_pure_g_lo", "price_per_pure_g_hi")
EXTRA_COLUMNS = ("n_rock_priced", "n_purity", "purity_q1", "purity_q3", "n_pure_priced",
                 "standard_deal_gbp", "standard_deal_lo", "standard_deal_hi", "availability",
                 "warnings", "drug")
BY = ("area", "force")


def select_drug(records: pd.DataFrame, drug: str) -> pd.DataFrame:
    """The exhibits of one canonical drug (``all`` keeps every exhibit)."""
    from profiling.records import DRUGS

    if drug == "all":
        return records
    if drug not in DRUGS:
        raise InputError(f"--drug must be one of {', '.join(DRUGS)} or all, not {drug!r}.")
    return records[records["drug"].to_numpy(dtype=object) == drug]


def exhibit_prices(records: pd.DataFrame, by: str, period: str) -> pd.DataFrame:
    """One row per exhibit: unit, period, month, seizure key, and the price measures (NaN where
    they cannot be computed)."""
    if by not in BY:
        raise InputError(f"--by must be area or force, not {by!r}.")
    w = records["weight_before_g"].to_numpy(dtype=float)
    price = records["price_gbp"].to_numpy(dtype=float)
    rocks = records["rock_count"].to_numpy()
    purity = records["purity"].to_numpy(dtype=float)
    priced = np.isfinite(price) & (price > 0) & np.isfinite(w) & (w > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_g = np.where(priced, price / w, np.nan)
        per_rock = np.where(np.isfinite(price) & (price > 0) & (rocks != MISSING_COUNT)
                            & (rocks > 0), price / rocks, np.nan)
        per_pure = np.where(priced & (purity > 0), price / (w * purity), np.nan)
    unit = records[by].to_numpy(dtype=object)
    return pd.DataFrame({
        "unit": np.where(unit == "", "unknown", unit).astype(object),
        "period": period_labels(records["seized_on"], period),
        "month": months(records["seized_on"]),
        "seizure": seizure_keys(records),
        "weight_g": w, "price_gbp": np.where(priced, price, np.nan), "purity": purity,
        "price_per_g": per_g, "price_per_rock": per_rock, "price_per_pure_g": per_pure,
    }, index=records.index)


def period_range(labels: list[str], period: str, first: str | None = None,
                 last: str | None = None) -> list[str]:
    """Every period from ``first`` (YYYY-MM) or the earliest label to ``last`` or the latest."""
    from profiling.market.seizures import period_start
    from profiling.returns import periods_between

    if first is None or last is None:
        present = [lab for lab in labels if lab]
        if not present:
            return [] if first is None or last is None else periods_between(first, last, period)
        starts = sorted(period_start(lab) for lab in present)
        if first is None:
            first = starts[0].strftime("%Y-%m")
        if last is None:
            end = starts[-1] + pd.DateOffset(months=3 if period == "quarter" else 1) - pd.Timedelta(days=1)
            last = end.strftime("%Y-%m")
    return periods_between(first, last, period)


def _cell_seed(seed: int, unit: str, period: str) -> list[int]:
    return [seed, zlib.crc32(f"{unit}\x1f{period}".encode())]


def bootstrap_median(values: np.ndarray, resamples: int, level: float,
                     seed: list[int]) -> tuple[float, float]:
    """Percentile bootstrap interval of the median (NaN for no values)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return np.nan, np.nan
    if len(v) == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(resamples, len(v)))
    med = np.median(v[idx], axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(med, [tail, 1 - tail])
    return float(lo), float(hi)


# --- hedonic regression ---------------------------------------------------------------------


@dataclass
class Hedonic:
    """The fitted hedonic regression (or why it could not be fitted)."""

    n: int
    coef: dict[str, float] = field(default_factory=dict)     # name -> coefficient
    se: dict[str, float] = field(default_factory=dict)
    r2: float | None = None
    sigma2: float | None = None
    cov: np.ndarray | None = None
    columns: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)            # first = baseline
    periods: list[str] = field(default_factory=list)          # first = baseline
    median_purity: float | None = None
    warning: str = ""

    def as_json(self, by: str, drug: str, standard_g: float) -> dict:
        def c(name):
            return self.coef.get(name)
        return {
            "log_quantity": c("log_quantity"), "log_purity": c("log_purity"), "n": self.n,
            "r2": self.r2, "intercept": c("intercept"),
            "se": {"log_quantity": self.se.get("log_quantity"), "log_purity": self.se.get("log_purity"),
                   "intercept": self.se.get("intercept")},
            f"{by}_effects": {u: c(f"{by}:{u}") for u in self.units[1:]},
            "period_effects": {p: c(f"period:{p}") for p in self.periods[1:]},
            "baseline": {by: self.units[0] if self.units else None,
                         "period": self.periods[0] if self.periods else None},
            "standard_deal": {"quantity_g": standard_g, "purity": self.median_purity},
            "model": f"log(price_gbp) = a + b*log(weight_before_g) + c*log(purity) + {by} + period",
            "drug": drug, "warning": self.warning or None,
        }


def hedonic_design(ex: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str], list[str], list[str]]:
    """(y, X, columns, units, periods) over the priced purchases with a measured purity.

    Columns: intercept, log_quantity, log_purity, one indicator per unit but the first (sorted)
    and per period but the first."""
    ok = (np.isfinite(ex["price_gbp"]) & np.isfinite(ex["purity"]) & (ex["purity"] > 0)
          & (ex["period"] != "")).to_numpy()
    e = ex.loc[ok]
    units = sorted(e["unit"].unique().tolist())
    periods = sorted(e["period"].unique().tolist())
    cols = ["intercept", "log_quantity", "log_purity"]
    parts = [np.ones(len(e)), np.log(e["weight_g"].to_numpy()), np.log(e["purity"].to_numpy())]
    u = e["unit"].to_numpy(dtype=object)
    for name in units[1:]:
        cols.append(f"unit:{name}")
        parts.append((u == name).astype(float))
    p = e["period"].to_numpy(dtype=object)
    for name in periods[1:]:
        cols.append(f"period:{name}")
        parts.append((p == name).astype(float))
    X = np.column_stack(parts) if len(e) else np.zeros((0, len(cols)))
    return np.log(e["price_gbp"].to_numpy()), X, cols, units, periods


def fit_hedonic(ex: pd.DataFrame, by: str) -> Hedonic:
    y, X, cols, units, periods = hedonic_design(ex)
    n, k = X.shape
    cols = [c.replace("unit:", f"{by}:") for c in cols]
    med = float(np.median(np.exp(X[:, 2]))) if n else None
    h = Hedonic(n=n, columns=cols, units=units, periods=periods, median_purity=med)
    if n <= k:
        h.warning = (f"{n} priced purchases with a measured purity for {k} coefficients: the "
                     "hedonic regression cannot be fitted")
        return h
    beta, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    if rank < k:
        h.warning = ("quantity, purity, areas and periods are collinear in these purchases "
                     f"(rank {rank} of {k}): the hedonic coefficients are not identified")
        return h
    resid = y - X @ beta
    dof = n - k
    sigma2 = float(resid @ resid / dof)
    cov = sigma2 * np.linalg.inv(X.T @ X)
    tss = float(((y - y.mean()) ** 2).sum())
    h.coef = dict(zip(cols, beta.tolist()))
    h.se = dict(zip(cols, np.sqrt(np.diag(cov)).tolist()))
    h.r2 = 1 - float(resid @ resid) / tss if tss > 0 else None
    h.sigma2, h.cov = sigma2, cov
    return h


def standard_deal(h: Hedonic, by: str, unit: str, period: str, quantity_g: float,
                  level: float) -> tuple[float, float, float]:
    """Expected (geometric-mean) price of the standard deal in a cell, with its interval; NaN
    when the cell's unit or period is not in the fitted regression."""
    if h.cov is None or unit not in h.units or period not in h.periods:
        return np.nan, np.nan, np.nan
    x = np.zeros(len(h.columns))
    x[0], x[1], x[2] = 1.0, np.log(quantity_g), np.log(h.median_purity)
    if unit != h.units[0]:
        x[h.columns.index(f"{by}:{unit}")] = 1.0
    if period != h.periods[0]:
        x[h.columns.index(f"period:{period}")] = 1.0
    beta = np.array([h.coef[c] for c in h.columns])
    fit = float(x @ beta)
    se = float(np.sqrt(x @ h.cov @ x))
    t = stats.t.ppf(0.5 + level / 2, h.n - len(h.columns))
    return float(np.exp(fit)), float(np.exp(fit - t * se)), float(np.exp(fit + t * se))


# --- the market table -----------------------------------------------------------------------


def market_table(records: pd.DataFrame, by: str = "area", period: str = "month",
                 drug: str = "crack_cocaine", first: str | None = None,
                 last: str | None = None,
                 units: list[str] | None = None) -> tuple[pd.DataFrame, Hedonic, pd.DataFrame]:
    """(market table, hedonic fit, exhibit prices). Every unit (``units``, default those of
    ``records``) x every period of the range gets a row, with zeros and blanks where nothing
    was seized or bought."""
    from profiling.market.warnings import cell_warnings

    cfg = config("market.toml")
    rec = select_drug(records, drug)
    ex = exhibit_prices(rec, by, period)
    if units is None:
        units = sorted(records[by].replace("", "unknown").unique().tolist())
    periods = period_range(ex["period"].tolist(), period, first, last)
    inside = ex["period"].isin(periods).to_numpy()
    ex = ex.loc[inside]
    h = fit_hedonic(ex, by)
    boot, q_g = cfg["bootstrap"], float(cfg["standard_deal"]["quantity_g"])
    min_n = int(cfg["small_numbers"]["min_n"])
    groups = {key: g for key, g in ex.groupby(["unit", "period"], sort=False)}
    rows = []
    for unit in units:
        for p in periods:
            g = groups.get((unit, p))
            if g is None:
                g = ex.iloc[:0]
            pur = g["purity"].to_numpy(dtype=float)
            pur = pur[np.isfinite(pur)]
            ppg = g["price_per_pure_g"].to_numpy(dtype=float)
            ppg = ppg[np.isfinite(ppg)]
            lo, hi = bootstrap_median(ppg, int(boot["resamples"]), float(boot["level"]),
                                      _cell_seed(int(boot["seed"]), unit, p))
            deal, deal_lo, deal_hi = standard_deal(h, by, unit, p, q_g, float(boot["level"]))
            row = {
                "area": unit, "period": p,
                "n_seizures": int(g["seizure"].nunique()),
                "n_priced": int(np.isfinite(g["price_per_g"]).sum()),
                "median_price_per_g": _median(g["price_per_g"]),
                "median_price_per_rock": _median(g["price_per_rock"]),
                "median_purity": float(np.median(pur)) if len(pur) else np.nan,
                "price_per_pure_g": float(np.median(ppg)) if len(ppg) else np.nan,
                "price_per_pure_g_lo": lo, "price_per_pure_g_hi": hi,
                "n_rock_priced": int(np.isfinite(g["price_per_rock"]).sum()),
                "n_purity": len(pur),
                "purity_q1": float(np.quantile(pur, 0.25)) if len(pur) else np.nan,
                "purity_q3": float(np.quantile(pur, 0.75)) if len(pur) else np.nan,
                "n_pure_priced": len(ppg),
                "standard_deal_gbp": deal, "standard_deal_lo": deal_lo, "standard_deal_hi": deal_hi,
            }
            row["warnings"] = ";".join(cell_warnings(row, min_n))
            rows.append(row)
    table = pd.DataFrame(rows, columns=[*MARKET_COLUMNS, *EXTRA_COLUMNS[:-2], "warnings"])
    table["drug"] = drug
    return table, h, ex


def _median(s: pd.Series) -> float:
    v = s.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else np.nan


# --- the command ----------------------------------------------------------------------------


@dataclass
class MarketRun:
    table: pd.DataFrame          # market.csv
    trends: pd.DataFrame         # trends.csv
    hedonic: dict                # hedonic.json
    emerging: pd.DataFrame       # emerging.csv
    summary: dict                # market.json (and --json)


def run_market(source, out, by: str = "area", period: str = "month",
               drug: str = "crack_cocaine", level: str = "1", first: str | None = None,
               last: str | None = None, mapping=None, as_of=None, progress=None,
               redactor=None) -> MarketRun:
    """`profile market`: write market.csv, trends.csv, hedonic.json, emerging.csv, market.json,
    market.html, and market.geojson where areas can be placed (``profiling.gis``), into
    ``out``. ``level`` selects the seizures of one supply level (default 1, the street market
    that prices come from) or ``all``. With a :class:`~profiling.redact.Redactor`, areas are
    coarsened before anything is tabulated, the summary names no source file, and
    ``redaction.json`` is written beside the outputs."""
    from pathlib import Path

    from profiling.gis import market_map
    from profiling.market.outputs import write_csv, write_json
    from profiling.market.pages import market_page
    from profiling.market.seizures import open_source

    advance = progress or (lambda n: None)
    if period not in ("month", "quarter"):
        raise InputError(f"--period must be month or quarter, not {period!r}.")
    src = open_source(source, mapping=mapping, as_of=as_of)
    advance(1)
    run = market(src, by, period, drug, level, first, last, advance, redactor=redactor)
    run.summary["source"] = Path(source).name
    summary = redactor.summary(run.summary) if redactor is not None else run.summary
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary["gis"] = market_map(out, run.table, src.data.records, src.data.attributes, by,
                                redactor)
    run.summary = summary
    write_csv(out / "market.csv", run.table)
    write_csv(out / "trends.csv", run.trends)
    write_json(out / "hedonic.json", run.hedonic)
    write_csv(out / "emerging.csv", run.emerging)
    write_json(out / "market.json", summary)
    market_page(out / "market.html", run.table, run.trends, run.hedonic, run.emerging, summary)
    if redactor is not None:
        redactor.write_manifest(out, ["market.csv", "trends.csv", "hedonic.json", "emerging.csv",
                                      "market.json", "market.html", *summary["gis"]["files"]])
    advance(1)
    return run


def market(src: Source, by: str = "area", period: str = "month", drug: str = "crack_cocaine",
           level: str = "1", first: str | None = None, last: str | None = None,
           progress=None, redactor=None) -> MarketRun:
    """The tables of `profile market` for the seizures of ``src`` (a
    :class:`~profiling.market.seizures.Source`), without writing anything (see
    :func:`run_market`). With a redactor, areas are coarsened before anything is tabulated."""
    from profiling.market.levels import select_level
    from profiling.market.trends import area_trends, availability, index_trend
    from profiling.market.warnings import emerging

    advance = progress or (lambda n: None)
    if period not in ("month", "quarter"):
        raise InputError(f"--period must be month or quarter, not {period!r}.")
    if by not in BY:
        raise InputError(f"--by must be area or force, not {by!r}.")
    records = redactor.coarse_records(src.data.records) if redactor is not None \
        else src.data.records
    units = sorted(records[by].replace("", "unknown").unique().tolist())
    dates = pd.to_datetime(records["seized_on"]).dropna()
    if len(dates):  # the range of the whole library, so that empty periods show as such
        first = first or dates.min().strftime("%Y-%m")
        last = last or dates.max().strftime("%Y-%m")
    chosen, level_note = select_level(select_drug(records, drug), src.library, level)
    table, h, ex = market_table(chosen, by, period, drug, first, last, units)
    table["availability"] = availability(table)
    advance(1)
    trends = area_trends(table)
    flags = emerging(trends)
    index = index_trend(table, h.n)
    if len(index):
        trends = pd.concat([trends, index], ignore_index=True)
    advance(1)
    cfg = config("market.toml")
    hedonic = h.as_json(by, drug, float(cfg["standard_deal"]["quantity_g"]))
    warnings = []
    if not len(table):
        warnings.append(f"no {drug} seizures with a date in the data: nothing to tabulate")
    if h.warning:
        warnings.append(h.warning)
    small = table["warnings"].str.contains("small_n|no_", regex=True)
    if small.any():
        warnings.append(f"{int(small.sum())} of {len(table)} cells have small numbers or no "
                        f"data (fewer than {cfg['small_numbers']['min_n']} observations): see "
                        "the warnings column")
    for _, t in trends[trends["warning"] != ""].iterrows():
        warnings.append(f"{t['area']} {t['measure']}: {t['warning']}")
    summary = {
        "source": src.library.name if src.library is not None else None, "by": by, "period": period, "drug": drug,
        "level": level_note,
        "periods": sorted(table["period"].unique().tolist()) if len(table) else [],
        "units": sorted(table["area"].unique().tolist()) if len(table) else [],
        "seizures": int(ex["seizure"].nunique()), "priced": int(np.isfinite(ex["price_per_g"]).sum()),
        "hedonic": hedonic,
        "trends": trends.to_dict(orient="records"),
        "emerging": flags.to_dict(orient="records"),
        "warnings": warnings,
    }
    return MarketRun(table, trends, hedonic, flags, summary)
