"""Chemical classes as library entities: built once by average linkage, then kept.

A class stands for a supply batch. Its summary is the *sum of its members' unit profiles* in the
class space (normalised to sum, each compound divided by its standard deviation over the library
when the classes were built, drifting compounds left out, each row scaled to unit length), and
its count. With those two numbers the average-linkage
distance between an exhibit and a class, or between two classes, is exact and costs one dot
product: for cosine (and Pearson on centred rows)

    mean over a in A, b in B of (1 - a.b)  =  1 - (sum_A . sum_B) / (n_A n_B).

So a class keeps the very criterion that formed it, at any library size:

- **build** (a whole library, or ``--rebuild``): average linkage (scipy) on a deterministic
  sample of at most ``SAMPLE`` exhibits, cut at the class cut; every exhibit is then assigned to
  the class whose average distance to it is smallest, when that is within the cut (the merge
  average linkage itself would make); exhibits no class takes are clustered the same way in the
  next round; last, classes whose average distance is within the cut are merged, closest first
  (average linkage over classes, exact through their sums);
- **assign** (a day's export): each new exhibit joins the class nearest by that same average
  distance, when within the cut; the others are clustered among themselves into new classes;
  then two classes merge only if the new members bring their average distance within the cut,
  and the event records that distance. Existing exhibits never move except by such a merge.

The class cut is read from the library itself: on a deterministic sample of ``CUT_SAMPLE``
exhibits, the average-linkage tree is cut at each distance of a grid (``CUT_GRID``), and the cut
kept is where the groups are best separated by the mean silhouette (Rousseeuw 1987): the smallest
cut whose silhouette is within ``CUT_TOLERANCE`` of the best, so that of two near-equal cuts the
one that merges less is taken. Cuts below the median same-seizure distance (``SEIZURE_FLOOR``)
are not considered: exhibits of one seizure are known to share a source, and below that scale
the silhouette rewards the tight groups of near-identical exhibits that seizures make. A higher
floor merges batches when detection is censored (same-seizure pairs then differ by which minor
compounds were detected); BENCHMARKS.md, "Classes", has the figures. The share of same-seizure
distances below the cut is reported beside it. ``--class-cut`` gives the cut instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE = 8_000           # exhibits clustered exactly per round (condensed distances: 0.26 GB)
CUT_SAMPLE = 3_000       # exhibits whose average-linkage tree sets the class cut
CUT_GRID = np.geomspace(0.01, 0.5, 21)   # candidate cuts (cosine distance)
CUT_TOLERANCE = 0.01     # relative: the smallest cut within 1 % of the best silhouette
SEIZURE_FLOOR = 0.5      # no cut below this quantile of same-seizure distances
ASSIGN_CHUNK = 65_536    # exhibits scored against every class at a time
ID_FORMAT = "C{:06d}"
#: the class space: N+S then cosine (Lociciro et al. 2008's best for cocaine, and the one
#: measured against batches in BENCHMARKS.md), whatever the links' calibrated metric
CLASS_PRETREATMENT, CLASS_METRIC = "sum_std", "cosine"


def unit_rows(X: np.ndarray, metric: str) -> np.ndarray:
    """Rows scaled to unit length (centred first for Pearson); NaN read as 0, a zero row stays
    zero (its distance to everything is 1)."""
    Z = np.nan_to_num(np.asarray(X, dtype=np.float64), nan=0.0)
    if metric == "pearson":
        Z = Z - Z.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(Z, axis=1, keepdims=True)
    return np.divide(Z, norm, out=np.zeros_like(Z), where=norm > 0)


@dataclass
class ClassModel:
    """Every class of the library: its id, member count and sum of unit rows."""

    ids: list[str]
    n: np.ndarray            # int64 [C]
    sums: np.ndarray         # float64 [C, d]
    cut: float
    next_id: int

    def distances_to(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row of ``Z``: the nearest class (by average distance) and that distance."""
        best = np.full(len(Z), -1, dtype=np.int64)
        dist = np.full(len(Z), np.inf)
        if not len(self.n):
            return best, dist
        means = self.sums / self.n[:, None]
        for a in range(0, len(Z), ASSIGN_CHUNK):
            sim = Z[a:a + ASSIGN_CHUNK] @ means.T
            k = np.argmax(sim, axis=1)
            best[a:a + ASSIGN_CHUNK] = k
            dist[a:a + ASSIGN_CHUNK] = 1.0 - sim[np.arange(len(k)), k]
        return best, dist


def _sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def average_linkage(Z: np.ndarray, cut: float) -> np.ndarray:
    """Labels 0..k-1 of exact average linkage (scipy) on unit rows cut at ``cut``, numbered by
    smallest member."""
    if len(Z) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(Z) == 1:
        return np.zeros(1, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    d = pdist(Z, "sqeuclidean")          # |a - b|^2 = 2 (1 - a.b) for unit rows
    d *= 0.5
    np.maximum(d, 0.0, out=d)
    zero = ~np.any(Z, axis=1)            # a zero row: distance 1 to everything
    if zero.any():
        i, j = np.triu_indices(len(Z), k=1)
        d[zero[i] | zero[j]] = 1.0
        del i, j
    lab = fcluster(linkage(d, method="average"), t=cut, criterion="distance")
    return renumber(lab)


def choose_cut(Z: np.ndarray, floor: float = 0.0) -> tuple[float, dict]:
    """The class cut for unit rows ``Z`` (see the module's description) and how it was found;
    no cut below ``floor`` is considered."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist, squareform
    from sklearn.metrics import silhouette_score

    s = _sample(len(Z), CUT_SAMPLE, seed=99)
    Zs = Z[s]
    if len(Zs) < 3:
        return float(CUT_GRID[len(CUT_GRID) // 2]), {"class_cut_source": "default (too few exhibits)"}
    d = pdist(Zs, "sqeuclidean")
    d *= 0.5
    np.maximum(d, 0.0, out=d)
    tree = linkage(d, method="average")
    square = squareform(d)
    scores = []
    grid = CUT_GRID[CUT_GRID >= floor]
    if not len(grid):
        grid = CUT_GRID[-1:]
    for t in grid:
        lab = fcluster(tree, t=t, criterion="distance")
        k = len(np.unique(lab))
        if 2 <= k < len(Zs):
            scores.append((float(t), float(silhouette_score(square, lab, metric="precomputed")), k))
    if not scores:
        return float(CUT_GRID[len(CUT_GRID) // 2]), {"class_cut_source": "default (one group)"}
    best = max(v for _, v, _ in scores)
    t, v, k = next(x for x in scores if x[1] >= best - CUT_TOLERANCE * abs(best))
    return t, {"class_cut_source": f"silhouette {v:.3f} (best {best:.3f}) of {k} groups of a "
                                   f"{len(Zs):,}-exhibit sample"}


def renumber(labels: np.ndarray) -> np.ndarray:
    """Labels numbered 0.. in order of each group's first member (deterministic)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]


def sums_of(Z: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sums = np.zeros((k, Z.shape[1]))
    np.add.at(sums, labels, Z)
    return np.bincount(labels, minlength=k).astype(np.int64), sums


def build(Z: np.ndarray, cut: float, *, sample: int = SAMPLE, progress=None) -> np.ndarray:
    """Class labels 0..k-1 for every row of ``Z`` (unit rows), see the module's description."""
    n = len(Z)
    labels = np.full(n, -1, dtype=np.int64)
    remaining = np.arange(n)
    k = 0
    round_ = 0
    while len(remaining):
        round_ += 1
        s = remaining[_sample(len(remaining), sample, seed=round_)]
        lab_s = average_linkage(Z[s], cut)
        k_s = int(lab_s.max()) + 1 if len(lab_s) else 0
        if len(s) == len(remaining):             # everything left was clustered exactly
            labels[s] = k + lab_s
            k += k_s
            break
        count, sums = sums_of(Z[s], lab_s, k_s)
        model = ClassModel([], count, sums, cut, 0)
        best, dist = model.distances_to(Z[remaining])
        take = dist <= cut
        labels[remaining[take]] = k + best[take]
        # a sampled exhibit always keeps its own group (so every round makes progress)
        own = labels[s] < 0
        labels[s[own]] = k + lab_s[own]
        k += k_s
        remaining = remaining[labels[remaining] < 0]
        if progress:
            progress(0)
    labels = renumber(labels)
    count, sums = sums_of(Z, labels, int(labels.max()) + 1 if n else 0)
    merged, _ = merge_close(count, sums, cut)
    return renumber(merged[labels])


def merge_close(n: np.ndarray, sums: np.ndarray, cut: float, only: np.ndarray | None = None,
                min_size: int = 2, allowed: set | None = None
                ) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """Average linkage over classes, exact through their sums: merge the closest two while their
    average distance is within ``cut``. ``only``: indices of classes that must take part in any
    merge (the classes a day's export touched); default every class of ``min_size`` members or
    more. ``allowed``: the pairs of classes (a, b), a < b, that may merge at all (a day's run:
    the pairs some new exhibit is within the cut of both); default any.
    Returns the class each class ends in (an index of the input) and the merges (kept,
    absorbed, distance).

    Average linkage's update, D(A+B, C) = (n_A D(A, C) + n_B D(B, C)) / (n_A + n_B), is within
    the cut only if D(A, C) or D(B, C) is: so only pairs within the cut at the start can ever
    merge, and the work is done per connected group of those pairs (memory O(classes))."""
    C = len(n)
    into = np.arange(C)
    pool = np.flatnonzero(n >= min_size)
    if C < 2 or len(pool) < 2:
        return into, []
    means = sums[pool] / n[pool, None]
    rows = pool if only is None else np.intersect1d(np.asarray(only, dtype=np.int64), pool)
    pi, pj = [], []
    where = np.searchsorted(pool, rows)
    for a in range(0, len(rows), 2048):
        block = where[a:a + 2048]
        d = 1.0 - means[block] @ means.T
        x, y = np.nonzero(d <= cut)
        keep = block[x] != y
        pi.append(block[x][keep])
        pj.append(y[keep])
    pi = np.concatenate(pi) if pi else np.zeros(0, np.int64)
    pj = np.concatenate(pj) if pj else np.zeros(0, np.int64)
    if allowed is not None and len(pi):
        a, b = np.minimum(pool[pi], pool[pj]), np.maximum(pool[pi], pool[pj])
        ok = np.array([(x, y) in allowed for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
        pi, pj = pi[ok], pj[ok]
    if not len(pi):
        return into, []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, comp = connected_components(coo_matrix((np.ones(len(pi)), (pi, pj)),
                                              shape=(len(pool), len(pool))), directed=False)
    touched = np.unique(np.r_[pi, pj])
    merges = []
    for c in np.unique(comp[touched]):
        cand = pool[touched[comp[touched] == c]]          # class indices, ascending
        S = sums[cand].copy()
        m = n[cand].astype(np.float64)
        alive = np.ones(len(cand), bool)
        D = 1.0 - (S @ S.T) / np.outer(m, m)
        np.fill_diagonal(D, np.inf)
        while True:
            a, b = divmod(int(np.argmin(D)), len(cand))
            if not D[a, b] <= cut:
                break
            a, b = min(a, b), max(a, b)
            merges.append((int(cand[a]), int(cand[b]), float(D[a, b])))
            S[a] += S[b]
            m[a] += m[b]
            alive[b] = False
            row = 1.0 - (S @ S[a]) / (m * m[a])
            row[~alive] = np.inf
            row[a] = np.inf
            D[a, :] = row
            D[:, a] = row
            D[b, :] = np.inf
            D[:, b] = np.inf
            into[into == cand[b]] = cand[a]
    return into, merges


def within_cut(model: ClassModel, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class index or -1, average distance) of each row of ``Z`` against the model."""
    best, dist = model.distances_to(Z)
    best = np.where(dist <= model.cut, best, -1)
    return best, dist
