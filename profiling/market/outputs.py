"""Writing the market commands' CSV and JSON outputs: owner-readable files, text cells that a
spreadsheet would execute neutralised, floats written the same way on every run, JSON with
sorted keys and ``null`` (never NaN) for a value that cannot be computed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from profiling.export import write_csv  # noqa: F401  (the market commands' CSV writer)
from profiling.files import private_open


def jsonable(value):
    """Plain Python values for JSON: numpy scalars and arrays unwrapped, NaN/inf -> None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if value is None or isinstance(value, (str, int)):
        return value
    return str(value)


def write_json(path: Path, payload) -> None:
    with private_open(path) as fh:
        json.dump(jsonable(payload), fh, indent=2, sort_keys=True, allow_nan=False)
        fh.write("\n")
