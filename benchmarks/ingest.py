"""Ingest throughput against pandas.read_csv on the same file, measured in one run.

    python benchmarks/ingest.py [--rows 200000] [--repeat 3]

Writes a lab-style export of N rows (units in the cells, day-first dates, percent purity,
adulterant and packaging text, 11 profile columns), then times, alternately:
  - pandas.read_csv(path)                 (what a user would otherwise start from), and
  - profiling.ingest.ingest([path], lib)  (read + map + normalise + check + HDF5 write),
and prints the best time of each and their ratio. Issue 2's target: ratio <= 3.
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

COMPOUNDS = ["tropacocaine", "norcocaine", "n_formylcocaine", "cis_cinnamoylcocaine",
             "trans_cinnamoylcocaine", "trimethoxycocaine", "benzoylecgonine",
             "ecgonine_methyl_ester", "anhydroecgonine_methyl_ester", "truxillines", "cuscohygrine"]


def make_export(path: Path, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    grams = np.round(rng.lognormal(-1.5, 1.5, n), 3) + 0.001
    unit = rng.integers(0, 3, n)
    weight = np.where(unit == 0, [f"{g:.3f}g" for g in grams],
                      np.where(unit == 1, [f"{g * 1000:.0f} mg" for g in grams], grams.astype(str)))
    after = np.round(grams * 0.97, 4)
    days = rng.integers(0, 730, n)
    seized = pd.Timestamp("2024-04-01") + pd.to_timedelta(days, "D")
    analysed = seized + pd.to_timedelta(rng.integers(3, 40, n), "D")
    purity = rng.uniform(5, 90, n).round(1)
    data = {
        "exhibit_id": [f"LAB-{i:07d}" for i in range(n)],
        "seizure_id": [f"OCC-{i // 3:07d}" for i in range(n)],
        "force": rng.choice(["Metropolitan", "West Midlands", "Merseyside"], n),
        "area": rng.choice([f"Area {k}" for k in range(30)], n),
        "seized_on": seized.strftime("%d/%m/%Y"),
        "analysed_on": analysed.strftime("%Y-%m-%d"),
        "drug": rng.choice(["Crack", "cocaine (base)", "Cocaine HCl", "heroin"], n),
        "seizure_type": rng.choice(["TP", "S&S", "Warrant", "Border Force"], n),
        "weight_before_g": weight,
        "weight_after_g": after,
        "rock_count": np.where(rng.random(n) < 0.5, [f"{k} rocks" for k in rng.integers(1, 9, n)], ""),
        "purity": np.where(rng.random(n) < 0.5, [f"{p}%" for p in purity], (purity / 100).round(3).astype(str)),
        "adulterants": rng.choice(["Lignocaine, benzocaine", "levamisole; phenacetin (5%)",
                                   "none detected", "Caffeine / Procaine", ""], n),
        "packaging": rng.choice(["Clear plastic bag, knotted", "white cling film tied",
                                 "blue heat-sealed bag", "foil"], n),
        "price_gbp": np.where(rng.random(n) < 0.3, rng.choice(["£10", "£20", "£12.50"], n), ""),
    }
    for c in COMPOUNDS:
        v = rng.lognormal(8, 2, n)
        data[f"p_{c}"] = np.where(rng.random(n) < 0.1, "<LOQ", np.char.mod("%.6g", v))
    pd.DataFrame(data).to_csv(path, index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from profiling.ingest import ingest

    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.csv"
        make_export(export, args.rows)
        size_mb = export.stat().st_size / 1e6
        t_pandas, t_ingest = [], []
        for r in range(args.repeat):
            t0 = time.perf_counter()
            frame = pd.read_csv(export)
            t_pandas.append(time.perf_counter() - t0)
            lib = Path(tmp) / f"lib{r}.h5"
            t0 = time.perf_counter()
            report = ingest([export], lib, quarantine=Path(tmp) / "q.csv")
            t_ingest.append(time.perf_counter() - t0)
            assert report.accepted == args.rows and report.reconciles, report.as_json()
            assert len(frame) == args.rows
            os.remove(lib)
        bp, bi = min(t_pandas), min(t_ingest)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, pandas {pd.__version__}")
        print(f"export: {args.rows} rows x {frame.shape[1]} columns, {size_mb:.1f} MB")
        print(f"pandas.read_csv         best of {args.repeat}: {bp:7.3f} s")
        print(f"profiling ingest (all)  best of {args.repeat}: {bi:7.3f} s  "
              f"({args.rows / bi:,.0f} rows/s)")
        print(f"ratio ingest / read_csv: {bi / bp:.2f}  (target <= 3.00)")


if __name__ == "__main__":
    main()
