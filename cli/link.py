"""`profile calibrate`, `profile link`, `profile query`: chemical linkage."""

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
    map_note,
    progress,
    say,
)

from profiling.errors import ProfilingError


@app.command()
def calibrate(
    source: Path = typer.Argument(..., help="Profile library (.h5) or a lab export."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for calibration.json/.html."),
    rule: str = typer.Option("R1", "--rule", help="Population rule: R1 or R2."),
    linked_same: list[str] = typer.Option([], "--linked-same", help="Linked pairs must agree on COL."),
    unlinked_differ: list[str] = typer.Option([], "--unlinked-differ",
                                              help="Unlinked pairs must differ on COL."),
    fpr: float = typer.Option(0.01, "--fpr", help="False-positive rate for the threshold."),
    lr: str = typer.Option("logistic", "--lr", help="LR calibration: logistic or kde."),
    max_unlinked: int = typer.Option(200_000, "--max-unlinked", help="Sample of unlinked pairs."),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    workers: int | None = typer.Option(None, "--workers", help="Threads (default: all cores)."),
    json_out: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """ROC/AUC of every pretreatment x metric, threshold at a false-positive rate, LRs, layers."""
    from profiling.calibrate import PopulationRule
    from profiling.link import _public_calibration, run_calibrate

    population = PopulationRule(rule, tuple(linked_same), tuple(unlinked_differ), max_unlinked)
    try:
        with progress("calibrate", total=None, quiet=quiet or json_out) as adv:
            cal = run_calibrate(source, out, population, fpr, lr, mapping=mapping, threads=workers,
                                progress=adv)
    except ProfilingError as err:
        raise fail(str(err)) from None
    if json_out:
        emit_json(_public_calibration(cal))
        return
    c = cal.chosen
    say(f"best: {c['pretreatment']} + {c['metric']}, AUC {c['auc']:.4f} "
        f"({cal.population['n_linked']} linked, {cal.population['n_unlinked']} unlinked pairs)", quiet)
    say(f"threshold {c['threshold']:.6g} at false positives {c['fpr']:.3%} "
        f"(false negatives {c['fnr']:.2%}); Cllr {c['cllr']:.3f}, Cllr-min {c['cllr_min']:.3f}", quiet)
    say(f"a search against this library's {c['library_exhibits']:,} exhibits at that threshold "
        f"expects {c['adventitious_per_search']:,.1f} adventitious links per searched exhibit; "
        "profile link sets its own threshold so that it expects 0.01 (--per-search)", quiet)
    for name, layer in cal.layers.items():
        if layer.get("auc") is not None:
            say(f"layer {name}: AUC {layer['auc']:.3f}, threshold {layer['threshold']:.4g}", quiet)
    say(f"wrote {out / 'calibration.json'} and {out / 'calibration.html'}", quiet)


SCHEDULER = typer.Option(None, "--scheduler",
                         help="Dask: tcp://HOST:PORT or local:N (default: in-process).")
BLOCK_ROWS = typer.Option(None, "--block-rows", help="Rows per Dask block (memory per task).")


@app.command()
def link(
    exports: list[Path] = typer.Argument(None, help="New lab exports (optional with --library)."),
    library: Path | None = typer.Option(None, "--library", "-l", help="Profile library (HDF5)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for links.csv, classes.csv, …"),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Per-pair distance threshold (default: set from the library's "
        "size so that a search expects --per-search adventitious links)."),
    per_search: float = typer.Option(
        0.01, "--per-search", help="Adventitious links a searched exhibit may expect."),
    fpr: float | None = typer.Option(None, "--fpr", help="Recalibrate at this false-positive rate."),
    top: int = typer.Option(10, "--top", help="Strongest links listed per new exhibit."),
    all_pairs: bool = typer.Option(False, "--all-pairs",
                                   help="links.csv lists every chemical link of the new exhibits."),
    class_cut: float | None = typer.Option(
        None, "--class-cut", help="Class cut, a Ward merge cost (two exhibits cost their cosine "
        "distance; default: read from the library by the silhouette)."),
    rebuild: bool = typer.Option(False, "--rebuild",
                                 help="Build the library's classes anew (events say what moved)."),
    metric: str | None = typer.Option(None, "--metric"),
    pretreatment: str | None = typer.Option(None, "--pretreatment"),
    workers: int | None = typer.Option(None, "--workers", help="Threads (default: all cores)."),
    scheduler: str | None = SCHEDULER,
    block_rows: int | None = BLOCK_ROWS,
    as_of: str | None = typer.Option(None, "--as-of", help="Day for future-date checks."),
    redact: Redact = False,
    key: RedactionKey = None,
    coarsen_area: CoarsenArea = None,
    json_out: bool = typer.Option(False, "--json", help="Print summary.json."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Link new exhibits with each other and with the library; classes; the linked-seizure report."""
    from profiling.link import run_link

    red = make_redactor(redact, key, coarsen_area)
    try:
        with progress("link", total=None, quiet=quiet or json_out) as adv:
            result = run_link(list(exports or []), library, out, mapping=mapping, metric=metric,
                              pretreatment=pretreatment, threshold=threshold, fpr=fpr,
                              per_search=per_search, class_cut=class_cut, top=top,
                              all_pairs=all_pairs, rebuild=rebuild,
                              threads=workers, as_of=as_of_date(as_of), progress=adv,
                              scheduler=scheduler, block_rows=block_rows, redactor=red)
    except ProfilingError as err:
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"cannot write to {out}: {err.strerror}.") from None
    s = result.summary
    if json_out:
        emit_json(s)
        return
    if s.get("ingest"):
        i = s["ingest"]
        say(f"ingest: read {i['read']} = accepted {i['accepted']} + quarantined "
            f"{i['quarantined']} + duplicates {i['duplicates']}", quiet)
    st = s["settings"]
    search = st["search"]
    say(f"{s['exhibits_considered']:,} exhibits with profiles ({s['exhibits_new']:,} new); "
        f"threshold {st['threshold']:.4g} ({st['metric']} after {st['pretreatment']}): a search "
        f"of {search['library_exhibits']:,} exhibits expects {search['per_search']:g} "
        f"adventitious links per searched exhibit"
        + (" (threshold given: that figure is for the search-aware one, "
           f"{search['threshold']:.4g})" if st["threshold_source"] == "given" else ""), quiet)
    events = s["class_events"]
    say(f"classes: {s['classes']:,} ({s['classes_with_links']:,} of 2+ exhibits, largest "
        f"{s['largest_class']:,}); {s['classes_touched']:,} touched by new exhibits; new "
        f"{events.get('new', 0)}, merged {events.get('merge', 0)}, split {events.get('split', 0)}; "
        f"{s['moved_exhibits']:,} existing exhibits changed class ({s['moved_share']:.2%})", quiet)
    say(f"{s['links']:,} links reported (top {st['top']} per new exhibit); "
        f"{s['same_cut_links']:,} same cut, {s['same_distribution_links']:,} same distribution",
        quiet)
    say(f"wrote links.csv, classes.csv, class_table.csv, summary.json, report.html, "
        f"links.graphml, i2_*.csv to {out}" + map_note(s["gis"]), quiet)


@app.command()
def query(
    target: str = typer.Argument(..., help="An exhibit id of the library, or an export file."),
    library: Path = typer.Option(..., "--library", "-l"),
    top: int = typer.Option(10, "--top", help="How many library exhibits per query."),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    workers: int | None = typer.Option(None, "--workers"),
    scheduler: str | None = SCHEDULER,
    block_rows: int | None = BLOCK_ROWS,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The library exhibits most similar to an exhibit, with scores and likelihood ratios."""
    from profiling.link import run_query

    try:
        frame = run_query(library, target, top, mapping=mapping, threads=workers,
                          scheduler=scheduler, block_rows=block_rows)
    except ProfilingError as err:
        raise fail(str(err)) from None
    if json_out:
        emit_json(frame.to_dict(orient="records"))
        return
    typer.echo(frame.to_string(index=False))
