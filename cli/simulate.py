"""``profile simulate``: a synthetic lab export of a cocaine supply network, with its truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from profiling_cli.app import app
from profiling_cli.console import emit_json, fail, progress, say


@app.command("simulate")
def simulate_command(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write into (created if missing).")
    ],
    exhibits: Annotated[int, typer.Option("--exhibits", min=1, help="Number of exhibits.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same bytes.")] = 0,
    messy: Annotated[
        bool,
        typer.Option(
            "--messy",
            help="Write what real exports look like: lab headers with mapping.toml, mixed units "
            "and formats, broken rows, evidence-flag rows, duplicated rows.",
        ),
    ] = False,
    xlsx: Annotated[
        bool, typer.Option("--xlsx", help="Write export.xlsx, not export.csv.")
    ] = False,
    operation: Annotated[
        str | None,
        typer.Option(
            "--operation",
            metavar="AREA:DATE:WEEKS",
            help="Enforcement operation: area name, ISO start date, length in weeks.",
        ),
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option("--params", help="TOML file overriding reference_data/simulate.toml."),
    ] = None,
    forces: Annotated[
        int | None, typer.Option("--forces", min=1, help="Number of police forces.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress and no summary.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the counts as JSON on stdout.")
    ] = False,
) -> None:
    """Simulate a supply network: export, truth.csv, scenario.json, areas.csv (and mapping.toml)."""
    from profiling.simulate import OperationError, ParameterError, simulate, write

    try:
        with progress("Simulating", None, quiet or json_out):
            sim = simulate(
                exhibits, seed, messy=messy, operation=operation, params=params, forces=forces
            )
        with progress("Writing", sim.n_rows, quiet or json_out) as advance:
            files = write(sim, out, xlsx=xlsx, progress=advance)
    except (ParameterError, OperationError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write to {out}: {exc.strerror or exc}") from None
    counts = sim.scenario["counts"]
    expected = counts["expected"]
    if json_out:
        emit_json(
            {
                "out": str(out),
                "files": {name: path.name for name, path in files.items()},
                "seed": seed,
                "messy": messy,
                "counts": counts,
            }
        )
        return
    say(
        f"Simulated {counts['exhibits']} exhibits from {counts['seizures']} seizures "
        f"({counts['batches']} import batches, {counts['lots']} lots, {counts['dealers']} "
        f"dealers) into {out}: " + ", ".join(p.name for p in files.values()),
        quiet,
    )
    say(
        f"Export rows {counts['rows']} = accepted {expected['accepted']} + quarantined "
        f"{expected['quarantined']} + duplicates {expected['duplicates']} (see truth.csv).",
        quiet,
    )
