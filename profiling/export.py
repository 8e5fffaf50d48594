"""Write the library's canonical records as CSV (SPEC: `profile export`).

One row per exhibit; every canonical field as a column (token lists ';'-joined and sorted,
dates ISO, purity a fraction), profile columns ``p_<compound>``, extra export columns
``attr_<name>``. Text cells that a spreadsheet would execute (starting with =, +, -, @ and not a
number) are prefixed with an apostrophe.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")
    return len(frame)
