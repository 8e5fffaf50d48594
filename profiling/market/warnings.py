"""Warnings an analyst must see beside the numbers: small numbers in a cell (SPEC: percentages
over small counts mislead) and emerging markets (seizures rising while prices fall, issue 6)."""

from __future__ import annotations

import pandas as pd

from profiling.market.seizures import config

EMERGING_COLUMNS = ("area", "seizures_slope_per_month", "seizures_p_value", "n_seizures",
                    "price_measure", "price_slope_per_month", "price_p_value", "n_priced",
                    "evidence")


def cell_warnings(row: dict, min_n: int) -> list[str]:
    """Sorted warning tokens of one market cell."""
    out = []
    if row["n_seizures"] == 0:
        out.append("no_seizures")
    elif row["n_seizures"] < min_n:
        out.append("small_n_seizures")
    if row["n_priced"] == 0:
        out.append("no_prices")
    elif row["n_priced"] < min_n:
        out.append("small_n_priced")
    if row["n_purity"] == 0:
        out.append("no_purity")
    elif row["n_purity"] < min_n:
        out.append("small_n_purity")
    return sorted(out)


def _pct(v: float) -> str:
    return f"{v:+.1%}"


def emerging(trends: pd.DataFrame) -> pd.DataFrame:
    """Areas whose seizure count rises and whose price falls, both Mann-Kendall tests
    significant at ``emerging.alpha``; the evidence says by how much, over how many
    observations."""
    cfg = config("market.toml")["emerging"]
    alpha, measure = float(cfg["alpha"]), str(cfg["price_measure"])
    rows = []
    for area, g in trends.groupby("area", sort=True):
        s = g[g["measure"] == "n_seizures"]
        p = g[g["measure"] == measure]
        if s.empty or p.empty:
            continue
        s, p = s.iloc[0], p.iloc[0]
        if not (pd.notna(s["p_value"]) and pd.notna(p["p_value"])):
            continue
        if (s["slope_per_month"] > 0 and s["p_value"] < alpha
                and p["slope_per_month"] < 0 and p["p_value"] < alpha):
            evidence = (
                f"seizures {_pct(s['slope_per_month'])} a month (95% interval "
                f"{_pct(s['slope_lo'])} to {_pct(s['slope_hi'])}, Mann-Kendall p={s['p_value']:.3g}, "
                f"{int(s['n'])} seizures over {int(s['n_periods'])} periods); "
                f"{measure.replace('_', ' ')} {_pct(p['slope_per_month'])} a month (interval "
                f"{_pct(p['slope_lo'])} to {_pct(p['slope_hi'])}, p={p['p_value']:.3g}, "
                f"{int(p['n'])} priced purchases over {int(p['n_periods'])} periods)")
            rows.append({"area": area, "seizures_slope_per_month": s["slope_per_month"],
                         "seizures_p_value": s["p_value"], "n_seizures": int(s["n"]),
                         "price_measure": measure, "price_slope_per_month": p["slope_per_month"],
                         "price_p_value": p["p_value"], "n_priced": int(p["n"]),
                         "evidence": evidence})
    return pd.DataFrame(rows, columns=list(EMERGING_COLUMNS))
