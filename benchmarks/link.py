"""`profile link` at force scale: 20,000 new exhibits against a 200,000-exhibit library (issue 5).

    python benchmarks/link.py [--library 200000] [--new 20000] [--compounds 24]

The library is written straight through profiling.library (as ingest leaves it), with
batch-structured profiles (batches -> lots -> dealers, lognormal within-batch noise) from
``profiling.simulate`` when it is installed, else from the small generator below; the new
exhibits arrive as a CSV export. Timed: the whole run_link (ingest of the export, calibration,
new-vs-new and new-vs-library thresholded pairs, classes over the whole library, outputs).
Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.library import LibraryData, blank_records, write_library


def structured(n: int, d: int, seed: int):
    """(profiles, seizure ids, adulterants, packaging) with a batch/lot/dealer structure."""
    rng = np.random.default_rng(seed)
    n_batches = max(1, n // 40)
    signatures = rng.normal(0, 1.0, (n_batches, d))
    batch = rng.integers(0, n_batches, n)
    lot = batch * 4 + rng.integers(0, 4, n)
    dealer = lot * 3 + rng.integers(0, 3, n)
    seizure = np.repeat(np.arange(n // 2 + 1), 2)[:n]
    profiles = np.exp(signatures[batch] + rng.normal(0, 0.12, (n, d)) +
                      np.log(rng.uniform(500, 2000, (n, 1))))
    adulterants = np.array(["levamisole;phenacetin", "caffeine;lidocaine", "benzocaine",
                            "diltiazem;levamisole", "procaine"], dtype=object)[lot % 5]
    packaging = np.array(["clear;knotted;plastic_bag", "cling_film;white", "blue;heat_sealed;plastic_bag",
                          "foil", "knotted;paper_wrap"], dtype=object)[dealer % 5]
    return profiles, seizure, adulterants, packaging


def make_library(path: Path, n: int, d: int, seed: int) -> list[str]:
    profiles, seizure, adulterants, packaging = structured(n, d, seed)
    compounds = [f"c{k:02d}" for k in range(d)]
    cols = blank_records(n)
    cols["seized_on"] = np.datetime64("2025-01-01")
    cols["exhibit_id"] = np.array([f"L{i:07d}" for i in range(n)], dtype=object)
    cols["seizure_id"] = np.array([f"S{s:07d}" for s in seizure], dtype=object)
    cols["drug"] = np.full(n, "crack_cocaine", dtype=object)
    cols["weight_before_g"] = np.full(n, 0.2)
    cols["purity"] = np.full(n, 0.35)
    cols["adulterants"] = adulterants
    cols["packaging"] = packaging
    cols["import_id"] = np.ones(n, dtype=np.int64)
    prov = pd.DataFrame([{"import_id": 1, "source": "bench", "sha256": "", "imported_at": "",
                          "read": n, "accepted": n, "quarantined": 0, "duplicates": 0,
                          "conflicts": 0, "superseded": 0}])
    write_library(path, LibraryData(cols, profiles, compounds,
                                    pd.DataFrame(index=range(n)), prov))
    return compounds


def make_export(path: Path, n: int, d: int, compounds: list[str], seed: int) -> None:
    profiles, seizure, adulterants, packaging = structured(n, d, seed)
    frame = pd.DataFrame({"exhibit_id": [f"N{i:07d}" for i in range(n)],
                          "seizure_id": [f"T{s:07d}" for s in seizure],
                          "drug": "crack", "weight_before_g": "0.2 g", "purity": "35%",
                          "adulterants": [a.replace(";", ", ") for a in adulterants],
                          "packaging": [p.replace(";", " ").replace("_", " ") for p in packaging],
                          "seized_on": "2025-02-01"})
    for k, c in enumerate(compounds):
        frame[f"p_{c}"] = np.round(profiles[:, k], 3)
    frame.to_csv(path, index=False)


def simulated(lib: Path, export: Path, n_library: int, n_new: int, seed: int) -> None:
    """The simulator's network: the first n_library rows of one simulation become the library
    (ingested), the last n_new rows arrive as the new export."""
    from profiling.ingest import ingest
    from profiling.simulate import simulate, write

    files = write(simulate(n_library + n_new, seed), lib.parent / "sim")
    frame = pd.read_csv(files["export"], dtype=str, keep_default_na=False)
    frame.iloc[:n_library].to_csv(lib.parent / "library.csv", index=False)
    frame.iloc[n_library:].to_csv(export, index=False)
    ingest([lib.parent / "library.csv"], lib, quarantine=lib.parent / "q.csv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=int, default=200_000)
    ap.add_argument("--new", type=int, default=20_000)
    ap.add_argument("--compounds", type=int, default=24)
    ap.add_argument("--generator", choices=["simulator", "dense"], default="simulator",
                    help="simulator: profile simulate's network; dense: very large chemical classes")
    args = ap.parse_args()
    from profiling.link import run_link

    with tempfile.TemporaryDirectory() as tmp:
        lib, export = Path(tmp) / "lib.h5", Path(tmp) / "new.csv"
        t0 = time.perf_counter()
        if args.generator == "simulator":
            simulated(lib, export, args.library, args.new, seed=1)
        else:
            compounds = make_library(lib, args.library, args.compounds, seed=1)
            make_export(export, args.new, args.compounds, compounds, seed=1)   # same batches
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = run_link([export], lib, Path(tmp) / "out", date="2026-01-01")
        elapsed = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        s = result.summary
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"library {args.library:,} + new {args.new:,} exhibits ({args.generator}; data "
              f"made and library ingested in {t_make:.1f} s)")
        print(f"profile link: {elapsed:.1f} s total, peak RSS {peak_mb:,.0f} MB; "
              f"{s['links']:,} links reported ({s['links_in_library']:,} in the library), "
              f"{s['classes_with_links']:,} classes with links "
              f"({s['settings']['pretreatment']} + {s['settings']['metric']}, threshold "
              f"{s['settings']['threshold']:.4g})")
        print("timings:", s["timings_s"])


if __name__ == "__main__":
    main()
