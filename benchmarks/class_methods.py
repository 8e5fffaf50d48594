"""Average linkage against Ward on a dense library (issue 14: why classes lose precision at 10^6).

    python benchmarks/class_methods.py [--library /work/bench/lib1m.h5]
                                       [--truth /work/bench/truth1m.csv] [--sample 8000]

A deterministic sample of the library in the class space (N+S, drifting compounds out, unit
rows); scipy's average linkage (cosine) and Ward (Euclidean on unit rows, which orders pairs as
cosine does) cut at several numbers of classes k, each scored against the import batch, with the
silhouette of Ward's cut on 3,000 of the sampled exhibits (the criterion the class cut uses).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.metrics import silhouette_score

    from profiling.library import read_library
    from profiling.link import classes as cl
    from profiling.link.calibration import _pretreated, _reference_std
    from profiling.link.layers import linkable
    from profiling.simulate.scoring import class_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", type=Path, default=Path("/work/bench/lib1m.h5"))
    ap.add_argument("--truth", type=Path, default=Path("/work/bench/truth1m.csv"))
    ap.add_argument("--sample", type=int, default=8000)
    args = ap.parse_args()
    data = read_library(args.library)
    p = linkable(data)
    ids = data.records["exhibit_id"].to_numpy(dtype=object)[p.rows]
    batch = pd.read_csv(args.truth).set_index("exhibit_id")["batch"].reindex(ids).to_numpy()
    Z = cl.unit_rows(_pretreated(p, "sum_std", _reference_std(p, "sum_std")), "cosine")
    s = cl._sample(len(Z), args.sample, 5)
    Zs, bs = Z[s], batch[s]
    ward, average = linkage(Zs, "ward"), linkage(Zs, "average", metric="cosine")
    sub = np.random.default_rng(0).choice(len(Zs), min(3000, len(Zs)), replace=False)
    true_k = len(np.unique(bs))
    print(f"{len(Z):,} exhibits, sample {len(Zs):,}, {true_k} batches in the sample")
    print("| k | Ward ARI | Ward P | Ward R | Ward silhouette | average ARI | average P | average R |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in sorted({true_k // 2, int(true_k * 0.8), true_k, int(true_k * 1.3), int(true_k * 1.6),
                     true_k * 2}):
        lw, la = fcluster(ward, k, "maxclust"), fcluster(average, k, "maxclust")
        w, a = class_score(bs, lw), class_score(bs, la)
        print(f"| {k} | {w.ari:.3f} | {w.precision:.3f} | {w.recall:.3f} | "
              f"{silhouette_score(Zs[sub], lw[sub]):.3f} | {a.ari:.3f} | {a.precision:.3f} | "
              f"{a.recall:.3f} |", flush=True)


if __name__ == "__main__":
    main()
