"""Classes and links against the simulator's truth, at library sizes users have (issue 14).

    python benchmarks/link_truth.py [--sizes 2000,20000,200000] [--seeds 1,2,3]
                                    [--settings default,big_batches,...] [--json OUT]

For each size x seed x simulator setting: simulate, write the export, ingest it into a new
library, and build the library's classes and links as ``profile link --library`` does. Then,
against the import batch of every exhibit:

- classes: adjusted Rand index, pairwise precision and recall; beside them the baselines on the
  same class space (N+S, drifting compounds out, unit rows): HDBSCAN (scikit-learn, default
  min_cluster_size 5), Ward and average linkage cut at the *true* number of batches (scipy).
  Above ``--baseline-max`` exhibits (their memory is O(n^2)) the baselines and our classes are
  compared on a random subsample of that many exhibits;
- chemical links (pairs of one class, or within the search-aware threshold): precision and
  recall over all pairs; beside them the recall of a single Canberra threshold tuned on the truth
  to precision 0.95 (N+S over every compound, as a user would run it), measured on a subsample
  of ``--baseline-max`` exhibits (a fixed threshold's precision and recall do not depend on the
  library's size);
- layers: precision of same_cut against the lot and same_distribution against the dealer, over
  the links reported;
- the expected adventitious links per searched exhibit the threshold was set for, and the
  different-batch links per exhibit it gave.

Settings (simulator parameters changed from reference_data/simulate.toml):
default; big_batches (half as many batches); small_batches (twice as many); spread (lot drift
0.15, exhibit noise 0.08, crack shift of other compounds 0.3); censored (LOQ x4: minor compounds
often not detected); few_compounds (only 10 of the 16 non-drifting compounds reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SETTINGS = {
    "default": {},
    "big_batches": {"network": {"batches_per_sqrt_exhibit": 0.17}},
    "small_batches": {"network": {"batches_per_sqrt_exhibit": 0.68}},
    "spread": {"profile": {"lot_drift_sd": 0.15, "exhibit_noise_sd": 0.08, "crack_other_sd": 0.3}},
    "censored": {"laboratory": {"loq_area": 10000.0}},
    "few_compounds": {},
}
FEW = ["tropacocaine", "norcocaine", "cis_cinnamoylcocaine", "trans_cinnamoylcocaine",
       "trimethoxycocaine", "truxillines", "cuscohygrine", "hygrine", "n_formylcocaine",
       "anhydroecgonine_methyl_ester"]


def make_library(n: int, seed: int, setting: str, tmp: Path):
    """(library path, truth frame: exhibit_id, batch, lot, dealer, seizure)."""
    from profiling.ingest import ingest
    from profiling.simulate import simulate, write

    sim = simulate(n, seed, params=SETTINGS[setting] or None)
    files = write(sim, tmp)
    export = files["export"] if "export" in files else tmp / "export.csv"
    if setting == "few_compounds":
        frame = pd.read_csv(export, dtype=str, keep_default_na=False)
        drop = [c for c in frame.columns if c.startswith("p_") and c[2:] not in FEW]
        frame.drop(columns=drop).to_csv(export, index=False)
    lib = tmp / "lib.h5"
    ingest([export], lib, quarantine=tmp / "q.csv")
    truth = sim.profiles()[["exhibit_id", "batch", "lot", "dealer", "seizure"]]
    return lib, truth


def baselines(Z: np.ndarray, truth: np.ndarray) -> dict:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist
    from sklearn.cluster import HDBSCAN

    from profiling.simulate.scoring import class_score

    k = len(np.unique(truth))
    out = {}
    lab = HDBSCAN(copy=True).fit_predict(Z)
    lab = np.where(lab < 0, -1 - np.arange(len(lab)), lab)        # noise: singletons
    out["hdbscan"] = class_score(truth, lab).row()
    out["ward_true_k"] = class_score(truth, fcluster(linkage(Z, "ward"), k, "maxclust")).row()
    d = pdist(Z, "cosine")
    out["average_true_k"] = class_score(truth, fcluster(linkage(d, "average"), k,
                                                        "maxclust")).row()
    return out


def canberra_best(X_all: np.ndarray, truth: np.ndarray) -> dict:
    """Best recall at precision 0.95 of one Canberra threshold (N+S, every compound)."""
    from profiling import similarity as sim
    from profiling.simulate.scoring import best_threshold_recall

    Xp = sim.pretreat(X_all, "sum_std")
    probe = sim.sample_pairs(Xp, "canberra", 200_000, seed=3)
    same = truth[probe.i] == truth[probe.j]
    # generous candidate set: every pair below the distance where the probe's precision
    # falls under 0.5
    o = np.argsort(probe.score)
    prec = np.cumsum(same[o]) / np.arange(1, len(o) + 1)
    cand = probe.score[o][max(np.flatnonzero(prec >= 0.5).max(initial=10), 10)]
    e = sim.pairs_within(Xp, "canberra", float(cand))
    recall, t = best_threshold_recall(truth, e.i, e.j, e.score)
    return {"recall_at_p95": recall, "threshold": t}


def run_one(n: int, seed: int, setting: str, tmp: Path, baseline_max: int,
            link: dict | None = None) -> dict:
    from profiling import similarity as sim
    from profiling.library import read_library
    from profiling.link import classes as cl
    from profiling.link.calibration import _pretreated, _reference_std
    from profiling.link.layers import linkable
    from profiling.link.runs import Stored, _link_core
    from profiling.simulate.scoring import class_score, layer_precision, link_score

    t0 = time.perf_counter()
    lib, truth = make_library(n, seed, setting, tmp)
    data = read_library(lib)
    t1 = time.perf_counter()
    result, cal, _, _, _ = _link_core(data, np.ones(data.n, bool), Stored(), None, **(link or {}))
    t2 = time.perf_counter()
    s = result.summary
    p = linkable(data)
    ids = data.records["exhibit_id"].to_numpy(dtype=object)[p.rows]
    t = truth.set_index("exhibit_id").reindex(ids)
    batch = t["batch"].to_numpy()
    # our labels, in linkable order
    cls = result.classes.set_index("exhibit_id")["class_id"].reindex(ids).to_numpy()
    labels = pd.factorize(cls)[0]
    row = {"n": n, "seed": seed, "setting": setting, "linkable": len(ids),
           "batches": len(np.unique(batch)), "classes": s["classes"],
           "ingest_s": round(t1 - t0, 1), "link_s": round(t2 - t1, 1),
           "class_cut": s["settings"]["class_cut"], "threshold": s["settings"]["threshold"],
           "search": s["settings"]["search"]}
    row["ours"] = class_score(batch, labels).row()
    st = s["settings"]
    Xp = _pretreated(p, st["pretreatment"], cal.reference_std if cal and
                     cal.chosen["pretreatment"] == st["pretreatment"] else
                     _reference_std(p, st["pretreatment"]))
    e = sim.pairs_within(np.ascontiguousarray(Xp), st["metric"], st["threshold"])
    row["links"] = link_score(batch, labels, e.i, e.j).row()
    diff = (labels[e.i] != labels[e.j]) & (batch[e.i] != batch[e.j])
    row["adventitious_per_exhibit"] = float(2 * diff.sum() / len(ids))
    row["layers"] = layer_precision(result.links, truth)
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(len(ids), min(baseline_max, len(ids)), replace=False))
    Z = cl.unit_rows(_pretreated(p, cl.CLASS_PRETREATMENT, _reference_std(p, cl.CLASS_PRETREATMENT)),
                     cl.CLASS_METRIC)
    row["subsample"] = len(sub)
    row["ours_on_subsample"] = class_score(batch[sub], labels[sub]).row()
    row["baselines"] = baselines(Z[sub], batch[sub])
    X_all = data.profiles.reshape(data.n, len(data.compounds))[p.rows][sub]
    X_all = np.nan_to_num(X_all, nan=0.0)
    row["canberra"] = canberra_best(X_all, batch[sub])
    row["total_s"] = round(time.perf_counter() - t0, 1)
    return row


def line(r: dict) -> str:
    o, b, lk = r["ours_on_subsample"], r["baselines"], r["links"]
    best = max(b.values(), key=lambda v: v["ari"])
    name = max(b, key=lambda k: b[k]["ari"])
    return (f"| {r['n']:,} | {r['setting']} | {r['seed']} | {r['batches']} | {r['classes']} | "
            f"{r['ours']['ari']:.3f} | {r['ours']['precision']:.3f} | {r['ours']['recall']:.3f} | "
            f"{o['ari']:.3f} | {name} {best['ari']:.3f} (P {best['precision']:.3f}) | "
            f"{lk['precision']:.3f} | {lk['recall']:.3f} | {r['canberra']['recall_at_p95']:.3f} | "
            f"{r['adventitious_per_exhibit']:.4f} | "
            f"{r['layers']['same_cut']['precision']:.3f} | "
            f"{r['layers']['same_distribution']['precision']:.3f} | {r['link_s']} |")


HEADER = ("| exhibits | setting | seed | batches | classes | ARI | class P | class R | ARI (sub) | "
          "best baseline ARI (sub) | link P | link R | Canberra R@P.95 | adventitious/exhibit | "
          "same-cut P (lot) | same-dist P (dealer) | link s |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,20000,200000")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--baseline-max", type=int, default=12_000)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--tmp", type=Path)
    args = ap.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(HEADER, flush=True)
    rows = []
    for n in map(int, args.sizes.split(",")):
        for setting in args.settings.split(","):
            for seed in map(int, args.seeds.split(",")):
                with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
                    r = run_one(n, seed, setting, Path(tmp), args.baseline_max)
                rows.append(r)
                print(line(r), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=1, default=float))
    print(f"# load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
