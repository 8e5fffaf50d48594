"""`profile ingest`, `profile show`, `profile export`: the library's own commands."""

from __future__ import annotations

from pathlib import Path

import typer
from profiling_cli.app import app
from profiling_cli.console import (
    CoarsenArea,
    Redact,
    RedactionKey,
    as_of_date,
    emit_json,
    fail,
    make_redactor,
    progress,
    say,
)

from profiling.errors import ProfilingError


@app.command()
def ingest(
    exports: list[Path] = typer.Argument(..., help="Lab export files (CSV or XLSX)."),
    library: Path = typer.Option(..., "--library", "-l", help="Profile library (HDF5); created if absent."),
    mapping: Path | None = typer.Option(None, "--mapping", "-m", help="Mapping TOML (SPEC format)."),
    quarantine: Path | None = typer.Option(None, "--quarantine", "-q",
                                           help="Quarantine CSV (default: beside the library)."),
    supersede: bool = typer.Option(False, "--supersede",
                                   help="Replace exhibits that return with different content (old versions kept in history)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Day to judge future dates against (ISO; default today)."),
    json_out: bool = typer.Option(False, "--json", help="Print the reconciliation as JSON."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar, no summary."),
) -> None:
    """Read lab exports, normalise them and append them to the profile library."""
    from profiling.ingest import ingest as run

    day = as_of_date(as_of)
    try:
        with progress("ingest", total=len(exports) + 1, quiet=quiet or json_out) as advance:
            report = run(exports, library, mapping=mapping, quarantine=quarantine,
                         supersede=supersede, as_of=day, progress=advance)
    except ProfilingError as err:
        raise fail(str(err)) from None
    if json_out:
        emit_json(report.as_json())
        return
    for f in report.files:
        say(f"{f.source}: read {f.read} = accepted {f.accepted} + quarantined {f.quarantined} "
            f"+ duplicates {f.duplicates}" + (f" ({f.conflicts} conflicts)" if f.conflicts else "")
            + (f"; {f.blank_lines} blank lines ignored" if f.blank_lines else ""), quiet)
    say(f"total: read {report.read} = accepted {report.accepted} + quarantined "
        f"{report.quarantined} + duplicates {report.duplicates}"
        + (f"; superseded {report.superseded}" if report.superseded else ""), quiet)
    if report.flags:
        say("evidence flags: " + ", ".join(f"{k} {v}" for k, v in sorted(report.flags.items())), quiet)
    if report.quarantine_path and report.quarantined:
        say(f"quarantined rows written to {report.quarantine_path}", quiet)
    say(f"library {library}: import {report.import_id}", quiet)


@app.command()
def show(
    library: Path = typer.Argument(..., help="Profile library (HDF5)."),
    audit: bool = typer.Option(False, "--audit", help="Print the audit log instead."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarise a library: exhibits by drug, area and quarter; evidence flags; imports."""
    from profiling.library import read_audit, read_library
    from profiling.summary import summarise

    try:
        if audit:
            read_library(library)          # refuses a damaged library before printing anything
            log = read_audit(library)
            if json_out:
                emit_json(log.to_dict(orient="records"))
            else:
                for row in log.itertuples(index=False):
                    say(f"{row.at}  {row.user}  {row.change}\n    command: {row.command}"
                        + (f"\n    inputs: {row.inputs}" if row.inputs else ""))
            return
        summary = summarise(read_library(library))
    except ProfilingError as err:
        raise fail(str(err)) from None
    if json_out:
        emit_json(summary)
        return
    say(f"{library}: {summary['exhibits']} exhibits, {summary['seizures']} seizures, "
        f"{summary['imports']} imports" + (f", dates {summary['date_range'][0]} to "
                                           f"{summary['date_range'][1]}" if summary["date_range"] else ""))
    for title, key in (("drug", "by_drug"), ("area", "by_area"), ("quarter", "by_quarter"),
                       ("flag", "flags")):
        if summary[key]:
            say(f"by {title}: " + ", ".join(f"{k} {v}" for k, v in summary[key].items()))
    say(f"profile compounds ({len(summary['compounds'])}): " + ", ".join(summary["compounds"]))


@app.command()
def export(
    library: Path = typer.Argument(..., help="Profile library (HDF5)."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV file to write."),
    redact: Redact = False,
    key: RedactionKey = None,
    coarsen_area: CoarsenArea = None,
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Write every exhibit's canonical record as CSV (p_<compound>, attr_<name> columns)."""
    from profiling.export import write_records_csv
    from profiling.library import read_library

    red = make_redactor(redact, key, coarsen_area)
    try:
        n = write_records_csv(read_library(library), out, red)
    except ProfilingError as err:
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"cannot write {out}: {err.strerror}.") from None
    say(f"wrote {n} exhibits to {out}", quiet)


@app.command()
def verify(
    library: Path = typer.Argument(..., help="Profile library (HDF5)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Check checksums, schema, and counts against provenance; report the first problem."""
    from profiling.library import verify_library

    problems = verify_library(library)
    if json_out:
        emit_json({"ok": not problems, "problems": problems})
    if problems:
        if not json_out:
            typer.echo(f"profile: error: {library}: {problems[0]}", err=True)
            for extra in problems[1:]:
                typer.echo(f"  also: {extra}", err=True)
        raise typer.Exit(2)
    if not json_out:
        say(f"{library}: sound (every dataset passes its checksum; counts match provenance)")
