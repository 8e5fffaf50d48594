"""Market intelligence on a simulated library: levels, market, evaluate (issue 6).

    python benchmarks/market.py [--exhibits 200000] [--seed 11]

Simulates N exhibits with an operation (Elderby, 2025-06-02, 8 weeks), ingests the export into a
library, then times `run_levels` (checked against truth.csv), `run_market` (monthly, by area,
crack at street level) and `run_evaluate` (the operation's area with displacement), each
including its CSV/JSON/HTML outputs. Prints the accuracy and the operation's estimated effects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from profiling.ingest import ingest
from profiling.market.evaluate import run_evaluate
from profiling.market.levels import run_levels
from profiling.market.prices import run_market
from profiling.simulate import simulate, write

OPERATION = "Elderby:2025-06-02:8"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exhibits", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = write(simulate(args.exhibits, args.seed, operation=OPERATION), d / "sim")
        lib = d / "lib.h5"
        ingest([files["export"]], lib, quarantine=d / "q.csv", as_of=dt.date(2026, 6, 1))
        t = time.perf_counter()
        lv = run_levels(lib, d / "levels", known=str(files["truth"]))
        t_levels = time.perf_counter() - t
        t = time.perf_counter()
        run_market(lib, d / "market")
        t_market = time.perf_counter() - t
        op = json.loads(files["scenario"].read_text())["operation"]
        t = time.perf_counter()
        ev = run_evaluate(lib, d / "ev", op["area"], op["start"], op["end"],
                          adjacency=files["areas"]).evaluation
        t_evaluate = time.perf_counter() - t
    check = lv.summary["checks"]["default_model"]
    print(f"{args.exhibits} exhibits, {lv.summary['seizures']} seizures")
    print(f"levels   {t_levels:6.1f} s  right for {check['accuracy']:.1%} "
          + ", ".join(f"level {k} {r:.1%}" for k, r in check["recall"].items()))
    print(f"market   {t_market:6.1f} s")
    print(f"evaluate {t_evaluate:6.1f} s  " + "; ".join(
        f"{m} {e['estimate']:+.1%} ({e['lo']:+.1%} to {e['hi']:+.1%})"
        for m, e in ev["effects"].items() if e["estimate"] is not None))


if __name__ == "__main__":
    main()
