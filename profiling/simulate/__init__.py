"""A synthetic cocaine supply network with known truth, written as a laboratory export.

``simulate`` builds the market (areas, import batches, middle-market lots, street dealers,
seizures, exhibits and what the laboratory records of them); ``write`` puts it on disk:

- ``export.csv`` (or ``export.xlsx``): one row per exhibit, canonical headers, or lab-like
  headers with ``mapping.toml`` when ``messy``;
- ``truth.csv``: one row per export data row, with the true normalised values and what a correct
  ingest must do with the row (accepted with its evidence flags, quarantined with its reason,
  duplicate);
- ``scenario.json``: the injected market truth (price trends, operation, level mix, counts,
  parameters);
- ``areas.csv``: areas, their force and adjacent areas.

The same seed and options give the same bytes in every file. Every parameter lives in
``reference_data/simulate.toml`` with its source.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.simulate import export, laboratory, market
from profiling.simulate.export import Rows
from profiling.simulate.laboratory import Exhibits
from profiling.simulate.market import (
    ActiveOperation,
    Calendar,
    Geography,
    Network,
    Operation,
    OperationError,
    Seizures,
)
from profiling.simulate.parameters import ParameterError, load_parameters, read_toml
from profiling.simulate.vocabulary import Vocabulary, load_vocabulary

__all__ = [
    "Operation",
    "OperationError",
    "ParameterError",
    "Simulation",
    "simulate",
    "write",
]

SCENARIO_FORMAT = "profile-simulate/1"
# Fixed timestamp of the XLSX package (document properties and zip entries): same bytes each run.
_XLSX_TIME = dt.datetime(2024, 1, 1, 0, 0, 0)

# Random streams, one per stage, so that changing one stage leaves the others' draws alone.
_STREAM_GEOGRAPHY, _STREAM_NETWORK, _STREAM_SEIZURES, _STREAM_EXHIBITS, _STREAM_ROWS = range(5)


@dataclass
class Simulation:
    """A simulated market and the export a laboratory would write of it."""

    seed: int
    messy: bool
    params: dict
    vocabulary: Vocabulary
    calendar: Calendar
    geography: Geography
    operation: ActiveOperation | None
    network: Network
    seizures: Seizures
    exhibits: Exhibits
    rows: Rows
    scenario: dict

    @property
    def n_rows(self) -> int:
        """Data rows of the export (exhibits plus duplicated rows)."""
        return len(self.rows.exhibit)

    def _context(self) -> export._Context:
        return export._Context(
            self.vocabulary,
            self.geography,
            self.calendar,
            self.network,
            self.seizures,
            self.exhibits,
            self.rows,
            self.params,
            self.messy,
            self.seed,
        )

    def truth(self) -> pd.DataFrame:
        """truth.csv as a table of strings (one row per export data row)."""
        ctx = self._context()
        parts = [export.truth_columns(ctx, lo, hi) for lo, hi in export.chunks(self.n_rows)]
        data = {
            name: [v for part in parts for v in part[j]]
            for j, name in enumerate(export.TRUTH_COLUMNS)
        }
        return pd.DataFrame(data, dtype=str)

    def profiles(self) -> pd.DataFrame:
        """One row per exhibit: its references, its chain (batch, lot, dealer) and the peak areas
        as written (0 = below the limit of quantification), columns ``p_<compound>``."""
        ex, sz = self.exhibits, self.seizures
        s = ex.seizure
        frame = pd.DataFrame(
            {
                "exhibit_id": self.rows.exhibit_ids,
                "seizure": s,
                "batch": sz.batch[s],
                "lot": sz.lot[s],
                "dealer": sz.dealer[s],
                "level": sz.level[s],
                "drug": np.array(list(self.vocabulary.drugs))[ex.drug],
            }
        )
        for j, compound in enumerate(self.network.compounds):
            frame[f"p_{compound}"] = ex.profile[:, j]
        return frame


def simulate(
    n_exhibits: int,
    seed: int,
    *,
    messy: bool = False,
    operation: Operation | str | None = None,
    params: dict | Path | str | None = None,
    forces: int | None = None,
) -> Simulation:
    """Simulate ``n_exhibits`` exhibits of a cocaine supply network.

    ``operation`` is an :class:`Operation` or ``"AREA:DATE:WEEKS"``; ``params`` overrides
    ``reference_data/simulate.toml`` (a dict or a TOML file of the same layout); ``forces``
    overrides ``geography.forces``. Raises ``ParameterError`` or ``OperationError``.
    """
    if n_exhibits < 1:
        raise ParameterError("the number of exhibits must be at least 1")
    vocabulary = load_vocabulary()
    overrides = params
    if isinstance(overrides, str):
        overrides = Path(overrides)
    if forces is not None:
        if forces < 1:
            raise ParameterError("the number of forces must be at least 1")
        base = (
            overrides
            if isinstance(overrides, dict)
            else ({} if overrides is None else read_toml(overrides))
        )
        overrides = {**base, "geography": {**base.get("geography", {}), "forces": forces}}
    p = load_parameters(overrides, vocabulary)
    if isinstance(operation, str):
        operation = Operation.parse(operation)

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([int(seed), stream]))

    calendar = Calendar.of(p["period"]["start"], p["period"]["end"])
    geography = market.build_geography(p, rng(_STREAM_GEOGRAPHY))
    op = market.activate_operation(operation, geography, calendar)
    network = market.build_network(
        p, vocabulary, geography, calendar, n_exhibits, rng(_STREAM_NETWORK)
    )
    seizures = market.make_seizures(
        p, vocabulary, geography, calendar, network, op, n_exhibits, rng(_STREAM_SEIZURES)
    )
    exhibits = laboratory.make_exhibits(
        p, vocabulary, geography, calendar, network, seizures, op, rng(_STREAM_EXHIBITS)
    )
    rows = export.plan_rows(
        p,
        vocabulary,
        geography,
        calendar,
        network,
        seizures,
        exhibits,
        messy,
        rng(_STREAM_ROWS),
    )
    scenario = _scenario(
        seed, n_exhibits, messy, p, calendar, geography, op, network, seizures, exhibits, rows
    )
    return Simulation(
        int(seed),
        messy,
        p,
        vocabulary,
        calendar,
        geography,
        op,
        network,
        seizures,
        exhibits,
        rows,
        scenario,
    )


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _scenario(
    seed, n_exhibits, messy, p, calendar, geography, op, network, seizures, exhibits, rows
) -> dict:
    day0 = calendar.start
    areas = geography.areas
    trends = {
        a: {
            # Prices move with the area's index; purity and seizure rates carry no trend.
            "price_per_g": float(t),
            "price_per_pure_g": float(t),
            "purity": 0.0,
            "n_seizures": 0.0,
        }
        for a, t in zip(areas, geography.trend.tolist())
    }
    operation = None
    if op is not None:
        opp = p["operation"]
        operation = {
            "area": areas[op.area],
            "start": (day0 + dt.timedelta(days=op.first_day)).isoformat(),
            "end": (day0 + dt.timedelta(days=op.last_day)).isoformat(),
            "weeks": op.spec.weeks,
            "price_effect": opp["price_effect"],
            "seizure_rate_effect": opp["seizure_rate_effect"],
            "displaced_areas": sorted(areas[a] for a in op.displaced),
            "displacement_effect": opp["displacement_effect"],
            "levels": list(opp["levels"]),
        }
    by_level = {str(k): int(np.count_nonzero(seizures.level == k)) for k in market.LEVELS}
    ex_level = seizures.level[exhibits.seizure]
    ex_by_level = {str(k): int(np.count_nonzero(ex_level == k)) for k in market.LEVELS}
    return {
        "format": SCENARIO_FORMAT,
        "seed": int(seed),
        "n_exhibits": int(n_exhibits),
        "messy": bool(messy),
        "period": {
            "start": p["period"]["start"].isoformat(),
            "end": p["period"]["end"].isoformat(),
        },
        "forces": geography.forces,
        "areas": [
            {
                "area": a,
                "force": geography.forces[geography.area_force[i]],
                "port": bool(geography.port[i]),
                "adjacent": sorted(areas[b] for b in geography.adjacent[i]),
            }
            for i, a in enumerate(areas)
        ],
        "price_trend_per_month": {a: float(t) for a, t in zip(areas, geography.trend.tolist())},
        "trends": trends,
        "operation": operation,
        "level_mix": {str(k): p["levels"][str(k)]["share"] for k in market.LEVELS},
        "counts": {
            "batches": len(network.batch_first),
            "lots": len(network.lot_batch),
            "dealers": len(network.dealer_lot),
            "seizures": len(seizures.level),
            "exhibits": int(n_exhibits),
            "seizures_by_level": by_level,
            "exhibits_by_level": ex_by_level,
            "rows": rows.counts["rows"],
            "expected": {k: v for k, v in rows.counts.items() if k != "rows"},
        },
        "parameters": _jsonable(p),
    }


# --------------------------------------------------------------------------- files

_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _xlsx_cell(text: str):
    """A bare number becomes a numeric cell, as a spreadsheet export would hold it."""
    if _NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    return text


def write(
    sim: Simulation,
    out_dir: Path | str,
    xlsx: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Path]:
    """Write the simulation's files into ``out_dir`` (created if missing); returns them by name.

    ``progress(n)`` is called as export rows are written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    advance = progress or (lambda n: None)
    ctx = sim._context()
    files: dict[str, Path] = {}
    if xlsx:
        files["export"] = _write_xlsx(ctx, sim, out / "export.xlsx", advance)
    else:
        path = out / "export.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(sim.rows.headers)
            memo: dict = {}
            for lo, hi in export.chunks(sim.n_rows):
                writer.writerows(zip(*export.export_columns(ctx, lo, hi, memo)))
                advance(hi - lo)
        files["export"] = path
        if (out / "export.xlsx").exists():
            (out / "export.xlsx").unlink()  # one export per directory
    path = out / "truth.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(export.TRUTH_COLUMNS)
        for lo, hi in export.chunks(sim.n_rows):
            writer.writerows(zip(*export.truth_columns(ctx, lo, hi)))
    files["truth"] = path
    mapping = out / "mapping.toml"
    if sim.rows.mapping is not None:
        mapping.write_text(export.mapping_toml(sim.rows.mapping), encoding="utf-8")
        files["mapping"] = mapping
    elif mapping.exists():
        mapping.unlink()  # a stale mapping from an earlier messy run would mislead
    path = out / "scenario.json"
    path.write_text(json.dumps(sim.scenario, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    files["scenario"] = path
    path = out / "areas.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["area", "force", "adjacent", "port"])
        for entry in sim.scenario["areas"]:
            writer.writerow(
                [
                    entry["area"],
                    entry["force"],
                    ";".join(entry["adjacent"]),
                    "true" if entry["port"] else "false",
                ]
            )
    files["areas"] = path
    return files


def _write_xlsx(ctx, sim: Simulation, path: Path, advance) -> Path:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    wb.properties.created = _XLSX_TIME
    wb.properties.modified = _XLSX_TIME
    wb.properties.creator = "profile simulate"
    ws = wb.create_sheet("export")
    ws.append(sim.rows.headers)
    memo: dict = {}
    for lo, hi in export.chunks(sim.n_rows):
        for row in zip(*export.export_columns(ctx, lo, hi, memo)):
            ws.append([_xlsx_cell(v) for v in row])
        advance(hi - lo)
    raw = io.BytesIO()
    wb.save(raw)
    # openpyxl stamps the save time into the zip entries and into docProps/core.xml's
    # "modified": rewrite both with the fixed time.
    stamp = _XLSX_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    fixed = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rb"\g<1>" + stamp + rb"\g<2>",
                    data,
                )
            entry = zipfile.ZipInfo(info.filename, date_time=_XLSX_TIME.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = info.external_attr
            dst.writestr(entry, data)
    path.write_bytes(fixed.getvalue())
    if (path.parent / "export.csv").exists():
        (path.parent / "export.csv").unlink()  # one export per directory
    return path
