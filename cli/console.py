"""Presentation shared by every command: progress bars, JSON output, turning known errors into
one sentence and an exit code. The library never prints; it reports progress through a callback.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

Advance = Callable[[int], None]


def _interactive(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@contextlib.contextmanager
def progress(description: str, total: int | None, quiet: bool = False) -> Iterator[Advance]:
    """A progress bar on stderr when it is a terminal and not --quiet; otherwise silent.

    Yields ``advance(n)``, to be handed to library functions as their progress callback.
    """
    if not _interactive(quiet):
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=_stderr_console(),
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def emit_json(payload: Any) -> None:
    """Machine-readable output on stdout: sorted keys, so reruns print the same bytes."""
    typer.echo(json.dumps(payload, sort_keys=True, indent=2, default=str))


def say(message: str, quiet: bool = False) -> None:
    """Human-readable line on stdout unless --quiet."""
    if not quiet:
        typer.echo(message)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear sentence on stderr and return the Exit to raise."""
    typer.echo(f"profile: error: {message}", err=True)
    return typer.Exit(code)


DEFAULT_KEY = "~/.config/profiling/redaction.key"

# The redaction options, defined once for every command that writes shareable outputs.
Redact = Annotated[bool, typer.Option(
    "--redact", help="Shareable outputs: keyed pseudonyms, no personal or source fields, "
                     "redaction.json.")]
RedactionKey = Annotated[str | None, typer.Option(
    "--key", help=f"Redaction key file (default {DEFAULT_KEY}; created if absent).")]
CoarsenArea = Annotated[str | None, typer.Option(
    "--coarsen-area", help="With --redact: force, or a CSV area,coarse_area.")]


def make_redactor(redact: bool, key: str | None, coarsen_area: str | None):
    """The Redactor for --redact (None without it); says when a new key file was created."""
    if not redact:
        if key or coarsen_area:
            raise fail("--key and --coarsen-area only apply with --redact.")
        return None
    import os

    from profiling.errors import ProfilingError
    from profiling.redact import redactor

    path = os.path.expanduser(key or DEFAULT_KEY)
    try:
        red, created = redactor(path, coarsen_area)
    except ProfilingError as err:
        raise fail(str(err)) from None
    if created:
        typer.echo(f"profile: created redaction key {path} (owner-only). Keep it: the same key "
                   "gives the same pseudonyms next time.", err=True)
    return red


def map_note(gis: dict) -> str:
    """The end of a command's 'wrote ...' line: its GeoJSON maps, or why there are none."""
    if gis["files"]:
        return "; maps " + ", ".join(gis["files"])
    return "; no map: no exhibit could be placed (see gis in the summary)"


def as_of_date(text: str | None):
    """The --as-of option as a date (None: today), or one clear error."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        raise fail(f"--as-of {text!r} is not an ISO date (YYYY-MM-DD).") from None
