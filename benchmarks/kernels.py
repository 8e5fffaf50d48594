"""Benchmark of the similarity kernels (issue 4) against scipy, scikit-learn and numpy-BLAS.

Run from the repository root after ``pip install -e .``:

    python benchmarks/kernels.py            # N = 20,000 profiles, d = 24; top-k 1,000 x 1,000,000
    python benchmarks/kernels.py --quick    # small sizes, to check that the script runs

Everything runs in one process, so every ratio compares timings taken minutes apart on the same
machine. Each timing is the best of a few repeats (``--repeats``), scipy and scikit-learn
included. What is measured:

- ours: ``pairs_within(X, metric, threshold)`` with all cores, thresholded output (edges only);
- scipy: ``pdist(X, metric)`` alone (the condensed N(N-1)/2 vector, single core); the threshold
  filter a user would still run afterwards is not counted, which favours scipy;
- scikit-learn: ``pairwise_distances(X, metric, n_jobs=-1)`` (the full N x N matrix);
- numpy-BLAS (Pearson/cosine): row-normalised Z, then for each block of rows
  ``1 - Z[a:b] @ Z[a:].T``, thresholded with ``np.nonzero``; the block size is the fastest of a
  few tried on this machine.

Squared cosine has no scipy/scikit-learn metric: its baselines are the cosine timings (the
transform 1 - (1 - d)^2 would cost them more). Jaccard and Dice run on bit-packed adulterant
sets; their baselines get the same sets as boolean vectors.

Threshold: for each metric, the 0.1 % quantile of the distances of 200,000 random pairs (drawn
with ``sample_pairs``), so that about 1 pair in 1,000 is an edge, like a realistic linkage
threshold that keeps a small fraction of candidate links.

Peak memory of a thresholded kernel: resident-set high-water mark (VmHWM, reset through
/proc/self/clear_refs) minus the resident set before the call, and the tracemalloc peak of the
same call; the larger of the two is reported and compared with pdist's N(N-1)/2 * 8 bytes.

Machine limits, as what the cores can do (CPU time of one core times the cores used, so other
processes sharing the machine do not lower them): divisions per second from
``profiling._native.limits.division_rate`` (an L1-resident element-wise division loop compiled
with the kernels' flags), and GEMM flop/s from a single-threaded 2048 x 2048 numpy (OpenBLAS)
matmul. The kernels' figures are wall-clock, so a loaded machine shows as a lower fraction.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from contextlib import contextmanager

import numpy as np
import scipy
import sklearn
from scipy.spatial.distance import cdist, pdist
from sklearn.metrics import pairwise_distances
from threadpoolctl import threadpool_limits

from profiling import similarity as sim
from profiling._native import buildinfo, limits

PROFILE_METRICS = ["pearson", "cosine", "squared_cosine", "euclidean", "manhattan", "canberra"]
SET_METRICS = ["jaccard", "dice"]
BLAS_METRICS = {"pearson", "cosine", "squared_cosine"}
# Targets of issue 4: ratio to pdist per (metric, precision), ratio to numpy-BLAS.
PDIST_TARGET = {
    ("canberra", "float64"): 3,
    ("canberra", "float32"): 8,
    ("manhattan", "float64"): 6,
    ("manhattan", "float32"): 6,
    ("euclidean", "float64"): 6,
    ("euclidean", "float32"): 6,
    ("pearson", "float64"): 10,
    ("pearson", "float32"): 10,
    ("cosine", "float64"): 10,
    ("cosine", "float32"): 10,
    ("jaccard", "bits"): 50,
}
BLAS_TARGET = 3
MEMORY_TARGET = 0.10  # fraction of pdist's output


# ------------------------------------------------------------------------------------------
# Measurement helpers
# ------------------------------------------------------------------------------------------


def best_of(repeats: int, fn, *args, **kwargs) -> tuple[float, object]:
    """Best wall-clock time of ``fn(*args, **kwargs)`` over ``repeats`` runs, and its result."""
    wall, _, out = timed(repeats, fn, *args, **kwargs)
    return wall, out


def timed(repeats: int, fn, *args, **kwargs) -> tuple[float, float, object]:
    """(best wall-clock seconds, process CPU seconds of that run, result) over ``repeats``."""
    best, cpu, out = np.inf, np.nan, None
    for _ in range(repeats):
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        wall, used = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best, cpu = wall, used
    return best, cpu, out


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


@contextmanager
def peak_memory(result: dict):
    """Bytes allocated at the peak of the block: max(RSS high-water increment, tracemalloc)."""
    gc.collect()
    rss_ok = True
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        before = _status("VmRSS")
    except OSError:
        rss_ok = False
    tracemalloc.start()
    try:
        yield
    finally:
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = _status("VmHWM") - before if rss_ok else 0
        result.update(rss=rss, traced=traced, peak=max(rss, traced))


def machine() -> dict:
    model = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "threads_used": sim.default_threads(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "build_portable": buildinfo.PORTABLE,
        "build_flags": buildinfo.FLAGS,
    }


def gemm_flops(dtype, cores: int, n: int = 2048) -> float:
    """GEMM flop/s of ``cores`` cores: one BLAS thread timed in its own CPU time, times cores
    (what the cores can do, not diminished by other processes sharing the machine)."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    best = np.inf
    with threadpool_limits(1, user_api="blas"):
        a @ b
        for _ in range(3):
            t0 = time.thread_time()
            a @ b
            best = min(best, time.thread_time() - t0)
    return cores * 2.0 * n**3 / best


# ------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------


def unit_rows(X: np.ndarray, centre: bool) -> np.ndarray:
    Xd = X.astype(np.float64)
    if centre:
        Xd = Xd - Xd.mean(axis=1, keepdims=True)
    return (Xd / np.linalg.norm(Xd, axis=1, keepdims=True)).astype(X.dtype)


def numpy_blas_pairs(Z: np.ndarray, threshold: float, square: bool, block: int):
    """Tiled numpy-BLAS linkage: blocks of rows against the rows after them, thresholded."""
    n = len(Z)
    out_i, out_j, out_s = [], [], []
    for a in range(0, n, block):
        b = min(n, a + block)
        S = Z[a:b] @ Z[a:].T
        D = 1.0 - S * S if square else 1.0 - S
        ii, jj = np.nonzero(D <= threshold)
        keep = jj > ii
        ii, jj = ii[keep], jj[keep]
        out_i.append(ii + a)
        out_j.append(jj + a)
        out_s.append(D[ii, jj])
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)


def best_block(Z: np.ndarray, threshold: float, blocks=(256, 512, 1024, 2048)) -> int:
    times = {}
    for blk in blocks:
        t0 = time.perf_counter()
        numpy_blas_pairs(Z, threshold, False, blk)
        times[blk] = time.perf_counter() - t0
    return min(times, key=times.get)


# ------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------


def make_data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    # Synthetic profiles: batches (shared mean composition) plus noise, pretreated N4R.
    n_batches = max(1, n // 20)
    centres = rng.gamma(1.5, 1.0, (n_batches, d))
    raw = centres[rng.integers(0, n_batches, n)] * rng.lognormal(0.0, 0.35, (n, d))
    X = sim.pretreat(raw, "sum_4root")
    # Adulterant sets: each of d adulterants present with probability 0.15.
    present = rng.random((n, d)) < 0.15
    return X, present


def thresholds(X, packed, n_sample: int) -> dict:
    out = {}
    for m in PROFILE_METRICS:
        s = sim.sample_pairs(X, m, n_sample, seed=1).score
        out[m] = float(np.nanquantile(s, 0.001))
    for m in SET_METRICS:
        s = sim.sample_pairs(packed, m, n_sample, seed=1).score
        out[m] = float(np.nanquantile(s, 0.001))
    return out


def run_pairs(args, info) -> list[dict]:
    X64, present = make_data(args.n, args.d)
    packed, _ = sim.pack_sets([np.flatnonzero(r) for r in present], vocabulary=range(args.d))
    n_pairs = args.n * (args.n - 1) // 2
    pdist_bytes = n_pairs * 8
    ts = thresholds(X64, packed, min(200_000, n_pairs))
    rows = []
    blas_block = {}
    pdist_cache: dict[tuple[str, str], float] = {}
    sk_cache: dict[tuple[str, str], float] = {}
    cases = [(m, dt) for m in PROFILE_METRICS for dt in ("float64", "float32")]
    cases += [(m, "bits") for m in SET_METRICS]
    for metric, prec in cases:
        m = sim.METRICS[metric]
        t = ts[metric]
        if prec == "bits":
            data, base_data = packed, present
        else:
            data = X64.astype(prec)
            base_data = data
        ours_t, ours_cpu, edges = timed(args.repeats, sim.pairs_within, data, metric, t)
        mem: dict = {}
        with peak_memory(mem):
            sim.pairs_within(data, metric, t)
        row = {
            "metric": metric,
            "precision": prec,
            "threshold": t,
            "edges": len(edges),
            "ours_s": ours_t,
            "ours_cpu_s": ours_cpu,
            "pairs_per_s": n_pairs / ours_t,
            "peak_bytes": mem["peak"],
            "peak_rss_bytes": mem["rss"],
            "peak_traced_bytes": mem["traced"],
            "pdist_bytes": pdist_bytes,
        }
        # scipy pdist (squared cosine: the cosine timing)
        key = (m.scipy_name, prec)
        if key not in pdist_cache:
            pdist_cache[key], ref = best_of(args.baseline_repeats, pdist, base_data, m.scipy_name)
            if metric != "squared_cosine":
                row["pdist_edges"] = int(np.count_nonzero(ref <= t))
            del ref
        row["pdist_s"] = pdist_cache[key]
        # scikit-learn pairwise_distances(n_jobs=-1)
        if key not in sk_cache:
            sk_cache[key], full = best_of(
                1, pairwise_distances, base_data, metric=m.scipy_name, n_jobs=-1
            )
            del full
        row["sklearn_s"] = sk_cache[key]
        # tiled numpy-BLAS
        if metric in BLAS_METRICS:
            Z = unit_rows(data, centre=metric == "pearson")
            if prec not in blas_block:
                blas_block[prec] = best_block(Z, t)
            row["blas_block"] = blas_block[prec]
            row["numpy_blas_s"], _ = best_of(
                args.baseline_repeats,
                numpy_blas_pairs,
                Z,
                t,
                metric == "squared_cosine",
                blas_block[prec],
            )
        rows.append(row)
        print_row(row, info)
    return rows


def run_topk(args, info) -> list[dict]:
    rng = np.random.default_rng(5)
    L, _ = make_data(args.library, args.d, seed=2)
    L = L.astype(np.float32)
    Q = L[rng.choice(len(L), args.queries, replace=False)] * rng.lognormal(
        0, 0.05, (args.queries, args.d)
    ).astype(np.float32)
    out = []
    for metric in args.topk_metrics:
        t, (idx, sc) = best_of(1, sim.topk, Q, L, metric, args.k)
        sub = rng.choice(len(Q), min(20, len(Q)), replace=False)
        D = cdist(Q[sub].astype(np.float64), L.astype(np.float64), sim.METRICS[metric].scipy_name)
        if metric == "squared_cosine":
            D = 1.0 - (1.0 - D) ** 2
        order = np.lexsort((np.broadcast_to(np.arange(len(L)), D.shape), D), axis=-1)[:, : args.k]
        want = np.take_along_axis(D, order, 1)
        score_ok = bool(np.allclose(sc[sub], want, rtol=1e-5, atol=1e-5))
        # indices equal wherever the reference is not within float32 rounding of a tie
        same = idx[sub] == order
        near_tie = np.abs(np.take_along_axis(D, idx[sub], 1) - want) < 1e-5
        index_ok = bool(np.all(same | near_tie))
        row = {
            "metric": metric,
            "queries": len(Q),
            "library": len(L),
            "k": args.k,
            "seconds": t,
            "pairs_per_s": len(Q) * len(L) / t,
            "checked_queries": len(sub),
            "scores_match": score_ok,
            "indices_match": index_ok,
            "exact_index_match_fraction": float(same.mean()),
        }
        out.append(row)
        print(
            f"top-k {metric:15s} {t:8.2f} s  {row['pairs_per_s']:.3g} pairs/s  "
            f"brute-force check on {len(sub)} queries: scores {score_ok}, indices {index_ok}",
            flush=True,
        )
    return out


def print_row(r: dict, info) -> None:
    def ratio(b):
        return f"{r[b] / r['ours_s']:6.1f}x" if b in r else "     -"

    print(
        f"{r['metric']:15s} {r['precision']:8s} ours {r['ours_s']:7.3f}s "
        f"({r['pairs_per_s']:.3g} pairs/s)  pdist {r['pdist_s']:7.2f}s {ratio('pdist_s')}  "
        f"sklearn {r['sklearn_s']:7.2f}s {ratio('sklearn_s')}  "
        + (
            f"numpy-BLAS {r['numpy_blas_s']:6.2f}s {ratio('numpy_blas_s')}  "
            if "numpy_blas_s" in r
            else ""
        )
        + f"edges {r['edges']}  peak {r['peak_bytes'] / 2**20:.1f} MiB "
        f"({100 * r['peak_bytes'] / r['pdist_bytes']:.2f}% of pdist)",
        flush=True,
    )


def summarise(rows, tops, lim, info) -> str:
    n_pairs = rows[0]["pdist_bytes"] // 8
    lines = [
        (
            "| metric | precision | ours s (CPU s) | pairs/s | pdist s | × pdist | sklearn s | "
            "× sklearn | numpy-BLAS s | × numpy-BLAS | edges | peak MiB (% of pdist) | target | met |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        x_pd = r["pdist_s"] / r["ours_s"]
        x_sk = r["sklearn_s"] / r["ours_s"]
        x_bl = r["numpy_blas_s"] / r["ours_s"] if "numpy_blas_s" in r else None
        mem_frac = r["peak_bytes"] / r["pdist_bytes"]
        target = PDIST_TARGET.get((r["metric"], r["precision"]))
        parts, met = [], mem_frac < MEMORY_TARGET
        if target:
            parts.append(f"≥{target}× pdist")
            met &= x_pd >= target
        if r["metric"] in ("pearson", "cosine"):
            parts.append(f"≥{BLAS_TARGET}× BLAS")
            met &= x_bl >= BLAS_TARGET
        parts.append("mem <10 %")
        blas = (
            f"{r['numpy_blas_s']:.2f} (block {r['blas_block']}) | {x_bl:.1f}"
            if x_bl is not None
            else "– | –"
        )
        lines.append(
            f"| {r['metric']} | {r['precision']} | {r['ours_s']:.3f} ({r['ours_cpu_s']:.2f}) | "
            f"{r['pairs_per_s']:.3g} | {r['pdist_s']:.2f} | {x_pd:.1f} | {r['sklearn_s']:.2f} | "
            f"{x_sk:.1f} | {blas} | {r['edges']} | "
            f"{r['peak_bytes'] / 2**20:.1f} ({100 * mem_frac:.2f} %) | {', '.join(parts)} | "
            f"{'yes' if met else '**no**'} |"
        )
    lines.append("")
    lines.append(
        "Fraction of the machine's limit (all cores). Canberra's work is counted as its "
        "N(N-1)/2 * d divisions, Pearson/cosine's as N(N-1)/2 * 2d flops. Both precisions run "
        "the float32 kernel (float64 as a filter whose candidates are re-scored in float64), and "
        "float32 Canberra replaces the division by a reciprocal estimate + Newton step, so each "
        "is shown against the float32 and the float64 limit; above 100 % means the kernel does "
        "that work without the divider."
    )
    lines.append("")
    lines.append("| kernel | achieved | float32 limit | fraction | float64 limit | fraction |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    d = info["d"]
    for r in rows:
        if r["metric"] == "canberra":
            rate = n_pairs * d / r["ours_s"]
            l32, l64 = lim["div_float32"], lim["div_float64"]
            lines.append(
                f"| canberra {r['precision']} | {rate:.3g} div/s | {l32:.3g} div/s | "
                f"{100 * rate / l32:.0f} % | {l64:.3g} div/s | {100 * rate / l64:.0f} % |"
            )
        if r["metric"] in BLAS_METRICS:
            rate = n_pairs * d * 2 / r["ours_s"]
            l32, l64 = lim["gemm_float32"], lim["gemm_float64"]
            lines.append(
                f"| {r['metric']} {r['precision']} | {rate / 1e9:.1f} GFLOP/s | "
                f"{l32 / 1e9:.1f} GFLOP/s | {100 * rate / l32:.0f} % | {l64 / 1e9:.1f} GFLOP/s | "
                f"{100 * rate / l64:.0f} % |"
            )
    lines.append("")
    for t in tops:
        lines.append(
            f"Top-k ({t['metric']}, float32, k = {t['k']}): {t['queries']:,} queries × "
            f"{t['library']:,} library profiles in {t['seconds']:.2f} s "
            f"({t['pairs_per_s']:.3g} pairs/s); brute-force numpy/scipy check on "
            f"{t['checked_queries']} queries: scores match {t['scores_match']}, indices match "
            f"{t['indices_match']} (exact index agreement {100 * t['exact_index_match_fraction']:.1f} %, "
            f"the rest float32 near-ties)."
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--d", type=int, default=24)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--library", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--topk-metrics", nargs="+", default=["pearson", "euclidean", "canberra"])
    ap.add_argument("--repeats", type=int, default=3, help="repeats of our kernels (best kept)")
    ap.add_argument("--baseline-repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="small sizes, to test the script")
    ap.add_argument("--json", help="also write the raw figures to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.queries, args.library = 2_000, 50, 20_000
    info = machine()
    info.update(n=args.n, d=args.d)
    print("machine:", json.dumps(info), flush=True)
    print(f"build: {'portable' if buildinfo.PORTABLE else 'native'} ({buildinfo.FLAGS})")
    threads = sim.default_threads()
    lim = {
        "div_float32": limits.division_rate("float32", threads),
        "div_float64": limits.division_rate("float64", threads),
        "gemm_float32": gemm_flops(np.float32, threads),
        "gemm_float64": gemm_flops(np.float64, threads),
    }
    print("limits:", {k: f"{v:.3g}" for k, v in lim.items()}, flush=True)
    rows = run_pairs(args, info)
    tops = run_topk(args, info)
    info["load_average_end"] = os.getloadavg()
    text = summarise(rows, tops, lim, info)
    print()
    print(
        f"N = {args.n:,}, d = {args.d}, {threads} threads; load average at start "
        f"{info['load_average'][0]:.2f}, at end {info['load_average_end'][0]:.2f}"
    )
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "limits": lim, "pairs": rows, "topk": tops}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
