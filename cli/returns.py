"""`profile returns`: NCIS-style returns in batch."""

from __future__ import annotations

from pathlib import Path

import typer
from profiling_cli.app import app
from profiling_cli.console import (
    CoarsenArea,
    Redact,
    RedactionKey,
    emit_json,
    fail,
    make_redactor,
    progress,
    say,
)

from profiling.errors import ProfilingError


def _read_levels(path: Path) -> dict[str, str]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise fail(f"cannot read levels file {path}: {err}.") from None
    if not {"seizure_id", "level"} <= set(frame.columns):
        raise fail(f"levels file {path} needs columns seizure_id and level (as `profile levels` writes).")
    return dict(zip(frame["seizure_id"], frame["level"]))


@app.command()
def returns(
    library: Path = typer.Argument(..., help="Profile library (HDF5)."),
    start: str = typer.Option(..., "--from", help="First month, YYYY-MM."),
    end: str = typer.Option(..., "--to", help="Last month, YYYY-MM (inclusive)."),
    period: str = typer.Option("quarter", "--period", help="month | quarter | year (financial)."),
    by: str = typer.Option("force", "--by", help="force | area."),
    formats: str = typer.Option("csv", "--format", help="csv, xlsx or csv,xlsx."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the returns."),
    levels: Path | None = typer.Option(None, "--levels", help="levels.csv from `profile levels`."),
    annex: bool = typer.Option(False, "--annex", help="Also write the per-exhibit annex.csv."),
    redact: Redact = False,
    key: RedactionKey = None,
    coarsen_area: CoarsenArea = None,
    json_out: bool = typer.Option(False, "--json", help="Print the index as JSON."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Write one return per force and period, by drug and supply level, with an index."""
    from profiling.library import read_library
    from profiling.returns import build_returns, write_returns

    level_map = _read_levels(levels) if levels else None
    red = make_redactor(redact, key, coarsen_area)
    try:
        data = read_library(library)
        ret = build_returns(data, start, end, period, by, level_map)
        fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
        with progress("returns", total=len(ret.units) * len(ret.periods), quiet=quiet or json_out) as adv:
            index = write_returns(ret, out, fmts, annex=annex, redactor=red, progress=adv)
    except ProfilingError as err:
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"cannot write to {out}: {err.strerror}.") from None
    if json_out:
        emit_json({"files": index.to_dict(orient="records"),
                   "excluded_undated_exhibits": ret.excluded_undated})
        return
    say(f"wrote {len(index)} returns ({len(ret.units)} {by}s x {len(ret.periods)} periods) "
        f"to {out}; index.csv lists them with SHA-256", quiet)
    if ret.excluded_undated:
        say(f"{ret.excluded_undated} exhibits have no seizure date and are in no return", quiet)
