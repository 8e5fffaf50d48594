"""The whole `profile link` against scipy pdist + threshold on the same library (issue 14).

    python benchmarks/link_vs_pdist.py [--exhibits 20000] [--repeat 3] [--tmp DIR]

The simulator's library of ``--exhibits`` (seed 1, ingested), then, ``--repeat`` times each:

- ``profile link --library COPY --out O --metric canberra --pretreatment sum_std --threshold T``
  as the user types it (its own process: start, imports, reading the library, classes, links,
  layers, every output, the library's commit), on a fresh copy of the library each time;
- what a user would otherwise run: read the library, N+S, ``scipy.spatial.distance.pdist(X,
  "canberra")`` and the pairs within the same threshold (its own process too).

T is the Canberra distance that one pair in 1,000 of random pairs is within. Prints the median
wall times and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from link_daily import command, machine

SCIPY = """
import sys, numpy as np
from scipy.spatial.distance import pdist
from profiling.library import read_library
from profiling import similarity as sim
lib = read_library(sys.argv[1])
X = np.nan_to_num(lib.profiles.reshape(lib.n, -1))
X = X[(X > 0).sum(axis=1) >= 3]
Xp = sim.pretreat(X, "sum_std")
d = pdist(Xp, "canberra")
kept = np.flatnonzero(d <= float(sys.argv[2]))    # condensed positions of the pairs kept
print(len(kept))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exhibits", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tmp", type=Path)
    args = ap.parse_args()
    import numpy as np

    from profiling import similarity as sim
    from profiling.ingest import ingest
    from profiling.library import read_library
    from profiling.simulate import simulate, write

    profile = Path(sys.executable).with_name("profile")
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
        scratch = Path(scratch)
        files = write(simulate(args.exhibits, 1), scratch / "sim")
        lib = scratch / "lib.h5"
        ingest([files["export"]], lib, quarantine=scratch / "q.csv")
        data = read_library(lib)
        X = np.nan_to_num(data.profiles.reshape(data.n, -1))
        Xp = sim.pretreat(X[(X > 0).sum(axis=1) >= 3], "sum_std")
        t = float(np.quantile(sim.sample_pairs(Xp, "canberra", 200_000, seed=1).score, 0.001))
        ours, theirs = [], []
        for k in range(args.repeat):
            copy = scratch / f"copy{k}.h5"
            shutil.copyfile(lib, copy)
            ours.append(command([profile, "link", "--library", copy, "--out", scratch / f"o{k}",
                                 "--metric", "canberra", "--pretreatment", "sum_std",
                                 "--threshold", t, "--quiet"])["wall_s"])
            theirs.append(command([sys.executable, "-c", SCIPY, lib, t])["wall_s"])
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"| {args.exhibits:,} | {a:.1f} ({min(ours):.1f}) | {b:.1f} ({min(theirs):.1f}) | "
              f"x{b / a:.2f} | {t:.4g} | load {os.getloadavg()[0]:.2f} |")


if __name__ == "__main__":
    main()
