"""Small synthetic markets with known truth for the market tests: canonical records (as the
library holds them) for seizures at three levels in a few areas, with a price trend per area and
an optional operation (price and seizure-rate effects for some weeks)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.library import LibraryData, blank_records, write_library, write_lock

DAYS_PER_MONTH = 365.25 / 12


def market(n_seizures: int = 3000, seed: int = 1, areas=("North", "South", "East", "West"),
           start: str = "2024-04-01", days: int = 730, trend: dict | None = None,
           operation: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, truth). ``trend``: area -> relative price change a month. ``operation``:
    {area, start, weeks, price_effect, rate_effect}. Truth: seizure_id, level, area."""
    rng = np.random.default_rng(seed)
    trend = trend or {}
    t0 = np.datetime64(start)
    level = 1 + rng.choice(3, size=n_seizures, p=[0.74, 0.22, 0.04])
    area_idx = rng.integers(0, len(areas), n_seizures)
    day = rng.integers(0, days, n_seizures)
    if operation:
        a = areas.index(operation["area"])
        first = (np.datetime64(operation["start"]) - t0).astype(int)
        last = first + 7 * operation["weeks"] - 1
        # extra seizures in the operation area while it runs (street and middle market):
        # rate_effect times the area's usual number over the window, moved there from elsewhere
        share = operation["rate_effect"] * 7 * operation["weeks"] / days / len(areas)
        extra = rng.uniform(0, 1, n_seizures) < share
        rows = np.flatnonzero(extra & (level < 3))
        area_idx[rows] = a
        day[rows] = rng.integers(first, last + 1, len(rows))
    stype = np.empty(n_seizures, dtype=object)
    for k, (types, p) in {1: (["test_purchase", "stop_search", "warrant"], [0.4, 0.45, 0.15]),
                          2: (["warrant", "stop_search", "other"], [0.7, 0.25, 0.05]),
                          3: (["border", "warrant"], [0.75, 0.25])}.items():
        rows = np.flatnonzero(level == k)
        stype[rows] = rng.choice(types, size=len(rows), p=p)
    crack = (level < 3) & (rng.uniform(0, 1, n_seizures) < 0.5)
    n_ex = 1 + rng.poisson(np.array([0.2, 0.8, 2.0])[level - 1])
    s = np.repeat(np.arange(n_seizures), n_ex)
    n = len(s)
    r = blank_records(n)
    lv = level[s]
    r["exhibit_id"] = [f"E{i:06d}" for i in range(n)]
    r["seizure_id"] = [f"S{j:05d}" for j in s]
    r["area"] = np.array(areas, dtype=object)[area_idx[s]]
    r["force"] = "Testshire Police"
    r["seized_on"] = (t0 + day[s]).astype("datetime64[s]")
    r["drug"] = np.where(crack[s], "crack_cocaine", "cocaine_hcl").astype(object)
    r["seizure_type"] = stype[s]
    trend_of = np.array([trend.get(a, 0.0) for a in areas])[area_idx[s]]
    index = (1 + trend_of) ** (day[s] / DAYS_PER_MONTH)
    if operation:
        during = (area_idx[s] == a) & (day[s] >= first) & (day[s] <= last)
        index = np.where(during, index * (1 + operation["price_effect"]), index)
    bought = (lv == 1) & (stype[s] == "test_purchase")
    unit = rng.choice([10.0, 20.0], size=n, p=[0.6, 0.4])
    per_g = np.where(crack[s], 66.7, 40.0)
    rocks = np.where(crack[s] & (lv == 1), 1 + rng.poisson(np.where(bought, 0.3, 1.5)), -1)
    street_mass = np.maximum(rocks, 1) * unit / (per_g * index) * np.exp(rng.normal(0, 0.1, n))
    weight = np.where(lv == 1, street_mass,
                      np.where(lv == 2, np.clip(np.exp(rng.normal(np.log(120), 1.0, n)), 8, 4000),
                               1000 * rng.uniform(0.97, 1.06, n)))
    r["weight_before_g"] = np.round(weight, 3)
    r["weight_after_g"] = np.round(weight * 0.98, 3)
    r["rock_count"] = rocks.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r["mean_rock_g"] = np.where(rocks > 0, r["weight_before_g"] / rocks, np.nan)
    imp = rng.uniform(0.6, 0.9, n_seizures)[s]
    purity = np.where(lv == 3, imp, np.where(lv == 2, imp * rng.uniform(0.55, 0.85, n),
                                             imp * rng.uniform(0.55, 0.85, n) * rng.uniform(0.5, 0.85, n)))
    r["purity"] = np.round(purity, 3)
    r["pure_mass_g"] = r["weight_before_g"] * r["purity"]
    cut = np.array(["levamisole", "levamisole;phenacetin", "lidocaine", "benzocaine;caffeine"],
                   dtype=object)
    r["adulterants"] = np.where(lv == 3, "", cut[rng.integers(0, len(cut), n)]).astype(object)
    r["price_gbp"] = np.where(bought, np.maximum(rocks, 1) * unit, np.nan)
    r["import_id"] = 1
    truth = pd.DataFrame({"seizure_id": [f"S{j:05d}" for j in range(n_seizures)],
                          "level": level, "area": np.array(areas, dtype=object)[area_idx]})
    return r, truth


def write_records(path: Path, records: pd.DataFrame) -> Path:
    data = LibraryData(records.reset_index(drop=True), np.zeros((len(records), 0)), [],
                       pd.DataFrame(index=range(len(records))))
    with write_lock(path):
        write_library(path, data)
    return path


def export_csv(path: Path, records: pd.DataFrame, extra: dict | None = None) -> Path:
    """The records as a lab export that ``profile ingest`` reads (canonical headers)."""
    cols = ["exhibit_id", "seizure_id", "force", "area", "seized_on", "drug", "seizure_type",
            "weight_before_g", "weight_after_g", "rock_count", "purity", "adulterants", "price_gbp"]
    frame = records[cols].copy()
    frame["seized_on"] = pd.to_datetime(frame["seized_on"]).dt.strftime("%Y-%m-%d")
    frame["rock_count"] = frame["rock_count"].map(lambda v: "" if v < 0 else str(v))
    frame["purity"] = frame["purity"].map(lambda v: "" if np.isnan(v) else f"{v * 100:.1f}%")
    frame["adulterants"] = frame["adulterants"].str.replace(";", ", ")
    for k, v in (extra or {}).items():
        frame[k] = v
    frame.to_csv(path, index=False)
    return path


def today() -> dt.date:
    return dt.date(2026, 6, 1)
