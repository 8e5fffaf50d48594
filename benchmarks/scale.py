"""National scale (issue 8): link a 1,000,000-exhibit library in-process and on a Dask LocalCluster.

    python benchmarks/scale.py [--exhibits 1000000] [--workers 2] [--block-rows 20000]
                               [--pairs-per-link 5000]

The library is the simulator's network (``profiling.simulate``, d = 24 compounds), written
straight through ``profiling.library``. Each run is what ``profile link --library LIB`` does
before it writes its output files (edges, chemical classes, the deeper layers, the library
write), in a fresh child process so that its peak resident memory is its own:

1. in-process (2 threads);
2. ``--scheduler tcp://…`` of a LocalCluster of ``--workers`` single-threaded worker processes
   started here; the workers' peak memory is asked from them after the run.

The threshold is given, not calibrated: at 10^6 exhibits the 1 % false-positive calibration of
the force-sized benchmark keeps about 6e8 links, so the threshold is the distance quantile at
which one pair in ``--pairs-per-link`` links (from 200,000 sampled pairs).

Projection: a block-pair task is timed alone (one thread, as on a Dask worker) for a
within-block and a between-block pair; the cost of a 10^7-exhibit library on 100 workers is
(number of block pairs) x (mean task seconds) / 100, at the same link density.
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


def make_library(path: Path, n: int, seed: int) -> None:
    from profiling.simulate import simulate

    sim = simulate(n, seed)
    prof = sim.profiles()
    cols = [c for c in prof.columns if c.startswith("p_")]
    records = blank_records(len(prof))
    records["exhibit_id"] = prof["exhibit_id"].to_numpy(dtype=object)
    records["seizure_id"] = np.array([f"S{s:08d}" for s in prof["seizure"].to_numpy()], dtype=object)
    records["drug"] = np.full(len(prof), "crack_cocaine", dtype=object)
    records["seized_on"] = np.datetime64("2025-01-01")
    records["import_id"] = np.ones(len(prof), dtype=np.int64)
    provenance = pd.DataFrame([{"import_id": 1, "source": "bench", "sha256": "", "imported_at": "",
                                "read": len(prof), "accepted": len(prof), "quarantined": 0,
                                "duplicates": 0, "conflicts": 0, "superseded": 0}])
    X = np.clip(prof[cols].to_numpy(dtype=float), 0, None)
    write_library(path, LibraryData(records, X, [c[2:] for c in cols],
                                    pd.DataFrame(index=range(len(prof))), provenance))


def pick_threshold(path: Path, pairs_per_link: int) -> tuple[float, str, str]:
    from profiling import similarity as sim
    from profiling.library import read_library
    from profiling.link import DEFAULT_METRIC, DEFAULT_PRETREATMENT, _pretreated, linkable

    p = linkable(read_library(path))
    Xp = _pretreated(p, DEFAULT_PRETREATMENT, None)
    e = sim.sample_pairs(Xp, DEFAULT_METRIC, 200_000, seed=1)
    return float(np.quantile(e.score, 1 / pairs_per_link)), DEFAULT_PRETREATMENT, DEFAULT_METRIC


def _run(lib: str, settings: dict, scheduler, block_rows, queue) -> None:
    from profiling.library import read_library, replace_groups, write_lock
    from profiling.link import _link_core, _Stored

    t0 = time.perf_counter()
    with write_lock(Path(lib)):
        data = read_library(lib)
        t_read = time.perf_counter() - t0
        result, _, writers, change = _link_core(
            data, np.ones(data.n, dtype=bool), _Stored(), Path(lib), fpr=None, threads=None,
            date="2026-01-01", progress=None, scheduler=scheduler, block_rows=block_rows,
            **settings)
        t_link = time.perf_counter() - t0
        replace_groups(Path(lib), writers, change=change)
    queue.put({"seconds": time.perf_counter() - t0, "read_s": t_read, "link_s": t_link,
               "summary": result.summary,
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def block_cost(lib: Path, settings: dict, block_rows: int) -> dict:
    """Seconds of one within-block and one between-block task, one thread, as a worker runs them."""
    from profiling.library import read_library
    from profiling.link import _reference_std, linkable
    from profiling.scale import block_pair_task

    data = read_library(lib)
    p = linkable(data)
    cols = np.array([data.compounds.index(c) for c in p.compounds], dtype=np.int64)
    ref = _reference_std(p, settings["pretreatment"])
    rng = np.random.default_rng(0)
    pos = np.sort(rng.choice(len(p.rows), 2 * block_rows, replace=False))
    a, b = pos[:block_rows], pos[block_rows:]
    out = {}
    for name, args in (("within", (p.rows[a], a, None, None)), ("between", (p.rows[a], a, p.rows[b], b))):
        best = np.inf
        for _ in range(2):
            t0 = time.perf_counter()
            i, _, _ = block_pair_task(str(lib), *args, cols, settings["pretreatment"], ref,
                                      settings["metric"], settings["threshold"])
            best = min(best, time.perf_counter() - t0)
        out[name] = (best, len(i))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exhibits", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--block-rows", type=int, default=20_000)
    ap.add_argument("--pairs-per-link", type=int, default=5_000)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        lib = Path(tmp) / "national.h5"
        t0 = time.perf_counter()
        make_library(lib, args.exhibits, seed=1)
        threshold, pre, metric = pick_threshold(lib, args.pairs_per_link)
        settings = {"threshold": threshold, "pretreatment": pre, "metric": metric}
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
        print(f"library: {args.exhibits:,} simulated exhibits, d = 24, written in "
              f"{time.perf_counter() - t0:.1f} s ({lib.stat().st_size / 1e6:,.0f} MB); {pre} + "
              f"{metric}, threshold {threshold:.5g} (1 pair in {args.pairs_per_link:,})", flush=True)

        runs = {}
        runs["in-process (2 threads)"] = (in_child(_run, str(lib), settings, None, None), None)
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=50)
        client = Client(cluster)
        try:
            res = in_child(_run, str(lib), settings, cluster.scheduler_address, args.block_rows)
            worker_peak = client.run(
                lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        finally:
            client.close()
            cluster.close()
        runs[f"LocalCluster ({args.workers} workers x 1 thread, blocks of {args.block_rows:,})"] = (
            res, worker_peak)
        for name, (r, workers) in runs.items():
            s = r["summary"]
            print(f"{name}: {r['seconds']:.1f} s total (read {r['read_s']:.1f}, link "
                  f"{r['link_s'] - r['read_s']:.1f} of which edges {s['timings_s']['edges']:.1f} "
                  f"and classes {s['timings_s']['classes']:.1f}, library write "
                  f"{r['seconds'] - r['link_s']:.1f}); peak RSS main process "
                  f"{r['peak_mb']:,.0f} MB"
                  + (f", workers {', '.join(f'{v:,.0f}' for v in workers.values())} MB" if workers else "")
                  + f"; {s['links_in_library']:,} links kept, {s['classes_with_links']:,} classes "
                  f"with links, largest {s['largest_class']:,}", flush=True)
        a, b = (r["summary"]["links_in_library"] for r, _ in runs.values())
        print(f"same number of links in both runs: {a == b}")

        cost = block_cost(lib, settings, args.block_rows)
        mean = (cost["within"][0] + cost["between"][0] * 2) / 3    # most pairs are between blocks
        print(f"one task, 1 thread: within-block {cost['within'][0]:.2f} s ({cost['within'][1]:,} "
              f"links), between-block {cost['between'][0]:.2f} s ({cost['between'][1]:,} links)")
        for n, workers in ((args.exhibits, args.workers), (10_000_000, 100)):
            blocks = -(-n // args.block_rows)
            pairs = blocks * (blocks + 1) // 2
            cost_s = pairs * cost["between"][0] + blocks * (cost["within"][0] - cost["between"][0])
            print(f"projection {n:,} exhibits: {blocks:,} blocks, {pairs:,} block-pair tasks x "
                  f"~{mean:.2f} s / {workers} workers = {cost_s / workers / 60:,.1f} min of edge "
                  f"computation; links kept at this density about "
                  f"{(cost['between'][1] / args.block_rows ** 2) * n * n / 2:,.3g}")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
