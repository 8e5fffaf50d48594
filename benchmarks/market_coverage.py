"""Do the market statistics keep their promises over many simulator seeds? (issue 6)

    python benchmarks/market_coverage.py [--seeds 60] [--first-seed 1] [--exhibits 30000]
                                         [--jobs 1] [--csv FILE]

For every seed, two simulated libraries that share the geography and the supply network:

- **no operation**: `profile market` (monthly, by area, crack at street level, as the command
  runs by default). Each 95 % interval of trends.csv is checked against the simulator's truth:
  the area's injected price trend for ``price_per_g`` and ``price_per_pure_g`` (purity has no
  trend, so price per pure gram follows price), 0 for ``purity`` and ``n_seizures`` (the
  simulator injects no trend in either). Then `profile evaluate` in the operation's area at the
  operation's dates — a placebo: nothing happened — where any effect is a false positive.
- **with the operation** (Elderby, 2025-06-02, 8 weeks: price +25 %, street and middle-market
  seizure rate +50 %): `profile evaluate` in its area (default comparison areas, adjacency from
  the simulator) — detection of the price and seizure effects (p < 0.05 and the interval above
  0) and coverage of the true effect — and in control areas (untouched by the operation and not
  next to an area it touched, compared with untouched areas, as the acceptance test does) where
  any effect is a false positive.

"An effect" is p < 0.05 (nominal 5 %); the share of intervals that exclude 0 is printed too.
Prints coverage, false-positive rate and power with their counts; ``--csv`` keeps every row.
The tables are computed by the library functions behind the commands (`market`, `evaluate`),
without writing their HTML pages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.ingest import ingest
from profiling.market.evaluate import MEASURES as EVALUATE_MEASURES
from profiling.market.evaluate import evaluate, read_adjacency
from profiling.market.prices import market
from profiling.market.seizures import open_source
from profiling.simulate import simulate, write

OPERATION = "Elderby:2025-06-02:8"
TREND_MEASURES = ("price_per_g", "price_per_pure_g", "purity", "n_seizures")
ALPHA = 0.05


def _library(d: Path, n: int, seed: int, operation: str | None):
    files = write(simulate(n, seed, operation=operation), d / "sim")
    lib = d / "lib.h5"
    ingest([files["export"]], lib, quarantine=d / "q.csv", as_of=dt.date(2026, 6, 1))
    return open_source(lib), files, json.loads(files["scenario"].read_text())


def _effect_rows(seed: int, case: str, area: str, effects: dict, truth: dict) -> list[dict]:
    rows = []
    for m in EVALUATE_MEASURES:
        e = effects[m]
        if e["estimate"] is None:
            continue
        rows.append({"seed": seed, "kind": "evaluate", "case": case, "area": area,
                     "measure": m, "estimate": e["estimate"], "lo": e["lo"], "hi": e["hi"],
                     "p_value": e["p_value"], "truth": truth.get(m, 0.0)})
    return rows


def controls_of(adjacency: dict[str, set[str]], touched: set[str]) -> list[tuple[str, list[str]]]:
    """Control areas (not touched, not next to a touched area) and their comparison areas
    (not the control, not next to it, not touched)."""
    out = []
    for c in sorted(a for a in adjacency if a not in touched and not adjacency[a] & touched):
        compare = sorted(a for a in adjacency
                         if a != c and a not in adjacency[c] and a not in touched)
        out.append((c, compare))
    return out


def one_seed(seed: int, n: int) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        # --- no operation: trends, and a placebo operation
        src, files, scenario = _library(Path(tmp) / "null", n, seed, None)
        trends = market(src).trends
        injected = scenario["price_trend_per_month"]
        for _, t in trends[trends["area"] != "all"].iterrows():
            if t["measure"] not in TREND_MEASURES or not np.isfinite(t["slope_lo"]):
                continue
            truth = injected[t["area"]] if t["measure"].startswith("price") else 0.0
            rows.append({"seed": seed, "kind": "trend", "case": "no_operation",
                         "area": t["area"], "measure": t["measure"],
                         "estimate": t["slope_per_month"], "lo": t["slope_lo"],
                         "hi": t["slope_hi"], "p_value": t["p_value"], "truth": truth})
        area, start, weeks = OPERATION.split(":")
        end = (dt.date.fromisoformat(start) + dt.timedelta(weeks=int(weeks), days=-1)).isoformat()
        ev = evaluate(src, area, start, end, adjacency=files["areas"]).evaluation
        rows += _effect_rows(seed, "placebo_date", area, ev["effects"], {})
        # --- with the operation: its area and the control areas
        src, files, scenario = _library(Path(tmp) / "op", n, seed, OPERATION)
        op = scenario["operation"]
        ev = evaluate(src, op["area"], op["start"], op["end"], adjacency=files["areas"]).evaluation
        truth = {"price_per_g": op["price_effect"], "price_per_pure_g": op["price_effect"],
                 "n_seizures": op["seizure_rate_effect"], "purity": 0.0}
        rows += _effect_rows(seed, "operation", op["area"], ev["effects"], truth)
        adjacency = read_adjacency(files["areas"])
        for control, compare in controls_of(adjacency, {op["area"], *op["displaced_areas"]}):
            e = evaluate(src, control, op["start"], op["end"], compare=compare,
                         adjacency=files["areas"]).evaluation["effects"]
            rows += _effect_rows(seed, "control_area", control, e, {})
    return rows


def _rate(hit: pd.Series) -> str:
    return f"{hit.mean():6.1%} ({int(hit.sum())} of {len(hit)})"


def summarise(frame: pd.DataFrame) -> str:
    lines = []
    tr = frame[frame["kind"] == "trend"]
    if len(tr):
        covered = (tr["lo"] <= tr["truth"]) & (tr["truth"] <= tr["hi"])
        lines.append("trends (profile market, monthly): coverage of the true slope by the 95 % "
                     "interval")
        for m in TREND_MEASURES:
            k = tr["measure"] == m
            if k.any():
                width = float((tr.loc[k, "hi"] - tr.loc[k, "lo"]).median())
                lines.append(f"  {m:18s} {_rate(covered[k])}  median width {width:.4f}/month")
        lines.append(f"  {'all':18s} {_rate(covered)}")
        null = tr["measure"].isin(["purity", "n_seizures"])
        lines.append(f"  Mann-Kendall p < {ALPHA} where no trend was injected (purity, "
                     f"n_seizures): {_rate(tr.loc[null, 'p_value'] < ALPHA)}")
        price = tr["measure"] == "price_per_g"
        sig = price & (tr["p_value"] < ALPHA)
        right = sig & (np.sign(tr["estimate"]) == np.sign(tr["truth"]))
        lines.append(f"  price_per_g p < {ALPHA}: {_rate(sig[price])}; of those with the "
                     f"injected sign: {_rate(right[sig])}")
    ev = frame[frame["kind"] == "evaluate"]
    for case, title in (("placebo_date", "no operation (placebo dates in the operation's area)"),
                        ("control_area", "control areas (operation elsewhere)")):
        e = ev[ev["case"] == case]
        if not len(e):
            continue
        lines.append(f"evaluate, {title}: false positives at nominal {ALPHA:.0%}")
        for m in EVALUATE_MEASURES:
            k = e["measure"] == m
            if k.any():
                lines.append(f"  {m:18s} p<{ALPHA}: {_rate(e.loc[k, 'p_value'] < ALPHA)}   "
                             f"interval excludes 0: {_rate((e.loc[k, 'lo'] > 0) | (e.loc[k, 'hi'] < 0))}")
        lines.append(f"  {'all':18s} p<{ALPHA}: {_rate(e['p_value'] < ALPHA)}   interval "
                     f"excludes 0: {_rate((e['lo'] > 0) | (e['hi'] < 0))}")
    e = ev[ev["case"] == "operation"]
    if len(e):
        lines.append("evaluate, the operation's area: detection (p < 0.05 and interval above 0) "
                     "and coverage of the true effect")
        for m in EVALUATE_MEASURES:
            k = e["measure"] == m
            if not k.any():
                continue
            x = e[k]
            detected = (x["p_value"] < ALPHA) & (x["lo"] > 0)
            covered = (x["lo"] <= x["truth"]) & (x["truth"] <= x["hi"])
            truth = float(x["truth"].iloc[0])
            what = "power" if truth != 0 else "false positives (no effect on purity)"
            lines.append(f"  {m:18s} truth {truth:+.0%}: {what} {_rate(detected if truth else x['p_value'] < ALPHA)}"
                         f"   coverage {_rate(covered)}   median estimate {x['estimate'].median():+.1%}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=60, help="number of simulator seeds")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--exhibits", type=int, default=30_000, help="exhibits per library")
    ap.add_argument("--jobs", type=int, default=1, help="processes (one seed each)")
    ap.add_argument("--csv", type=Path, help="write every interval and test here")
    args = ap.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}), "
          f"{args.exhibits} exhibits per library, {args.jobs} process(es)", flush=True)
    t = time.perf_counter()
    rows: list[dict] = []
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for r in pool.map(one_seed, seeds, [args.exhibits] * len(seeds)):
                rows += r
    else:
        for s in seeds:
            rows += one_seed(s, args.exhibits)
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(summarise(frame))
    print(f"{time.perf_counter() - t:.0f} s, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
