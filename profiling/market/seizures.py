"""From exhibits to seizures, and the time axis every market table uses.

A seizure is the exhibits sharing a ``seizure_id``; an exhibit without one is a seizure of its
own, keyed by its exhibit id (as in the returns). Months are counted as fractional calendar
months (days / (365.25 / 12)) so that a slope "per month" means the same in every table.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.errors import InputError
from profiling.ingest.vocabulary import load_toml
from profiling.library import LibraryData
from profiling.records import MISSING_COUNT

DAYS_PER_MONTH = 365.25 / 12
PERIODS = ("month", "quarter")


def config(name: str) -> dict:
    """A market reference file (``levels.toml`` or ``market.toml``)."""
    return load_toml(name)


@dataclass
class Source:
    """Records to analyse, and the library they came from (None for an export)."""

    data: LibraryData
    library: Path | None


def open_source(source: str | Path, mapping=None, as_of=None, progress=None) -> Source:
    """Read a profile library (``.h5``/``.hdf5``) or ingest a lab export in memory.

    An export goes through the same ingest as ``profile ingest`` (into a temporary library that
    is removed afterwards), so its rows are read by the same rules."""
    from profiling.ingest import ingest
    from profiling.library import read_library

    path = Path(source)
    if path.suffix.lower() in (".h5", ".hdf5"):
        return Source(read_library(path), path)
    if not path.exists():
        raise InputError(f"{path} does not exist.")
    with tempfile.TemporaryDirectory(prefix="profile-market-") as tmp:
        lib = Path(tmp) / "export.h5"
        ingest([path], lib, mapping=mapping, quarantine=Path(tmp) / "quarantine.csv",
               as_of=as_of, progress=progress)
        return Source(read_library(lib), None)


def seizure_keys(records: pd.DataFrame) -> np.ndarray:
    """The seizure of each exhibit: its seizure_id, or its exhibit_id when it has none."""
    sid = records["seizure_id"].to_numpy(dtype=object)
    eid = records["exhibit_id"].to_numpy(dtype=object)
    return np.where(sid != "", sid, eid).astype(object)


def months(dates) -> np.ndarray:
    """Fractional months since 1970-01-01 (NaN for a missing date)."""
    days = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[D]")
    out = days.astype("int64").astype(float)
    out[np.isnat(days)] = np.nan
    return out / DAYS_PER_MONTH


def period_labels(dates, period: str) -> np.ndarray:
    """Period labels as the returns write them: ``2024-04`` (month) or ``2024-25Q1`` (financial
    quarter, April-June); '' for a missing date."""
    from profiling.returns import _label

    if period not in PERIODS:
        raise InputError(f"--period must be month or quarter, not {period!r}.")
    seized = pd.to_datetime(pd.Series(dates))
    ok = seized.notna().to_numpy()
    month_index = (seized.dt.year * 12 + seized.dt.month - 1).to_numpy(dtype=float)
    out = np.full(len(seized), "", dtype=object)
    if ok.any():
        out[ok] = _label(month_index[ok].astype(np.int64), period)
    return out


def period_start(label: str) -> pd.Timestamp:
    """First day of a period label (month ``YYYY-MM`` or financial quarter ``YYYY-YYQn``)."""
    if "Q" in label:
        start_month = config("returns.toml")["financial_year_start_month"]
        year, q = int(label[:4]), int(label[-1])
        m0 = start_month - 1 + 3 * (q - 1)
        return pd.Timestamp(year + m0 // 12, m0 % 12 + 1, 1)
    return pd.Timestamp(label + "-01")


def _censored_limit() -> float:
    return float(config("levels.toml")["purity"]["censored_without_limit"])


def _adulterant_count(values: np.ndarray) -> np.ndarray:
    return np.fromiter((len(v.split(";")) if v else 0 for v in values), dtype=np.int64,
                       count=len(values))


def seizure_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per seizure, in seizure-key order.

    Columns: ``seizure_id`` (the key), ``area``, ``force``, ``seized_on`` (earliest),
    ``drug`` and ``seizure_type`` (of the first exhibit), ``n_exhibits``, ``weight_g`` (total
    before analysis), ``purity`` (median of measured exhibits, else the censoring limit),
    ``purity_censored`` (no measured purity but a censored one), ``rock_count`` (rocks counted,
    -1 none counted), ``mean_rock_g`` (mass of the counted exhibits / rocks), ``n_adulterants``
    (largest number found in one exhibit), ``price_gbp`` (total paid, NaN if nothing was)."""
    r = records
    key = seizure_keys(r)
    rocks = r["rock_count"].to_numpy()
    counted = rocks != MISSING_COUNT
    weight = r["weight_before_g"].to_numpy(dtype=float)
    purity = r["purity"].to_numpy(dtype=float)
    limit = r["purity_limit"].to_numpy(dtype=float) if "purity_limit" in r else np.full(len(r), np.nan)
    censored = (r["purity_censored"].to_numpy(dtype=object) != "") & np.isnan(purity)
    frame = pd.DataFrame({
        "seizure_id": key,
        "area": r["area"].to_numpy(dtype=object),
        "force": r["force"].to_numpy(dtype=object),
        "seized_on": pd.to_datetime(r["seized_on"]).to_numpy(),
        "drug": r["drug"].replace("", "other").to_numpy(dtype=object),
        "seizure_type": r["seizure_type"].replace("", "other").to_numpy(dtype=object),
        "weight_g": weight,
        "purity": purity,
        "limit": np.where(censored, np.where(np.isnan(limit), _censored_limit(), limit), np.nan),
        "rocks": np.where(counted, rocks, 0),
        "counted": counted.astype(np.int64),
        "rock_weight_g": np.where(counted, np.nan_to_num(weight), 0.0),
        "n_adulterants": _adulterant_count(r["adulterants"].to_numpy(dtype=object)),
        "price_gbp": r["price_gbp"].to_numpy(dtype=float),
    })
    g = frame.groupby("seizure_id", sort=True)
    out = g.agg(area=("area", "first"), force=("force", "first"), seized_on=("seized_on", "min"),
                drug=("drug", "first"), seizure_type=("seizure_type", "first"),
                n_exhibits=("area", "size"), purity=("purity", "median"), limit=("limit", "max"),
                rocks=("rocks", "sum"), counted=("counted", "sum"),
                rock_weight_g=("rock_weight_g", "sum"), n_adulterants=("n_adulterants", "max"))
    out["weight_g"] = g["weight_g"].sum(min_count=1)
    out["price_gbp"] = g["price_gbp"].sum(min_count=1)
    out = out.reset_index()
    out["purity_censored"] = out["purity"].isna() & out["limit"].notna()
    out["purity"] = out["purity"].fillna(out["limit"])
    out["rock_count"] = np.where(out["counted"] > 0, out["rocks"], MISSING_COUNT).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["mean_rock_g"] = np.where(out["rocks"] > 0, out["rock_weight_g"] / out["rocks"], np.nan)
    return out.drop(columns=["limit", "rocks", "counted", "rock_weight_g"])
