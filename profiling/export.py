"""Write the library's canonical records as CSV (SPEC: `profile export`).

One row per exhibit; every canonical field as a column (token lists ';'-joined and sorted,
dates ISO, purity a fraction), profile columns ``p_<compound>``, extra export columns
``attr_<name>``. Text cells that a spreadsheet would execute (starting with =, +, -, @ and not a
number) are prefixed with an apostrophe.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.files import private_open
from profiling.library import LibraryData, profile_frame
from profiling.records import FIELDS, MISSING_COUNT

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix a formula-like text cell with an apostrophe; real numbers are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value


CSV_CHUNK = 250_000


def _csv_field(text: str) -> str:
    """Quote a CSV field when it holds a separator, quote or line break (as csv.QUOTE_MINIMAL)."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _fields(values: list) -> list:
    """``_csv_field(neutralise(v))`` of each value, with the scan for cells that need either done
    by numpy over the whole list (ids of a million exhibits: one pass, not a million calls)."""
    texts = [v if isinstance(v, str) else str(v) for v in values]
    if not texts:
        return []
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    short = np.flatnonzero(lengths <= 64)         # a fixed-width array of short cells only
    u = np.array([texts[k] for k in short.tolist()], dtype="U64")
    special = np.zeros(len(u), dtype=bool)
    for start in _FORMULA_START:
        special |= np.char.startswith(u, start)
    for c in ',"\n\r':
        special |= np.char.find(u, c) >= 0
    todo = np.r_[short[special], np.flatnonzero(lengths > 64)]
    for k in todo.tolist():
        texts[k] = _csv_field(neutralise(texts[k]))
    return texts


def _column_text(column: pd.Series, float_format: str):
    """A function chunk(a, b) -> list of CSV fields for rows a..b of one column."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        # only the categories in use (link ends are categoricals over every exhibit id)
        categories = column.cat.categories
        codes = column.cat.codes.to_numpy()
        used = np.unique(codes[codes >= 0])
        text = np.full(len(categories) + 1, "", dtype=object)
        text[used] = _fields([str(categories[k]) for k in used.tolist()])
        return lambda a, b: text[codes[a:b]]
    values = column.to_numpy()
    if values.dtype == bool:
        text = np.array(["false", "true"], dtype=object)
        return lambda a, b: text[values[a:b].astype(np.int8)]
    if values.dtype.kind == "f":
        return lambda a, b: ["" if math.isnan(v) else float_format % v for v in values[a:b].tolist()]
    if values.dtype.kind in "iu":
        return lambda a, b: values[a:b].astype(str).astype(object)
    # text: neutralise and quote each distinct value once (ids repeat across link rows)
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    text = np.array(_fields(uniques.tolist()) + [""], dtype=object)
    codes = np.where(codes < 0, len(text) - 1, codes)
    return lambda a, b: text[codes[a:b]]


def write_csv(path: str | Path, frame: pd.DataFrame, *, float_format: str = "%.10g",
              chunk: int = CSV_CHUNK) -> None:
    """Write ``frame`` as CSV, owner-readable only, streaming ``chunk`` rows at a time: text
    neutralised (:func:`neutralise`) and quoted when needed, floats in ``float_format`` with ''
    for NaN, booleans true/false. Millions of rows take seconds, not minutes."""
    columns = [_column_text(frame[c], float_format) for c in frame.columns]
    with private_open(path) as fh:
        fh.write(",".join(_csv_field(neutralise(str(c))) for c in frame.columns) + "\n")
        for a in range(0, len(frame), chunk):
            b = min(a + chunk, len(frame))
            fields = [col(a, b) for col in columns]
            fh.write("\n".join(map(",".join, zip(*fields))) + "\n")


def records_frame(data: LibraryData) -> pd.DataFrame:
    """Canonical records as they are written out: ISO dates, '' for missing counts."""
    out = {}
    for f in FIELDS:
        values = data.records[f.name]
        if f.kind == "date":
            out[f.name] = pd.to_datetime(values).dt.strftime("%Y-%m-%d").fillna("")
        elif f.kind == "count":
            v = values.to_numpy(dtype=np.int64)
            out[f.name] = np.where(v == MISSING_COUNT, "", v.astype(str))
        elif f.kind in ("text", "tokens"):
            out[f.name] = values.astype(object).map(neutralise)
        else:
            out[f.name] = values.to_numpy(dtype=float)
    frame = pd.DataFrame(out, index=data.records.index)
    attrs = data.attributes.apply(lambda col: col.map(neutralise)) if len(data.attributes.columns) \
        else data.attributes
    return pd.concat([frame, profile_frame(data), attrs], axis=1)


def write_records_csv(data: LibraryData, path: str | Path, redactor=None) -> int:
    """Write the CSV (owner-readable only); returns the number of rows. With a
    :class:`~profiling.redact.Redactor`, references are pseudonymised, personal and source
    columns removed, and ``<file>.redaction.json`` written beside it."""
    frame = records_frame(data)
    if redactor is not None:
        frame = redactor.frame(frame, data.personal)
        manifest = Path(str(path) + ".redaction.json")
        redactor.write_manifest(manifest.parent, [Path(path).name])
        os.replace(manifest.parent / "redaction.json", manifest)
    with private_open(path) as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")
    return len(frame)
