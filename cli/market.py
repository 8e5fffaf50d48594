"""`profile levels`, `profile market`, `profile evaluate`: market intelligence."""

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
from profiling.market.outputs import jsonable


def _run(description: str, steps: int, quiet: bool, call):
    try:
        with progress(description, total=steps, quiet=quiet) as advance:
            return call(advance)
    except ProfilingError as err:
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"cannot read or write {err.filename or 'a file'}: {err.strerror}.") from None


@app.command()
def levels(
    source: Path = typer.Argument(..., help="Profile library (.h5) or a lab export."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for levels.csv/.json/.html."),
    fit_known: str | None = typer.Option(None, "--fit-known",
                                         help="Refit on known levels: a column of the data, or a "
                                              "CSV with seizure_id (or exhibit_id) and level."),
    known: str | None = typer.Option(None, "--known",
                                     help="Check against known levels (same forms), no refit."),
    mapping: Path | None = typer.Option(None, "--mapping", "-m", help="Mapping TOML for an export."),
    as_of: str | None = typer.Option(None, "--as-of", help="Day for future-date checks."),
    redact: Redact = False,
    key: RedactionKey = None,
    coarsen_area: CoarsenArea = None,
    json_out: bool = typer.Option(False, "--json", help="Print levels.json."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Supply level (1 street, 2 middle market, 3 import) of every seizure, with its reasons."""
    from profiling.market.levels import run_levels

    day = as_of_date(as_of)
    red = make_redactor(redact, key, coarsen_area)
    run = _run("levels", 3, quiet or json_out,
               lambda adv: run_levels(source, out, known=known, fit_known=fit_known,
                                      mapping=mapping, as_of=day, progress=adv,
                                      redactor=red))
    s = run.summary
    if json_out:
        emit_json(jsonable(s))
        return
    n = s["seizures"]
    say(f"{n} seizures: " + ", ".join(
        f"level {k} {v}" + (f" ({v / n:.1%})" if n else "") for k, v in s["by_level"].items())
        + f"; model {s['model']}" + ("; chemical classes used" if s["classes_used"] else ""), quiet)
    for name, c in s["checks"].items():
        if c and c.get("n"):
            per = ", ".join(f"level {k} {r:.1%} of {c['n_per_level'][k]}"
                            for k, r in c["recall"].items() if r is not None)
            say(f"{name.replace('_', ' ')}: right for {c['accuracy']:.1%} of {c['n']} known "
                f"seizures ({per})", quiet)
    say(f"wrote levels.csv, levels.json, levels.html to {out}"
        + ("; stored the levels in the library" if run.stored else ""), quiet)


@app.command()
def market(
    source: Path = typer.Argument(..., help="Profile library (.h5) or a lab export."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for market.csv, trends.csv, …"),
    by: str = typer.Option("area", "--by", help="area | force."),
    period: str = typer.Option("month", "--period", help="month | quarter (financial)."),
    drug: str = typer.Option("crack_cocaine", "--drug", help="Canonical drug, or all."),
    level: str = typer.Option("1", "--level", help="Supply level 1, 2, 3 or all."),
    start: str | None = typer.Option(None, "--from", help="First month, YYYY-MM."),
    end: str | None = typer.Option(None, "--to", help="Last month, YYYY-MM (inclusive)."),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    as_of: str | None = typer.Option(None, "--as-of"),
    redact: Redact = False,
    key: RedactionKey = None,
    coarsen_area: CoarsenArea = None,
    json_out: bool = typer.Option(False, "--json", help="Print market.json."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Price, purity and availability by area and period; trends; emerging-market warnings."""
    from profiling.market.prices import run_market

    day = as_of_date(as_of)
    red = make_redactor(redact, key, coarsen_area)
    run = _run("market", 4, quiet or json_out,
               lambda adv: run_market(source, out, by=by, period=period, drug=drug, level=level,
                                      first=start, last=end, mapping=mapping, as_of=day,
                                      progress=adv, redactor=red))
    s = run.summary
    if json_out:
        emit_json(jsonable(s))
        return
    h = s["hedonic"]
    say(f"{s['drug']}, {s['level']}: {s['seizures']} seizures, {s['priced']} priced purchases, "
        f"{len(s['units'])} {by}s x {len(s['periods'])} {period}s", quiet)
    if h["log_quantity"] is not None:
        say(f"hedonic: log price = a + {h['log_quantity']:.3f} log quantity + "
            f"{h['log_purity']:.3f} log purity + {by} + period (n {h['n']}, R2 {h['r2']:.3f})", quiet)
    t = run.trends[(run.trends["measure"] == "price_per_g") & run.trends["p_value"].notna()]
    for _, r in t.iterrows():
        say(f"{r['area']}: price per gram {r['slope_per_month']:+.2%} a month "
            f"({r['slope_lo']:+.2%} to {r['slope_hi']:+.2%}, p {r['p_value']:.3g}, n {r['n']})", quiet)
    for _, r in run.emerging.iterrows():
        say(f"EMERGING MARKET {r['area']}: {r['evidence']}", quiet)
    for w in s["warnings"]:
        say(f"warning: {w}", quiet)
    say(f"wrote market.csv, trends.csv, hedonic.json, emerging.csv, market.json, market.html "
        f"to {out}" + map_note(s["gis"]), quiet)


@app.command()
def evaluate(
    source: Path = typer.Argument(..., help="Profile library (.h5) or a lab export."),
    area: str = typer.Option(..., "--area", help="The operation's area."),
    start: str = typer.Option(..., "--start", help="First day of the operation (ISO)."),
    end: str | None = typer.Option(None, "--end", help="Last day (ISO; default: end of the data)."),
    compare: str | None = typer.Option(None, "--compare",
                                       help="Comparison areas, comma-separated (default: every "
                                            "area not adjacent to the target)."),
    adjacency: Path | None = typer.Option(None, "--adjacency",
                                          help="CSV area,adjacent (';'-joined); default "
                                               "reference_data/adjacency.csv."),
    drug: str = typer.Option("all", "--drug", help="Canonical drug, or all."),
    level: str = typer.Option("1", "--level", help="Supply level 1, 2, 3 or all."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for evaluation.json/.html."),
    mapping: Path | None = typer.Option(None, "--mapping", "-m"),
    as_of: str | None = typer.Option(None, "--as-of"),
    redact: Redact = False,
    key: RedactionKey = None,
    coarsen_area: CoarsenArea = None,
    json_out: bool = typer.Option(False, "--json", help="Print evaluation.json."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Before and after an operation in an area, against comparison areas; displacement."""
    from profiling.market.evaluate import run_evaluate

    day = as_of_date(as_of)
    areas = [a.strip() for a in compare.split(",") if a.strip()] if compare else None
    red = make_redactor(redact, key, coarsen_area)
    run = _run("evaluate", 4, quiet or json_out,
               lambda adv: run_evaluate(source, out, area, start, end, areas, adjacency,
                                        drug=drug, level=level, mapping=mapping, as_of=day,
                                        progress=adv, redactor=red))
    ev = run.evaluation
    if json_out:
        emit_json(jsonable(ev))
        return
    say(f"operation in {ev['area']} {ev['start']} to {ev['end']}; comparison: "
        f"{', '.join(ev['comparison']) or 'none'}", quiet)
    for name, effects in [(ev["area"], ev["effects"]), *ev["displacement"].items()]:
        for m, e in effects.items():
            if e["estimate"] is None:
                continue
            say(f"{name} {m}: {e['estimate']:+.1%} ({e['lo']:+.1%} to {e['hi']:+.1%}, "
                f"p {e['p_value']:.3g}; {e['n_target_before']} before, {e['n_target_during']} "
                f"during)", quiet)
    for w in ev["warnings"]:
        say(f"warning: {w}", quiet)
    say(f"wrote evaluation.json, weekly.csv, evaluation.html to {out}", quiet)
