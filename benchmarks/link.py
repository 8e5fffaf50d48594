"""`profile link` at force scale: 20,000 new exhibits against a 200,000-exhibit library (issue 5).

    python benchmarks/link.py [--library 200000] [--new 20000] [--compounds 24]

The library is the simulator's network (default: the first rows of one simulation are
ingested as the library, the last ``--new`` rows arrive as a CSV export) or, with
``--generator dense``, the small batch generator below. Two phases, each in a fresh process so
that each peak resident memory is its own: (1) the library linked with itself as `profile link
--library` does before writing its files; (2) `run_link` of the new export against it, with
every output file. Printed: time, peak RSS, links and classes of each phase.
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
from _child import in_child

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


def _self_link(lib: Path, queue) -> None:
    """What `profile link --library LIB` stores (calibration, links, classes), without its
    output files: the library as a force that links every import would hold it."""
    from profiling.library import read_library, replace_groups, write_lock
    from profiling.link import _link_core, _Stored

    t0 = time.perf_counter()
    with write_lock(lib):
        data = read_library(lib)
        result, _, writers, change = _link_core(
            data, np.ones(data.n, dtype=bool), _Stored.read(lib), lib, metric=None,
            pretreatment=None, threshold=None, fpr=None, threads=None, date="2026-01-01",
            progress=None, scheduler=None, block_rows=None)
        replace_groups(lib, writers, change=change)
    queue.put({"seconds": time.perf_counter() - t0, "summary": result.summary,
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def _new_link(lib: Path, export: Path, out: Path, queue) -> None:
    from profiling.link import run_link

    t0 = time.perf_counter()
    result = run_link([export], lib, out, date="2026-02-01")
    queue.put({"seconds": time.perf_counter() - t0, "summary": result.summary,
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=int, default=200_000)
    ap.add_argument("--new", type=int, default=20_000)
    ap.add_argument("--compounds", type=int, default=24)
    ap.add_argument("--generator", choices=["simulator", "dense"], default="simulator",
                    help="simulator: profile simulate's network; dense: very large chemical classes")
    ap.add_argument("--tmp", default=None, help="directory for the library and outputs")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        lib, export = Path(tmp) / "lib.h5", Path(tmp) / "new.csv"
        t0 = time.perf_counter()
        if args.generator == "simulator":
            simulated(lib, export, args.library, args.new, seed=1)
        else:
            compounds = make_library(lib, args.library, args.compounds, seed=1)
            make_export(export, args.new, args.compounds, compounds, seed=1)   # same batches
        t_make = time.perf_counter() - t0
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
        print(f"library {args.library:,} + new {args.new:,} exhibits ({args.generator}; data "
              f"made and library ingested in {t_make:.1f} s)", flush=True)
        first = in_child(_self_link, lib)
        s = first["summary"]
        print(f"1. library linked with itself (calibration, links, classes stored; no output "
              f"files): {first['seconds']:.1f} s, peak RSS {first['peak_mb']:,.0f} MB; "
              f"{s['links_in_library']:,} links, {s['classes_with_links']:,} classes with links, "
              f"largest {s['largest_class']:,} ({s['settings']['pretreatment']} + "
              f"{s['settings']['metric']}, threshold {s['settings']['threshold']:.4g}); "
              f"timings {s['timings_s']}", flush=True)
        second = in_child(_new_link, lib, export, Path(tmp) / "out")
        s = second["summary"]
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "out").iterdir()}
        print(f"2. profile link new.csv --library lib.h5 --out out: {second['seconds']:.1f} s, "
              f"peak RSS {second['peak_mb']:,.0f} MB; {s['exhibits_new']:,} new exhibits, "
              f"{s['links']:,} links reported (touching new exhibits), {s['links_in_library']:,} "
              f"in the library, {s['classes_with_links']:,} classes with links, largest "
              f"{s['largest_class']:,}; timings {s['timings_s']}")
        print(f"   library file {lib.stat().st_size / 1e6:,.0f} MB; outputs "
              + ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in sorted(sizes.items())))
        print(f"   load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
