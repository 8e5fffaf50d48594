"""Returns in batch from a large library: 2 years x 40 forces x monthly (issue 7).

    python benchmarks/returns.py [--exhibits 1000000] [--forces 40]

Builds a library of N exhibits (written straight through profiling.library, as an ingest would
leave it), then times read_library + build_returns + write_returns (CSV, monthly, 2024-04 to
2026-03) and, separately, the same with XLSX. Target: the CSV run under 60 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.library import (
    PROVENANCE_COLUMNS,
    LibraryData,
    blank_records,
    empty_frame,
    write_library,
)
from profiling.returns import build_returns, write_returns


def make_library(path: Path, n: int, forces: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    cols = blank_records(n)
    cols["exhibit_id"] = np.array([f"LAB{i:08d}" for i in range(n)], dtype=object)
    cols["seizure_id"] = np.array([f"OCC{i // 2:08d}" for i in range(n)], dtype=object)
    force_names = np.array([f"Force {k:02d}" for k in range(forces)], dtype=object)
    cols["force"] = force_names[(np.arange(n) // 2) % forces]
    cols["area"] = np.array([f"Area {k}" for k in range(200)], dtype=object)[rng.integers(0, 200, n)]
    days = rng.integers(0, 730, n // 2 + 1).repeat(2)[:n]
    cols["seized_on"] = (np.datetime64("2024-04-01") + days).astype("datetime64[s]")
    cols["drug"] = np.array(["crack_cocaine", "cocaine_hcl", "heroin"], dtype=object)[rng.integers(0, 3, n)]
    w = np.round(rng.lognormal(-1, 1.5, n), 3) + 0.001
    cols["weight_before_g"] = w
    cols["weight_after_g"] = np.round(w * 0.98, 4)
    cols["rock_count"] = np.where(cols["drug"] == "crack_cocaine", rng.integers(1, 6, n), -1)
    cols["purity"] = np.where(rng.random(n) < 0.9, rng.uniform(0.03, 0.85, n), np.nan)
    cols["price_gbp"] = np.where(rng.random(n) < 0.3, rng.choice([10.0, 20.0, 40.0], n), np.nan)
    cols["flags"] = np.where(rng.random(n) < 0.01, "weight_gain", "").astype(object)
    data = LibraryData(cols, np.zeros((n, 0)), [], pd.DataFrame(index=range(n)),
                       empty_frame(PROVENANCE_COLUMNS))
    write_library(path, data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exhibits", type=int, default=1_000_000)
    ap.add_argument("--forces", type=int, default=40)
    args = ap.parse_args()
    from profiling.library import read_library

    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib.h5"
        t0 = time.perf_counter()
        make_library(lib, args.exhibits, args.forces)
        t_make = time.perf_counter() - t0
        results = {}
        for fmt in ("csv", "xlsx"):
            t0 = time.perf_counter()
            data = read_library(lib)
            t_read = time.perf_counter() - t0
            ret = build_returns(data, "2024-04", "2026-03", "month")
            t_build = time.perf_counter() - t0 - t_read
            index = write_returns(ret, Path(tmp) / f"out_{fmt}", (fmt,))
            total = time.perf_counter() - t0
            results[fmt] = (t_read, t_build, total - t_read - t_build, total, len(index))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"library: {args.exhibits:,} exhibits, {args.forces} forces (built in {t_make:.1f} s, "
              f"{lib.stat().st_size / 1e6:.0f} MB)")
        for fmt, (r, b, w, t, files) in results.items():
            print(f"{fmt:5s}: {files} returns  read {r:5.1f} s  aggregate {b:5.1f} s  write {w:5.1f} s"
                  f"  total {t:5.1f} s  (target < 60 s)")


if __name__ == "__main__":
    main()
