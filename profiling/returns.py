"""NCIS-style returns: one return per force (or area) and period, by drug and supply level.

Rules encoded here (SPEC: Returns; DOMAIN: Returns):

- periods follow the financial year (1 April to 31 March): months ``2024-04``, quarters
  ``2024-25Q1`` (April-June), years ``2024-25``;
- a seizure containing several drugs counts once under each drug, and once in the total
  (``totals.csv``); exhibits without a seizure reference are seizures of their own;
- weights are summed in integer micrograms, so summing any set of returns gives exactly the
  library's total for the same exhibits;
- every force and period in the range gets a return, with zeros where nothing was seized;
- each return has the same rows: every drug x every supply level present in the library;
- text cells that a spreadsheet would execute are neutralised; reruns give identical bytes.

The schema (:data:`COLUMNS`, :data:`SCHEMA_VERSION`) is checked before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.errors import InputError
from profiling.export import neutralise
from profiling.files import private_open
from profiling.ingest.vocabulary import load_toml
from profiling.library import LibraryData
from profiling.records import DRUGS, FLAGS, MISSING_COUNT
from profiling.spreadsheet import workbook_bytes

SCHEMA_VERSION = "1.0"
PERIODS = ("month", "quarter", "year")
UNKNOWN_LEVEL = "unknown"


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str      # str | int | float
    unit: str
    doc: str


def _config() -> dict:
    return load_toml("returns.toml")


def _band_columns() -> list[Column]:
    names = _config()["purity_band_names"]
    edges = _config()["purity_band_edges"]
    out = []
    for i, name in enumerate(names):
        hi = f"below {edges[i + 1]:.0%}" if i + 1 < len(edges) else "and above"
        out.append(Column(f"purity_band_{name}", "int", "exhibits",
                          f"purity-analysed exhibits from {edges[i]:.0%} {hi}"))
    return out


def schema() -> tuple[Column, ...]:
    """Columns of one return, in order."""
    return (
        Column("force", "str", "", "police force (or area when --by area)"),
        Column("period", "str", "", "financial-year period: YYYY-MM, YYYY-YYQn or YYYY-YY"),
        Column("drug", "str", "", "canonical drug"),
        Column("level", "str", "", "supply level 1/2/3, or unknown"),
        Column("n_seizures", "int", "seizures", "distinct seizures with this drug"),
        Column("n_exhibits", "int", "exhibits", "exhibits"),
        Column("weight_before_g", "float", "g", "total weight before analysis"),
        Column("weight_after_g", "float", "g", "total weight after analysis (recorded ones)"),
        Column("rock_count", "int", "rocks", "rocks counted"),
        Column("purity_n", "int", "exhibits", "exhibits with a measured purity"),
        Column("purity_mean", "float", "fraction", "mean purity"),
        Column("purity_median", "float", "fraction", "median purity"),
        Column("purity_min", "float", "fraction", "lowest purity"),
        Column("purity_max", "float", "fraction", "highest purity"),
        Column("purity_censored_n", "int", "exhibits", "purity reported only as trace or below a limit"),
        *_band_columns(),
        Column("price_n", "int", "exhibits", "test purchases with a price"),
        Column("median_price_per_g", "float", "GBP/g", "median of price / weight before analysis"),
        Column("median_price_per_rock", "float", "GBP/rock", "median of price / rocks counted"),
        *[Column(f"flag_{f}", "int", "exhibits", f"exhibits flagged {f}") for f in FLAGS],
    )


TOTAL_COLUMNS = ("force", "period", "n_seizures", "n_exhibits", "weight_before_g",
                 "weight_after_g", "rock_count")


# --- periods --------------------------------------------------------------------------------


def _month_index(text: str) -> int:
    m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InputError(f"{text!r} is not a month (YYYY-MM).")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


def _label(month_index: np.ndarray, period: str) -> np.ndarray:
    """Period label for months counted as year*12 + (month-1)."""
    start = _config()["financial_year_start_month"] - 1
    year, month0 = np.divmod(month_index, 12)
    if period == "month":
        return np.array([f"{y:04d}-{m + 1:02d}" for y, m in zip(year, month0)], dtype=object)
    fy = np.where(month0 >= start, year, year - 1)
    if period == "year":
        return np.array([f"{y:04d}-{(y + 1) % 100:02d}" for y in fy], dtype=object)
    q = ((month0 - start) % 12) // 3 + 1
    return np.array([f"{y:04d}-{(y + 1) % 100:02d}Q{k}" for y, k in zip(fy, q)], dtype=object)


def periods_between(start: str, end: str, period: str) -> list[str]:
    """Every period label overlapping the months start..end (inclusive), in order."""
    a, b = _month_index(start), _month_index(end)
    if b < a:
        raise InputError(f"--to {end} is before --from {start}.")
    labels = _label(np.arange(a, b + 1), period)
    return list(dict.fromkeys(labels.tolist()))


# --- building -------------------------------------------------------------------------------


@dataclass
class Returns:
    period: str
    by: str
    periods: list[str]
    units: list[str]                               # forces (or areas)
    table: pd.DataFrame                            # every return's rows, in order
    totals: pd.DataFrame                           # one row per unit x period
    annex: pd.DataFrame                            # per-exhibit rows behind the returns
    excluded_undated: int                          # exhibits with no seizure date
    personal: list[str]                            # attr_ columns marked personal


def _micrograms(grams: np.ndarray) -> np.ndarray:
    res = float(_config()["weight_resolution_g"])
    return np.where(np.isnan(grams), 0, np.rint(grams / res)).astype(np.int64)


def _grams_text(ug: int) -> str:
    res = float(_config()["weight_resolution_g"])
    decimals = max(0, -int(np.floor(np.log10(res))))
    whole, frac = divmod(int(ug), 10 ** decimals)
    return f"{whole}.{frac:0{decimals}d}"


def build_returns(data: LibraryData, start: str, end: str, period: str = "quarter",
                  by: str = "force", levels: dict[str, str] | None = None) -> Returns:
    """Aggregate the library into returns for the months start..end (YYYY-MM, inclusive).

    ``levels`` maps seizure_id -> supply level ('1', '2', '3'); seizures without one are
    'unknown'."""
    if period not in PERIODS:
        raise InputError(f"period must be one of {', '.join(PERIODS)}, not {period!r}.")
    if by not in ("force", "area"):
        raise InputError(f"--by must be force or area, not {by!r}.")
    labels = periods_between(start, end, period)
    rec = data.records
    seized = pd.to_datetime(rec["seized_on"])
    undated = int(seized.isna().sum())
    month = (seized.dt.year * 12 + seized.dt.month - 1).to_numpy(dtype=float)
    lo, hi = _month_index(start), _month_index(end)
    inside = ~np.isnan(month) & (month >= lo) & (month <= hi)
    r = rec.loc[inside].reset_index(drop=True)
    unit_all = rec[by].replace("", "unknown")
    units = sorted(unit_all.unique().tolist()) if len(rec) else []
    seizure_key = np.where(r["seizure_id"].to_numpy(dtype=object) != "",
                           "s:" + r["seizure_id"].astype(str), "e:" + r["exhibit_id"].astype(str))
    level_map = levels or {}
    level = r["seizure_id"].map(lambda s: level_map.get(s, UNKNOWN_LEVEL)).astype(object)
    level_values = sorted(set(level_map.values()) | {UNKNOWN_LEVEL},
                          key=lambda v: (v == UNKNOWN_LEVEL, v))
    frame = pd.DataFrame({
        "unit": r[by].replace("", "unknown").to_numpy(dtype=object),
        "period": _label(month[inside].astype(np.int64), period),
        "drug": r["drug"].replace("", "other").to_numpy(dtype=object),
        "level": level.to_numpy(dtype=object),
        "seizure": seizure_key,
        "before_ug": _micrograms(r["weight_before_g"].to_numpy(dtype=float)),
        "after_ug": _micrograms(r["weight_after_g"].to_numpy(dtype=float)),
        "rocks": np.where(r["rock_count"].to_numpy() == MISSING_COUNT, 0, r["rock_count"].to_numpy()),
        "purity": r["purity"].to_numpy(dtype=float),
        "censored": (r["purity_censored"].to_numpy(dtype=object) != "").astype(np.int64),
        "price": r["price_gbp"].to_numpy(dtype=float),
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        w = r["weight_before_g"].to_numpy(dtype=float)
        rocks = r["rock_count"].to_numpy(dtype=float)
        frame["per_g"] = np.where(w > 0, frame["price"] / w, np.nan)
        frame["per_rock"] = np.where(rocks > 0, frame["price"] / rocks, np.nan)
    edges = np.asarray(_config()["purity_band_edges"], dtype=float)
    band = np.searchsorted(edges, frame["purity"].to_numpy(), side="right") - 1
    for k, name in enumerate(_config()["purity_band_names"]):
        frame[f"purity_band_{name}"] = ((band == k) & ~np.isnan(frame["purity"])).astype(np.int64)
    flags = r["flags"].to_numpy(dtype=object)
    for f in FLAGS:
        frame[f"flag_{f}"] = np.array([f in t.split(";") if t else False for t in flags],
                                      dtype=np.int64) if len(flags) else np.zeros(0, np.int64)

    keys = ["unit", "period", "drug", "level"]
    g = frame.groupby(keys, sort=False)
    agg = pd.DataFrame({
        "n_seizures": g["seizure"].nunique(),
        "n_exhibits": g.size(),
        "before_ug": g["before_ug"].sum(),
        "after_ug": g["after_ug"].sum(),
        "rock_count": g["rocks"].sum(),
        "purity_n": g["purity"].count(),
        "purity_mean": g["purity"].mean(),
        "purity_median": g["purity"].median(),
        "purity_min": g["purity"].min(),
        "purity_max": g["purity"].max(),
        "purity_censored_n": g["censored"].sum(),
        **{c: g[c].sum() for c in frame.columns if c.startswith(("purity_band_", "flag_"))},
        "price_n": g["price"].count(),
        "median_price_per_g": g["per_g"].median(),
        "median_price_per_rock": g["per_rock"].median(),
    })
    grid = pd.MultiIndex.from_product([units, labels, list(DRUGS), level_values], names=keys)
    full = agg.reindex(grid)
    counts = [c.name for c in schema() if c.dtype == "int"] + ["before_ug", "after_ug"]
    for c in counts:
        if c in full:
            full[c] = full[c].fillna(0).astype(np.int64)
    full = full.reset_index().rename(columns={"unit": "force"})
    full["weight_before_g"] = full["before_ug"]
    full["weight_after_g"] = full["after_ug"]

    tg = frame.groupby(["unit", "period"], sort=False)
    totals = pd.DataFrame({
        "n_seizures": tg["seizure"].nunique(), "n_exhibits": tg.size(),
        "weight_before_g": tg["before_ug"].sum(), "weight_after_g": tg["after_ug"].sum(),
        "rock_count": tg["rocks"].sum(),
    }).reindex(pd.MultiIndex.from_product([units, labels], names=["unit", "period"]))
    totals = totals.fillna(0).astype(np.int64).reset_index().rename(columns={"unit": "force"})

    annex = pd.DataFrame({
        by: frame["unit"], "period": frame["period"], "seizure_id": r["seizure_id"],
        "exhibit_id": r["exhibit_id"], "seized_on": seized[inside].dt.strftime("%Y-%m-%d").to_numpy(),
        "area": r["area"], "drug": frame["drug"], "level": frame["level"],
        "weight_before_g": r["weight_before_g"], "weight_after_g": r["weight_after_g"],
        "rock_count": r["rock_count"].replace(MISSING_COUNT, np.nan),
        "purity": r["purity"], "price_gbp": r["price_gbp"], "flags": r["flags"],
        "source_file": r["source_file"], "source_line": r["source_line"],
    })
    attrs = data.attributes.loc[inside].reset_index(drop=True)
    annex = pd.concat([annex, attrs], axis=1).sort_values(
        [by, "period", "seizure_id", "exhibit_id"], kind="stable").reset_index(drop=True)
    return Returns(period, by, labels, units, full, totals, annex, undated, list(data.personal))


# --- writing --------------------------------------------------------------------------------


def _format(table: pd.DataFrame) -> pd.DataFrame:
    """Cells as text exactly as written: fixed decimals, '' for undefined statistics."""
    out = {}
    for col in schema():
        if col.name in ("weight_before_g", "weight_after_g"):
            out[col.name] = [_grams_text(v) for v in table[col.name]]
        elif col.dtype == "int":
            out[col.name] = table[col.name].astype(np.int64).astype(str).tolist()
        elif col.dtype == "float":
            digits = 2 if col.unit.startswith("GBP") else 6
            out[col.name] = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in table[col.name]]
        else:
            out[col.name] = [neutralise(str(v)) for v in table[col.name]]
    return pd.DataFrame(out)


def check_schema(frame: pd.DataFrame) -> None:
    """Raise ValueError if a formatted return does not match the schema exactly."""
    names = [c.name for c in schema()]
    if list(frame.columns) != names:
        raise ValueError(f"return columns {list(frame.columns)} differ from schema {names}.")
    for col in schema():
        values = frame[col.name]
        if col.dtype == "int" and not values.str.fullmatch(r"\d+").all():
            raise ValueError(f"column {col.name} must hold non-negative integers.")
        if col.dtype == "float" and not values.str.fullmatch(r"(-?\d+\.\d+)?").all():
            raise ValueError(f"column {col.name} must hold decimals or be empty.")


def slug(text: str) -> str:
    """A file-name-safe form of a name taken from data: it can never leave --out."""
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s[:60] or "unnamed"


def _write_bytes(path: Path, data: bytes) -> None:
    with private_open(path, "wb") as fh:
        fh.write(data)


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def _xlsx_bytes(frame: pd.DataFrame) -> bytes:
    """Workbook with sheets 'return' (typed cells, units in row 2) and 'schema'."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "return"
    ws.append([c.name for c in schema()])
    ws.append([c.unit for c in schema()])
    kinds = {c.name: c.dtype for c in schema()}
    for row in frame.itertuples(index=False):
        cells = []
        for name, value in zip(frame.columns, row):
            if value == "":
                cells.append(None)
            elif kinds[name] == "int":
                cells.append(int(value))
            elif kinds[name] == "float":
                cells.append(float(value))
            else:
                cells.append(value)
        ws.append(cells)
    for cell in ws[1] + ws[2]:
        cell.data_type = "s"
    for row in ws.iter_rows(min_row=3):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"       # text is never a formula, whatever it starts with
    sc = wb.create_sheet("schema")
    sc.append(["column", "type", "unit", "description", "schema_version"])
    for c in schema():
        sc.append([c.name, c.dtype, c.unit, c.doc, SCHEMA_VERSION])
    return workbook_bytes(wb)


def write_returns(ret: Returns, out_dir: str | Path, formats: tuple[str, ...] = ("csv",),
                  annex: bool = False, redactor=None, progress=None) -> pd.DataFrame:
    """Write one file per unit x period and format, ``index.csv``, ``totals.csv``,
    ``schema.json`` (and ``annex.csv`` on request). Returns the index."""
    for f in formats:
        if f not in ("csv", "xlsx"):
            raise InputError(f"format must be csv or xlsx, not {f!r}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    advance = progress or (lambda n: None)
    formatted = _format(ret.table)
    check_schema(formatted)
    names: dict[str, str] = {}
    used: set[str] = set()
    for unit in ret.units:
        base, k, name = slug(unit), 2, slug(unit)
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names[unit] = name
    index_rows = []
    by_key = {key: part for key, part in formatted.groupby(["force", "period"], sort=False)}
    neutral_units = {u: neutralise(u) for u in ret.units}
    for unit in ret.units:
        for label in ret.periods:
            part = by_key[(neutral_units[unit], label)].reset_index(drop=True)
            for fmt in formats:
                blob = _csv_bytes(part) if fmt == "csv" else _xlsx_bytes(part)
                file_name = f"{names[unit]}_{slug(label)}.{fmt}"
                _write_bytes(out / file_name, blob)
                index_rows.append({"file": file_name, "force": neutralise(unit), "period": label,
                                   "rows": len(part), "sha256": hashlib.sha256(blob).hexdigest()})
            advance(1)
    index = pd.DataFrame(index_rows, columns=["file", "force", "period", "rows", "sha256"])
    _write_bytes(out / "index.csv", _csv_bytes(index))
    totals = ret.totals.copy()
    totals["force"] = totals["force"].map(neutralise)
    for c in ("weight_before_g", "weight_after_g"):
        totals[c] = [_grams_text(v) for v in totals[c]]
    _write_bytes(out / "totals.csv", _csv_bytes(totals[list(TOTAL_COLUMNS)]))
    meta = {"schema_version": SCHEMA_VERSION, "period": ret.period, "by": ret.by,
            "periods": ret.periods, "excluded_undated_exhibits": ret.excluded_undated,
            "columns": [vars(c) for c in schema()], "totals_columns": list(TOTAL_COLUMNS)}
    _write_bytes(out / "schema.json", (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    if annex:
        frame = ret.annex.copy()
        if redactor is not None:
            frame = redactor.frame(frame, ret.personal)
        for c in frame.columns:
            if frame[c].dtype == object:
                frame[c] = frame[c].map(neutralise)
        _write_bytes(out / "annex.csv", _csv_bytes(frame))
        if redactor is not None:
            redactor.write_manifest(out, ["annex.csv"])
    return index
