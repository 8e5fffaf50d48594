"""Rules of evidence: derived quantities and the flags a readable row carries into every report.

Tolerances come from ``reference_data/evidence.toml`` (with their sources). Flags never remove a
row; they travel with it (SPEC: Bad input).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from profiling.ingest.vocabulary import load_toml


@dataclass(frozen=True)
class Tolerances:
    weight_gain_g: float
    max_loss_g: float
    max_loss_fraction: float
    rock_min_g: float
    rock_max_g: float


@cache
def tolerances() -> Tolerances:
    t = load_toml("evidence.toml")
    return Tolerances(
        weight_gain_g=float(t["weight_gain"]["tolerance_g"]),
        max_loss_g=float(t["analysis_loss"]["max_loss_g"]),
        max_loss_fraction=float(t["analysis_loss"]["max_loss_fraction"]),
        rock_min_g=float(t["rock_mass"]["min_g"]),
        rock_max_g=float(t["rock_mass"]["max_g"]),
    )


def derive(records: pd.DataFrame) -> None:
    """Add analysis_loss_g, mean_rock_g and pure_mass_g in place."""
    before = records["weight_before_g"].to_numpy(dtype=float)
    after = records["weight_after_g"].to_numpy(dtype=float)
    rocks = records["rock_count"].to_numpy(dtype=float)
    records["analysis_loss_g"] = before - after
    with np.errstate(divide="ignore", invalid="ignore"):
        records["mean_rock_g"] = np.where(rocks > 0, before / rocks, np.nan)
    records["pure_mass_g"] = before * records["purity"].to_numpy(dtype=float)


def flag(records: pd.DataFrame, as_of: dt.date) -> np.ndarray:
    """Evidence-flag tokens per row, sorted and ';'-joined. Needs :func:`derive` first."""
    t = tolerances()
    n = len(records)
    before = records["weight_before_g"].to_numpy(dtype=float)
    after = records["weight_after_g"].to_numpy(dtype=float)
    loss = before - after
    mean_rock = records["mean_rock_g"].to_numpy(dtype=float)
    seized = records["seized_on"].to_numpy(dtype="datetime64[D]")
    analysed = records["analysed_on"].to_numpy(dtype="datetime64[D]")
    today = np.datetime64(as_of, "D")
    with np.errstate(invalid="ignore"):
        checks = {
            "analysis_loss": loss > np.maximum(t.max_loss_g, t.max_loss_fraction * before),
            "future_date": (seized > today) | (analysed > today),
            "rock_mass": (mean_rock < t.rock_min_g) | (mean_rock > t.rock_max_g),
            "seized_after_analysed": seized > analysed,
            "unknown_vocabulary": records["unknown_vocabulary"].to_numpy(dtype=object) != "",
            "weight_gain": after > before + t.weight_gain_g,
        }
    out = np.full(n, "", dtype=object)
    for token in sorted(checks):  # sorted tokens -> sorted lists
        hit = np.asarray(checks[token], dtype=bool)
        out[hit] = np.where(out[hit] == "", token, out[hit] + ";" + token)
    return out
