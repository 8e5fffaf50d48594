"""National scale on Dask (issues 8 and 14): a day's export searched on a LocalCluster.

    python benchmarks/scale.py [--exhibits 1000000] [--workers 2] [--block-rows 20000]
                               [--out /work/bench] [--tmp DIR]

The library and the day's export are ``library_scale.make_files``'s (simulator, seed 1). The
library is linked once in-process (its first link builds the classes); then the day's export is
linked twice, each as the command a user types, in its own process:

1. in-process;
2. ``--scheduler local:N --block-rows B``: the search of the new exhibits against the library
   runs block by block on N single-threaded worker processes; the client keeps the exhibits and
   the classes.

Printed: wall s and the client's peak RSS (VmHWM) of each, whether links.csv and classes.csv
are the same bytes; and the projection to 10^7
exhibits from the cost of one block task timed alone on one thread (B library rows against the
day's queries): (10^7 / B) tasks x task seconds / workers, and the client's memory from the
measured bytes per exhibit. What the projection leaves out is printed with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from library_scale import AS_OF, make_files
from link_daily import command, machine


def task_seconds(lib: Path, day: Path, block_rows: int, tmp: Path) -> float:
    from profiling.link.calibration import load_calibration

    cal = load_calibration(lib)
    pre, metric = cal.chosen["pretreatment"], cal.chosen["metric"]
    """One block_topk_task alone, one thread: B library rows against the day's queries."""
    import numpy as np

    from profiling.ingest import ingest
    from profiling.library import read_library
    from profiling.link.calibration import _pretreated, _reference_std
    from profiling.link.layers import linkable
    from profiling.scale import block_topk_task

    ingest([day], tmp / "day.h5", quarantine=tmp / "q.csv")
    data, q = read_library(lib), read_library(tmp / "day.h5")
    p, pq = linkable(data), linkable(q)
    ref = _reference_std(p, pre)
    Q = np.full((len(pq.rows), len(p.compounds)), np.nan)
    for k, c in enumerate(pq.compounds):
        if c in p.compounds:
            Q[:, p.compounds.index(c)] = pq.X[:, k]
    from profiling.link.layers import Profiles

    Qp = np.ascontiguousarray(_pretreated(Profiles(pq.rows, Q, p.compounds), pre, ref))
    cols = np.array([data.compounds.index(c) for c in p.compounds])
    rows = p.rows[:block_rows]
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        block_topk_task(str(lib), rows, np.arange(len(rows)), cols, pre, ref, metric, Qp, 31)
        best.append(time.perf_counter() - t0)
    return min(best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exhibits", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--block-rows", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=Path("/work/bench"))
    ap.add_argument("--tmp", type=Path)
    args = ap.parse_args()
    profile = Path(sys.executable).with_name("profile")
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
        scratch = Path(scratch)
        files = make_files(args.out, args.exhibits, scratch)
        base = scratch / "base.h5"
        shutil.copyfile(files["lib"], base)
        command([profile, "link", "--library", base, "--out", scratch / "first", "--quiet"])
        runs = {}
        for name, extra in (("in-process", []),
                            (f"local:{args.workers}", ["--scheduler", f"local:{args.workers}",
                                                       "--block-rows", args.block_rows])):
            lib = scratch / f"{name.replace(':', '')}.h5"
            shutil.copyfile(base, lib)
            r = command([profile, "link", files["day"], "--library", lib, "--out",
                         scratch / name.replace(":", ""), "--as-of", AS_OF.isoformat(),
                         "--quiet", *extra])
            runs[name] = r
            print(f"| {name} | {r['wall_s']:.1f} | {r['peak_mb']:,.0f} |", flush=True)
        a, b = (scratch / "in-process", scratch / f"local{args.workers}")
        same = all((a / f).read_bytes() == (b / f).read_bytes() for f in ("links.csv",
                                                                          "classes.csv"))
        print(f"links.csv and classes.csv identical in-process and on Dask: {same}")
        t = task_seconds(base, files["day"], args.block_rows, scratch)
        tasks_1e7 = 10_000_000 // args.block_rows
        client_mb = runs["in-process"]["peak_mb"]
        per_exhibit = client_mb * 2**20 / args.exhibits
        print(f"one block task ({args.block_rows:,} rows x the day's queries, 1 thread): {t:.3f} s")
        for workers in (2, 100):
            print(f"projection 10^7 exhibits, {workers} workers: {tasks_1e7} tasks x {t:.3f} s "
                  f"/ {workers} = {tasks_1e7 * t / workers:.1f} s of search")
        print(f"client memory at 10^7 from {per_exhibit:,.0f} bytes per exhibit measured at "
              f"{args.exhibits:,}: {per_exhibit * 1e7 / 2**30:.1f} GiB (left out: reading the "
              "library's records on the client, which grows the same way, and the classes "
              "table of the touched classes)")
        print(f"# load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
