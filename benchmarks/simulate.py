"""Time the simulator at national scale (issue 3: 1,000,000 exhibits in under two minutes).

    python benchmarks/simulate.py [--exhibits 1000000] [--seed 1] [--messy] [--out DIR]

Times the model (``simulate``) and the files (``write``: export.csv, truth.csv, scenario.json,
areas.csv) separately, in one process, and prints one Markdown table row for BENCHMARKS.md.
Without --out the files go to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from profiling.simulate import simulate, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exhibits", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--messy", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        start = time.perf_counter()
        sim = simulate(args.exhibits, args.seed, messy=args.messy)
        modelled = time.perf_counter()
        files = write(sim, out)
        written = time.perf_counter()
        size_mb = sum(p.stat().st_size for p in files.values()) / 1e6
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print("| exhibits | mode | simulate (s) | write (s) | total (s) | files (MB) | peak RSS (GB) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    print(
        f"| {args.exhibits:,} | {'messy' if args.messy else 'canonical'} "
        f"| {modelled - start:.1f} | {written - modelled:.1f} | {written - start:.1f} "
        f"| {size_mb:.0f} | {peak_gb:.1f} |"
    )


if __name__ == "__main__":
    main()
