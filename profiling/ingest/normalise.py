"""Normalise raw export cells into canonical values: units, percent, censoring, dates, vocabularies.

Each ``parse_*`` function takes a column of raw cells and returns arrays (values plus a problem
code per cell); it never raises on bad text. :func:`normalise` applies them to a whole
:class:`~profiling.ingest.readers.RawTable` and says, per row, which fields could not be read.

Number scanning is compiled (``ext/parse.pyx``); low-cardinality fields (dates, vocabularies,
adulterants, packaging) are parsed once per distinct value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from profiling._native.parse import BLANK, NUMBER, SUFFIX, TEXT, scan_quantities
from profiling.ingest import vocabulary as vocab
from profiling.ingest.mapping import ColumnPlan, Mapping
from profiling.ingest.readers import RawTable

# problem codes (per cell)
OK, MISSING, UNREADABLE, NEGATIVE, NOT_POSITIVE, ABOVE_100 = range(6)
PROBLEM_NAMES = {MISSING: "missing", UNREADABLE: "unreadable", NEGATIVE: "negative",
                 NOT_POSITIVE: "not_positive", ABOVE_100: "above_100"}


@dataclass
class Parsed:
    values: np.ndarray    # float64
    problem: np.ndarray   # int8 problem code per cell


def _as_cells(cells: Sequence) -> list:
    return cells.tolist() if hasattr(cells, "tolist") else list(cells)


def _per_unique(cells, parse: Callable[[str], object]) -> tuple[np.ndarray, list]:
    """Apply ``parse`` once per distinct cell: returns (code per cell, parsed distinct values)."""
    codes, uniques = pd.factorize(pd.Series(cells, dtype=object), use_na_sentinel=False)
    return codes, [parse(u if isinstance(u, str) else "") for u in uniques]


def _spread(codes: np.ndarray, per_unique: list) -> np.ndarray:
    """Values computed per distinct cell, spread back to every cell (object array)."""
    table = np.empty(len(per_unique), dtype=object)
    table[:] = per_unique
    return table[codes] if len(codes) else np.array([], dtype=object)


def _lookup_suffixes(suffixes: np.ndarray, mask: np.ndarray, test: Callable[[str], bool]) -> np.ndarray:
    """Boolean per cell: ``test(suffix)`` evaluated once per distinct suffix, only where ``mask``."""
    out = np.zeros(len(suffixes), dtype=bool)
    if mask.any():
        idx = np.flatnonzero(mask)
        codes, uniques = pd.factorize(suffixes[idx])
        out[idx] = np.array([test(u) for u in uniques], dtype=bool)[codes]
    return out


def _suffix_factor(suffixes: np.ndarray, mask: np.ndarray, table: dict[str, float]) -> np.ndarray:
    """Factor for each suffix (NaN when the suffix is not in ``table``), only where ``mask``."""
    out = np.full(len(suffixes), np.nan)
    if mask.any():
        idx = np.flatnonzero(mask)
        codes, uniques = pd.factorize(suffixes[idx])
        factors = np.array([table.get(u.strip(" .").replace(" ", ""), np.nan) for u in uniques])
        out[idx] = factors[codes]
    return out


def _grams_divisor(unit_factor: float) -> tuple[float, float]:
    """Multiply/divide pair that converts a value to grams with one correctly rounded operation
    (230 mg -> 230 / 1000 = 0.23 exactly as float('0.23'))."""
    if unit_factor < 1:
        inverse = 1.0 / unit_factor
        if abs(inverse - round(inverse)) < 1e-9 * inverse:
            return 1.0, float(round(inverse))
    return unit_factor, 1.0


def parse_weights(cells: Sequence, unit: str = "g") -> Parsed:
    """Weights to grams. '0.23g', '230 mg', '1.2 kg', '1,234.5' (in ``unit``). Blank -> MISSING;
    unknown unit or text -> UNREADABLE; below zero -> NEGATIVE; zero -> NOT_POSITIVE (the caller
    decides whether zero is allowed)."""
    cells = _as_cells(cells)
    value, status, prefix, currency, suffix = scan_quantities(cells)
    units = vocab.weight_units()
    problem = np.zeros(len(cells), dtype=np.int8)
    problem[status == BLANK] = MISSING
    problem[(status == TEXT) | (prefix != 0) | currency] = UNREADABLE
    default_factor = units[unit.lower()]
    mult = np.full(len(cells), np.nan)
    div = np.ones(len(cells))
    m, d = _grams_divisor(default_factor)
    mult[status == NUMBER] = m
    div[status == NUMBER] = d
    with_unit = status == SUFFIX
    factors = _suffix_factor(suffix, with_unit, units)
    for f in np.unique(factors[with_unit & ~np.isnan(factors)]):
        sel = with_unit & (factors == f)
        mult[sel], div[sel] = _grams_divisor(float(f))
    problem[with_unit & np.isnan(factors)] = UNREADABLE
    grams = value * mult / div
    readable = problem == OK
    problem[readable & (grams < 0)] = NEGATIVE
    problem[readable & (grams == 0)] = NOT_POSITIVE
    problem[readable & ~np.isfinite(grams)] = UNREADABLE
    grams[problem != OK] = np.nan
    # zero stays a value: weight_after_g may be 0
    zero = (problem == NOT_POSITIVE)
    grams[zero] = 0.0
    return Parsed(grams, problem)


@dataclass
class PurityParsed:
    values: np.ndarray      # fraction in [0, 1]; NaN when missing or censored
    censored: np.ndarray    # object: '' | 'trace' | 'below'
    limit: np.ndarray       # upper bound of a 'below' censored value (fraction), else NaN
    problem: np.ndarray


def parse_purity(cells: Sequence, *, header_percent: bool = False,
                 purity_unit: str | None = None) -> PurityParsed:
    """Purity to a fraction (SPEC rules): a '%' in the cell or header, or purity_unit='percent',
    means percent; a bare number above 1 is a percent; otherwise purity_unit decides (default
    fraction). 'trace' and '<x%' are kept as censoring, not invented values."""
    cells = _as_cells(cells)
    n = len(cells)
    value, status, prefix, currency, suffix = scan_quantities(cells)
    trace_words, missing_words = vocab.purity_words()
    problem = np.zeros(n, dtype=np.int8)
    censored = np.full(n, "", dtype=object)
    limit = np.full(n, np.nan)
    percent_cell = _lookup_suffixes(suffix, status == SUFFIX,
                                    lambda s: s.startswith("%") or s in ("percent", "pc", "pct"))
    problem[(status == SUFFIX) & ~percent_cell] = UNREADABLE
    problem[currency | (prefix == 2)] = UNREADABLE
    is_text = status == TEXT
    trace = _lookup_suffixes(suffix, is_text, lambda s: vocab.key(s) in trace_words)
    missing = _lookup_suffixes(suffix, is_text, lambda s: vocab.key(s) in missing_words)
    censored[trace] = "trace"
    problem[is_text & ~trace & ~missing] = UNREADABLE
    numeric = ((status == NUMBER) | percent_cell) & (problem == OK)
    forced_percent = header_percent or purity_unit == "percent"
    as_percent = numeric & (percent_cell | forced_percent | (value > 1))
    fraction = np.where(as_percent, value / 100.0, value)
    fraction[~numeric] = np.nan
    problem[numeric & (fraction < 0)] = NEGATIVE
    problem[numeric & (fraction > 1)] = ABOVE_100
    below = numeric & (prefix == 1) & (problem == OK)
    censored[below] = "below"
    limit[below] = fraction[below]
    fraction[below | (problem != OK)] = np.nan
    return PurityParsed(fraction, censored, limit, problem)


def parse_counts(cells: Sequence) -> Parsed:
    """Rock counts: '3', '3 rocks', blank (unknown -> NaN). Non-integers are UNREADABLE."""
    cells = _as_cells(cells)
    value, status, prefix, currency, suffix = scan_quantities(cells)
    words = set(vocab.units()["rocks"]["words"])
    problem = np.zeros(len(cells), dtype=np.int8)
    problem[status == BLANK] = MISSING
    bad_suffix = (status == SUFFIX) & ~_lookup_suffixes(suffix, status == SUFFIX,
                                                        lambda s: s.strip(" .") in words)
    problem[(status == TEXT) | bad_suffix | (prefix != 0) | currency] = UNREADABLE
    ok = problem == OK
    problem[ok & (value != np.floor(value))] = UNREADABLE
    problem[ok & (value < 0)] = NEGATIVE
    value = value.copy()
    value[problem != OK] = np.nan
    return Parsed(value, problem)


def parse_prices(cells: Sequence) -> Parsed:
    """Prices in GBP: '£12.50', '12.5', '20 GBP'. Blank or 'n/a' -> MISSING."""
    cells = _as_cells(cells)
    value, status, prefix, currency, suffix = scan_quantities(cells)
    currency_words = {vocab.key(w) for w in vocab.units()["price"]["currency"]}
    _, missing_words = vocab.purity_words()
    problem = np.zeros(len(cells), dtype=np.int8)
    problem[status == BLANK] = MISSING
    is_text = status == TEXT
    missing = _lookup_suffixes(suffix, is_text, lambda s: vocab.key(s) in missing_words)
    problem[is_text] = np.where(missing[is_text], MISSING, UNREADABLE)
    bad_suffix = (status == SUFFIX) & ~_lookup_suffixes(suffix, status == SUFFIX,
                                                        lambda s: vocab.key(s) in currency_words)
    problem[bad_suffix | (prefix != 0)] = UNREADABLE
    ok = problem == OK
    problem[ok & (value < 0)] = NEGATIVE
    value = value.copy()
    value[problem != OK] = np.nan
    return Parsed(value, problem)


def parse_peak_areas(cells: Sequence) -> Parsed:
    """Profile cells: a number is a peak area or ratio; blank, 0, '<LOQ', 'nd' or '<x' mean not
    detected (0). Other text is UNREADABLE; negative areas are NEGATIVE."""
    cells = _as_cells(cells)
    value, status, prefix, currency, suffix = scan_quantities(cells)
    not_detected = vocab.profile_not_detected()
    problem = np.zeros(len(cells), dtype=np.int8)
    out = value.copy()
    out[status == BLANK] = 0.0
    worded = (status == TEXT) | (status == SUFFIX)
    nd = _lookup_suffixes(suffix, worded, lambda s: vocab.key(s) in not_detected)
    out[nd] = 0.0
    problem[worded & ~nd] = UNREADABLE
    out[prefix == 1] = 0.0   # "<0.05": below the limit, not detected
    problem[(prefix == 2) | currency] = UNREADABLE
    problem[(problem == OK) & (out < 0)] = NEGATIVE
    out[problem != OK] = np.nan
    return Parsed(out, problem)


# --- dates -----------------------------------------------------------------------------------

_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")
_NUMERIC = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?$")
_TEXTUAL_DMY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?[\s\-/.]+([a-z]{3,9})\.?[\s\-/.,]+(\d{2,4})$")
_TEXTUAL_MDY = re.compile(r"^([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$")
_MONTHS = {m.lower(): i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_MONTHS.update({"sept": 9})
for _i, _m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                         "september", "october", "november", "december"], start=1):
    _MONTHS[_m] = _i


def _year(y: str) -> int:
    v = int(y)
    if len(y) == 2:
        return 2000 + v if v < 70 else 1900 + v
    return v


def parse_date_text(text: str, order: str = "dmy") -> dt.date | None | str:
    """One date cell -> date, None for blank, or the string 'unreadable'.

    ISO dates (2025-02-03) are read whatever ``order`` says; numeric dates follow ``order``
    ("03/02/2025" is 3 February with dmy); "3 Feb 2025" and "Feb 3, 2025" are read as written.
    """
    s = text.strip().lower()
    if not s:
        return None
    try:
        m = _ISO.match(s)
        if m:
            return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        m = _NUMERIC.match(s)
        if m:
            a, b, c = m.groups()
            if len(a) == 4:          # 2025/02/03 is year-first whatever the order
                return dt.date(int(a), int(b), int(c))
            if order == "dmy":
                return dt.date(_year(c), int(b), int(a))
            if order == "mdy":
                return dt.date(_year(c), int(a), int(b))
            return dt.date(_year(a), int(b), int(c))
        m = _TEXTUAL_DMY.match(s)
        if m and m.group(2) in _MONTHS:
            return dt.date(_year(m.group(3)), _MONTHS[m.group(2)], int(m.group(1)))
        m = _TEXTUAL_MDY.match(s)
        if m and m.group(1) in _MONTHS:
            return dt.date(int(m.group(3)), _MONTHS[m.group(1)], int(m.group(2)))
    except ValueError:
        return "unreadable"
    return "unreadable"


def parse_dates(cells: Sequence, order: str = "dmy") -> tuple[np.ndarray, np.ndarray]:
    """Dates -> (datetime64[D] with NaT, problem codes). Parsed once per distinct cell."""
    codes, uniques = pd.factorize(pd.Series(_as_cells(cells), dtype=object), use_na_sentinel=False)
    parsed = [parse_date_text(u if isinstance(u, str) else "", order) for u in uniques]
    days = np.array([np.datetime64(p, "D") if isinstance(p, dt.date) else np.datetime64("NaT", "D")
                     for p in parsed], dtype="datetime64[D]")
    problem = np.array([MISSING if p is None else UNREADABLE if isinstance(p, str) else OK
                        for p in parsed], dtype=np.int8)
    return days[codes], problem[codes]


# --- whole table -----------------------------------------------------------------------------


@dataclass
class Normalised:
    """Every row of one export, normalised. ``problems[i]`` lists the 'field:code' reasons that
    send row i to quarantine (rows absent from it are readable)."""

    records: pd.DataFrame          # canonical fields (no flags yet), one row per raw row
    profiles: np.ndarray           # float64 [n_rows, n_compounds]; 0 = not detected
    compounds: list[str]
    attributes: pd.DataFrame       # attr_<name> columns, raw text
    problems: dict[int, list[str]]
    personal: list[str]            # attr_<name> columns the mapping marks as personal


def _column(table: RawTable, plan: ColumnPlan, name: str) -> list | None:
    i = plan.fields.get(name)
    return None if i is None else table.cells[i].tolist()


def _text(cells: list | None, n: int) -> np.ndarray:
    if cells is None:
        return np.full(n, "", dtype=object)
    codes, uniques = pd.factorize(pd.Series(cells, dtype=object), use_na_sentinel=False)
    stripped = np.array([u.strip() for u in uniques], dtype=object)
    return stripped[codes] if n else np.array([], dtype=object)


def normalise(table: RawTable, plan: ColumnPlan, mapping: Mapping) -> Normalised:
    n = table.n_rows
    problems: dict[int, list[str]] = {}
    unknown: dict[int, list[str]] = {}

    def note(field: str, codes: np.ndarray, allowed: tuple[int, ...] = (OK, MISSING)) -> None:
        for i in np.flatnonzero(~np.isin(codes, allowed)).tolist():
            problems.setdefault(i, []).append(f"{field}:{PROBLEM_NAMES[int(codes[i])]}")

    rec: dict[str, object] = {}
    exhibit = _text(_column(table, plan, "exhibit_id"), n)
    for i in np.flatnonzero(exhibit == "").tolist():
        problems.setdefault(i, []).append("exhibit_id:missing")
    rec["exhibit_id"] = exhibit
    for name in ("seizure_id", "force", "area"):
        rec[name] = _text(_column(table, plan, name), n)

    for name in ("seized_on", "analysed_on"):
        cells = _column(table, plan, name)
        if cells is None:
            rec[name] = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
            continue
        rec[name], codes = parse_dates(cells, mapping.date_order)
        note(name, codes)

    for name, terms in (("drug", vocab.drugs()), ("seizure_type", vocab.seizure_types())):
        cells = _column(table, plan, name)
        raw = _text(cells, n)
        # blank -> '' (not recorded); unknown text -> None, becomes 'other' and keeps the raw text
        codes, looked = _per_unique(raw, lambda s, t=terms: t.lookup(s) if s else "")
        rec[name] = _spread(codes, [v if v is not None else "other" for v in looked])
        is_unknown = np.array([v is None for v in looked], dtype=bool)
        for i in np.flatnonzero(is_unknown[codes]).tolist():
            unknown.setdefault(i, []).append(f"{name}={raw[i]}")

    weight_unit = mapping.weight_unit
    for name, required in (("weight_before_g", True), ("weight_after_g", False)):
        cells = _column(table, plan, name)
        if cells is None:
            rec[name] = np.full(n, np.nan)
            continue
        unit = plan.units.get(name) if plan.units.get(name) in vocab.weight_units() else weight_unit
        parsed = parse_weights(cells, unit)
        allowed = (OK,) if required else (OK, MISSING, NOT_POSITIVE)
        note(name, parsed.problem, allowed)
        rec[name] = parsed.values

    for name, parse in (("rock_count", parse_counts), ("price_gbp", parse_prices)):
        cells = _column(table, plan, name)
        if cells is None:
            rec[name] = np.full(n, np.nan)
            continue
        parsed = parse(cells)
        note(name, parsed.problem)
        rec[name] = parsed.values

    cells = _column(table, plan, "purity")
    if cells is None:
        rec["purity"], rec["purity_censored"], rec["purity_limit"] = (
            np.full(n, np.nan), np.full(n, "", dtype=object), np.full(n, np.nan))
    else:
        header_unit = plan.units.get("purity") or ""
        pp = parse_purity(cells, header_percent="%" in header_unit or "percent" in header_unit,
                          purity_unit=mapping.purity_unit)
        note("purity", pp.problem)
        rec["purity"], rec["purity_censored"], rec["purity_limit"] = pp.values, pp.censored, pp.limit

    cells = _column(table, plan, "adulterants")
    codes, adulterants = _per_unique(_text(cells, n), vocab.parse_adulterants)
    rec["adulterants"] = _spread(codes, [";".join(a.names) for a in adulterants])
    rec["adulterant_fractions"] = _spread(
        codes, [";".join(f"{k}={v:.6g}" for k, v in a.fractions) for a in adulterants])
    words = _spread(codes, [", ".join(a.unknown) for a in adulterants])
    for i in np.flatnonzero(words != "").tolist():
        unknown.setdefault(i, []).append("adulterants=" + words[i])

    cells = _column(table, plan, "packaging")
    codes, packaging = _per_unique(_text(cells, n), vocab.parse_packaging)
    rec["packaging"] = _spread(codes, [";".join(p.tokens) for p in packaging])
    words = _spread(codes, [" ".join(p.unknown) for p in packaging])
    for i in np.flatnonzero(words != "").tolist():
        unknown.setdefault(i, []).append("packaging=" + words[i])

    compounds = [c for _, c in plan.profile]
    profiles = np.empty((n, len(compounds)), dtype=np.float64)
    for j, (col, compound) in enumerate(plan.profile):
        parsed = parse_peak_areas(table.cells[col].tolist())
        note(f"p_{compound}", parsed.problem, (OK,))
        profiles[:, j] = parsed.values

    unknown_text = np.full(n, "", dtype=object)
    for i, words_i in unknown.items():
        unknown_text[i] = " | ".join(words_i)
    rec["unknown_vocabulary"] = unknown_text
    attributes = pd.DataFrame({f"attr_{name}": table.cells[col].to_numpy(dtype=object)
                               for col, name in plan.attributes}, index=range(n))
    for pos, reason in table.broken.items():
        problems.setdefault(pos, []).insert(0, reason.split(" ")[0])
    records = pd.DataFrame(rec, index=range(n))
    personal = [f"attr_{name}" for col, name in plan.attributes if col in plan.personal]
    return Normalised(records, profiles, compounds, attributes, problems, personal)
