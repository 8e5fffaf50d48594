"""Chemical classes as library entities: built once by Ward's criterion, then kept.

A class stands for a supply batch. Its summary is the *sum of its members' unit profiles* in the
class space (normalised to sum, each compound divided by its standard deviation over the library
when the classes were built, drifting compounds left out, each row scaled to unit length), and
its count. With those two numbers Ward's merge cost (the rise in the within-class sum of squares
that joining two groups makes; Ward 1963) is exact at any library size and costs one dot product:

    cost(A, B) = n_A n_B / (n_A + n_B) |c_A - c_B|^2,   c = sum / n

(for unit rows |a - b|^2 = 2 (1 - cos), so two single exhibits cost their cosine distance). The
class cut is a cost. Ward's criterion is used, not average linkage, because it was measured to
keep classes to one batch where batches crowd each other: at the simulator's 10^6 exhibits
average linkage reached pairwise precision 0.79 at best at any number of classes, Ward 0.96 at
the true number (BENCHMARKS.md, "Classes"). A cost grows with the groups' sizes, so two large
classes merge only when their centroids all but coincide, and a day's few exhibits cannot merge
two established classes.

- **build** (a whole library, or ``--rebuild``): Ward's linkage (scipy) on a deterministic sample
  of at most ``SAMPLE`` exhibits, cut at the class cut; every exhibit is then assigned to the
  class it costs least to join, when that cost is within the cut and the exhibit lies within the
  class's *reach* (below); exhibits no class takes are clustered the same way in the next round;
  last, classes whose merge cost is within the cut are merged, cheapest first (exact through
  their sums);
- **assign** (a day's export): each new exhibit joins the cheapest class whose reach it lies in
  and whose cost is within the cut; the others are clustered among themselves into new classes;
  then two classes merge only if the new members bring their merge cost within the cut and some
  new exhibit could join both, and the event records that cost. Existing exhibits never move
  except by such a merge.

A class's *reach*: its spread (its members' mean squared distance to its centre, exact from the
sum and count of unit rows, shrunk towards the median class's by ``SPREAD_PRIOR`` members' worth,
capped at the ``SPREAD_CAP`` quantile of the classes') times the factor within which
``RADIUS_QUANTILE`` of all classed exhibits lie of their own class. Ward's cost alone would let one exhibit join a class of thousands however far it lies (one
member moves the centre little); with the reach, a small batch that the build's sample missed, or
a new batch in a day's export, starts a class of its own. Measured on the simulator's 10^6
exhibits: class precision 0.941 without the reach in the build, 0.953 with it (ARI 0.907, 0.896).

The class cut is read from the library itself, on the first round's tree: the tree is cut into k
classes for ``CUT_KS`` values of k spaced geometrically, then for every k around the best few of
them, and the k kept is the one with the best mean silhouette (Rousseeuw 1987) over
``CUT_SAMPLE`` of the sampled exhibits. (Measured against leaning to the largest k within 1 % of
the best: it split batches at 2,000 exhibits; to the smallest: it merged them at 10^6.) No k
below ``MIN_CLASSES_PER_ROOT`` x sqrt(N) is tried: where exhibits also group at a coarser level
than the batch (origins, processing styles) the silhouette may prefer that level, and an
independent generator with four origins above 20-60 batches was cut into 3-4 classes (precision
0.16-0.35) in three of six libraries without the bound (BENCHMARKS.md). The cut is the cost
halfway between the last merge kept and the first refused. Cuts below the median
same-seizure distance (``SEIZURE_FLOOR``) are not considered: exhibits of one seizure are known
to share a source, and below that scale the silhouette rewards the tight groups of
near-identical exhibits that seizures make. The share of same-seizure distances below the cut is
reported beside it. ``--class-cut`` gives the cut instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE = 8_000           # exhibits clustered exactly per round (condensed distances: 0.26 GB)
CUT_SAMPLE = 3_000       # sampled exhibits whose silhouette chooses the number of classes
CUT_KS = 60              # numbers of classes tried: spaced geometrically, then every k near the best
CUT_MIN_MEAN = 5         # at most one class per 5 sampled exhibits
#: at least MIN_CLASSES_PER_ROOT x sqrt(library exhibits) classes: under half the density of
#: batches DOMAIN's Lausanne figure gives (about 20 classes in 3,371 specimens, 0.34 sqrt(N))
MIN_CLASSES_PER_ROOT = 0.15
SEIZURE_FLOOR = 0.5      # no cut below this quantile of same-seizure distances
ASSIGN_CHUNK = 65_536    # exhibits scored against every class at a time
RADIUS_QUANTILE = 0.99   # a class's reach: where 99 % of the library's members lie (see reach)
SPREAD_CAP = 0.9         # no class's spread counts for more than the 90th percentile's
SPREAD_PRIOR = 5         # members' worth of the median class spread a class's own is shrunk to
ID_FORMAT = "C{:06d}"
#: the class space: N+S then cosine (Lociciro et al. 2008's best for cocaine, and the one
#: measured against batches in BENCHMARKS.md), whatever the links' calibrated metric
CLASS_PRETREATMENT, CLASS_METRIC = "sum_std", "cosine"
CLASS_CRITERION = "ward"


def unit_rows(X: np.ndarray, metric: str) -> np.ndarray:
    """Rows scaled to unit length (centred first for Pearson); NaN read as 0, a zero row stays
    zero."""
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
        """For each row of ``Z``: the class it costs least to join (Ward) and that cost."""
        best = np.full(len(Z), -1, dtype=np.int64)
        cost = np.full(len(Z), np.inf)
        alive = np.flatnonzero(self.n > 0)
        if not len(alive):
            return best, cost
        m = self.n[alive].astype(np.float64)
        means = self.sums[alive] / m[:, None]
        factor = m / (m + 1.0)
        norms = np.einsum("ij,ij->i", means, means)
        for a in range(0, len(Z), ASSIGN_CHUNK):
            z = Z[a:a + ASSIGN_CHUNK]
            c = factor * (np.einsum("ij,ij->i", z, z)[:, None] + norms - 2.0 * (z @ means.T))
            k = np.argmin(c, axis=1)
            best[a:a + ASSIGN_CHUNK] = alive[k]
            cost[a:a + ASSIGN_CHUNK] = np.maximum(c[np.arange(len(k)), k], 0.0)
        return best, cost


def _sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def ward_tree(Z: np.ndarray) -> np.ndarray:
    """Scipy's Ward linkage of the rows; its heights h are costs through cost = h^2 / 2."""
    from scipy.cluster.hierarchy import linkage

    return linkage(Z, method="ward")


def ward_labels(Z: np.ndarray, cut: float, tree: np.ndarray | None = None) -> np.ndarray:
    """Labels 0..k-1 of exact Ward linkage (scipy) on the rows, no merge costing more than
    ``cut``, numbered by smallest member."""
    if len(Z) < 2:
        return np.zeros(len(Z), dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster

    tree = ward_tree(Z) if tree is None else tree
    return renumber(fcluster(tree, t=float(np.sqrt(2.0 * cut)), criterion="distance"))


def choose_cut(Z: np.ndarray, floor: float = 0.0, tree: np.ndarray | None = None,
               min_classes: int = 2) -> tuple[float, dict]:
    """The class cut for the rows ``Z`` (the first round's sample, see the module's
    description) and how it was found; no cut below ``floor`` and none leaving fewer than
    ``min_classes`` classes is considered."""
    from scipy.cluster.hierarchy import fcluster
    from scipy.spatial.distance import pdist, squareform
    from sklearn.metrics import silhouette_score

    n = len(Z)
    if n < 3:
        return 1.0, {"class_cut_source": "default (too few exhibits)"}
    tree = ward_tree(Z) if tree is None else tree
    cost = np.maximum(tree[:, 2], 0.0) ** 2 / 2.0     # ascending: merge m leaves n - 1 - m groups
    sub = _sample(n, CUT_SAMPLE, seed=99)
    square = squareform(pdist(Z[sub]))
    scores: dict[int, tuple[float, float]] = {}      # k: (cut, silhouette)

    def score(k: int) -> None:
        # k groups: merges 0 .. n-k-1 kept, merge n-k refused
        if k in scores or not max(2, min_classes) <= k < n:
            return
        kept, refused = cost[n - k - 1], cost[n - k]
        if refused <= kept or refused <= floor:
            return
        lab = fcluster(tree, k, criterion="maxclust")[sub]
        if len(np.unique(lab)) < 2:
            return
        scores[k] = (max(0.5 * (kept + refused), floor),
                     float(silhouette_score(square, lab, metric="precomputed")))

    low = min(max(2, min_classes), max(2, n // CUT_MIN_MEAN))
    coarse = np.unique(np.geomspace(low, max(low, n // CUT_MIN_MEAN), CUT_KS).astype(np.int64))
    for k in coarse.tolist():
        score(k)
    if not scores:
        return max(floor, 1.0), {"class_cut_source": "default (no separated groups)"}
    # then every k between the neighbours of the best few coarse k's
    for top in sorted(scores, key=lambda k: -scores[k][1])[:3]:
        at = int(np.searchsorted(coarse, top))
        lo, hi = coarse[max(at - 1, 0)], coarse[min(at + 1, len(coarse) - 1)]
        for k in range(int(lo), int(hi) + 1):
            score(k)
    k = max(scores, key=lambda k: (scores[k][1], -k))
    t, v = scores[k]
    return float(t), {"class_cut_source": f"silhouette {v:.3f}, the best, of {k} classes of a "
                                          f"{n:,}-exhibit sample"}


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


def build(Z: np.ndarray, cut: float | None = None, *, floor: float = 0.0, sample: int = SAMPLE,
          progress=None) -> tuple[np.ndarray, float, dict]:
    """Class labels 0..k-1 for every row of ``Z`` (unit rows), the cut and how it was found
    (``cut`` None: chosen on the first round's tree, :func:`choose_cut`); see the module's
    description."""
    n = len(Z)
    labels = np.full(n, -1, dtype=np.int64)
    remaining = np.arange(n)
    k = 0
    round_ = 0
    info = {"class_cut_source": "given"}
    while len(remaining):
        round_ += 1
        s = remaining[_sample(len(remaining), sample, seed=round_)]
        tree = ward_tree(Z[s]) if len(s) >= 2 else None
        if cut is None:
            cut, info = choose_cut(Z[s], floor, tree,
                                   int(np.ceil(MIN_CLASSES_PER_ROOT * np.sqrt(n))))
        lab_s = ward_labels(Z[s], cut, tree)
        k_s = int(lab_s.max()) + 1 if len(lab_s) else 0
        if len(s) == len(remaining):             # everything left was clustered exactly
            labels[s] = k + lab_s
            k += k_s
            break
        count, sums = sums_of(Z[s], lab_s, k_s)
        model = ClassModel([], count, sums, cut, 0)
        best, cost = model.distances_to(Z[remaining])
        # within the cut and within the class's reach (a small batch the sample missed is
        # left for the next round, not absorbed by the nearest large class)
        factor = reach(Z[s], lab_s, count, sums)
        d2 = cost * (count[best] + 1.0) / count[best]        # |z - c|^2 from Ward's cost
        take = (cost <= cut) & (d2 <= factor * spreads(count, sums)[best])
        labels[remaining[take]] = k + best[take]
        # a sampled exhibit always keeps its own group (so every round makes progress)
        own = labels[s] < 0
        labels[s[own]] = k + lab_s[own]
        k += k_s
        remaining = remaining[labels[remaining] < 0]
        if progress:
            progress(0)
    if cut is None:
        cut = 1.0
    if not n:
        return labels, float(cut), info
    labels = renumber(labels)
    count, sums = sums_of(Z, labels, int(labels.max()) + 1)
    merged, _ = merge_close(count, sums, cut)
    return renumber(merged[labels]), float(cut), info


def merge_costs(n_a, means_a, n_b, means_b) -> np.ndarray:
    """Ward's merge cost of every class of a (rows) with every class of b (columns)."""
    d2 = (np.einsum("ij,ij->i", means_a, means_a)[:, None]
          + np.einsum("ij,ij->i", means_b, means_b)[None, :] - 2.0 * (means_a @ means_b.T))
    na, nb = np.asarray(n_a, np.float64)[:, None], np.asarray(n_b, np.float64)[None, :]
    return np.maximum(d2, 0.0) * (na * nb / (na + nb))


def merge_close(n: np.ndarray, sums: np.ndarray, cut: float, only: np.ndarray | None = None,
                min_size: int = 1, allowed=None
                ) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """Ward's linkage over classes, exact through their sums: merge the cheapest two while their
    merge cost is within ``cut``. ``only``: indices of classes that must take part in any merge
    (the classes a day's export touched); default every class of ``min_size`` members or more.
    ``allowed``: a function of two arrays of class indices saying which pairs may merge at all
    (a day's run: the pairs some new exhibit could join both of); default any.
    Returns the class each class ends in (an index of the input) and the merges (kept,
    absorbed, cost).

    Ward's criterion is reducible: when A and B are the cheapest pair, cost(A+B, C) is at least
    the smaller of cost(A, C) and cost(B, C), so only pairs within the cut at the start can ever
    merge, and the work is done per connected group of those pairs (memory O(classes))."""
    C = len(n)
    into = np.arange(C)
    pool = np.flatnonzero(n >= max(min_size, 1))
    if C < 2 or len(pool) < 2:
        return into, []
    m_pool = n[pool].astype(np.float64)
    means = sums[pool] / m_pool[:, None]
    rows = pool if only is None else np.intersect1d(np.asarray(only, dtype=np.int64), pool)
    pi, pj = [], []
    where = np.searchsorted(pool, rows)
    for a in range(0, len(rows), 2048):
        block = where[a:a + 2048]
        d = merge_costs(m_pool[block], means[block], m_pool, means)
        x, y = np.nonzero(d <= cut)
        keep = block[x] != y
        pi.append(block[x][keep])
        pj.append(y[keep])
    pi = np.concatenate(pi) if pi else np.zeros(0, np.int64)
    pj = np.concatenate(pj) if pj else np.zeros(0, np.int64)
    if allowed is not None and len(pi):
        ok = np.asarray(allowed(pool[pi], pool[pj]), dtype=bool)
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
        D = merge_costs(m, S / m[:, None], m, S / m[:, None])
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
            row = merge_costs(m[a:a + 1], S[a:a + 1] / m[a], m, S / m[:, None])[0]
            row[~alive] = np.inf
            row[a] = np.inf
            D[a, :] = row
            D[:, a] = row
            D[b, :] = np.inf
            D[:, b] = np.inf
            into[into == cand[b]] = cand[a]
    return into, merges


def spreads(n: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Each class's mean squared distance of its members to its centre, exact from the sum and
    count of unit rows: 1 - |sum|^2 / n^2; shrunk towards the median spread of the classes by
    ``SPREAD_PRIOR`` members' worth, so a class of one or two has a reach too; and capped at the
    ``SPREAD_CAP`` quantile of the classes' spreads, so that a class that holds two batches does
    not reach out for a third (measured: with a new batch held back from 2,000 exhibits, seeds
    23 and 25, 0 % and 63 % of its exhibits started a class uncapped, 99 % and 100 % capped; the
    10^5 and 10^6 builds' precision and ARI unchanged to 0.001)."""
    m = np.maximum(np.asarray(n, np.float64), 1.0)
    own = np.maximum(1.0 - np.einsum("ij,ij->i", sums, sums) / m ** 2, 0.0)
    big = np.asarray(n) >= SPREAD_PRIOR
    pool = own[big] if big.any() else own
    prior = float(np.median(pool)) if len(pool) else 0.0
    shrunk = (m * own + SPREAD_PRIOR * prior) / (m + SPREAD_PRIOR)
    if SPREAD_CAP is not None and len(pool):
        shrunk = np.minimum(shrunk, float(np.quantile(pool, SPREAD_CAP)))
    return shrunk


def reach(Z: np.ndarray, labels: np.ndarray, n: np.ndarray, sums: np.ndarray,
          sample: int = 200_000) -> float:
    """How far from its centre, in units of its spread, a class's members lie: the
    ``RADIUS_QUANTILE`` of |z - c|^2 / spread over (a deterministic sample of) the classed rows.
    A new exhibit beyond that from every class starts a class of its own: Ward's cost alone
    would let one exhibit join a class of thousands however far it lies, since one member
    moves the centre little."""
    rows = np.flatnonzero(labels >= 0)
    if not len(rows):
        return float("inf")
    rows = rows[_sample(len(rows), sample, seed=7)]
    lab = labels[rows]
    keep = np.asarray(n)[lab] >= 2
    if not keep.any():
        return float("inf")
    rows, lab = rows[keep], lab[keep]
    centre = sums[lab] / np.asarray(n, np.float64)[lab, None]
    d2 = np.einsum("ij,ij->i", Z[rows] - centre, Z[rows] - centre)
    return float(np.quantile(d2 / np.maximum(spreads(n, sums)[lab], 1e-12), RADIUS_QUANTILE))


def _joinable_chunks(model: ClassModel, Z: np.ndarray, factor: float):
    """Per chunk of ``ASSIGN_CHUNK`` rows of ``Z``: (first row, bool [rows, classes] the row
    lies within the class's reach (|z - c|^2 <= factor x spread) and joining costs no more than
    the cut, Ward's cost of joining [rows, classes])."""
    m = np.maximum(model.n.astype(np.float64), 1.0)
    means = model.sums / m[:, None]
    norms = np.einsum("ij,ij->i", means, means)
    radius = factor * spreads(model.n, model.sums)
    factor_n = m / (m + 1.0)
    empty = model.n == 0
    for a in range(0, len(Z), ASSIGN_CHUNK):
        z = Z[a:a + ASSIGN_CHUNK]
        d2 = np.maximum(np.einsum("ij,ij->i", z, z)[:, None] + norms[None, :]
                        - 2.0 * (z @ means.T), 0.0)
        cost = d2 * factor_n[None, :]
        ok = (d2 <= radius[None, :]) & (cost <= model.cut)
        ok[:, empty] = False
        yield a, ok, cost


def joinable(model: ClassModel, Z: np.ndarray, factor: float) -> np.ndarray:
    """Bool [rows of Z, classes]: the row lies within the class's reach
    (|z - c|^2 <= factor x spread) and joining costs no more than the cut."""
    out = np.zeros((len(Z), len(model.n)), dtype=bool)
    for a, ok, _ in _joinable_chunks(model, Z, factor):
        out[a:a + len(ok)] = ok
    return out


def cheapest_joinable(model: ClassModel, Z: np.ndarray, factor: float) -> np.ndarray:
    """For each row of ``Z``: the class it costs least to join among those it may join
    (:func:`joinable`), or -1."""
    best = np.full(len(Z), -1, dtype=np.int64)
    if not len(model.n):
        return best
    for a, ok, cost in _joinable_chunks(model, Z, factor):
        k = np.argmin(np.where(ok, cost, np.inf), axis=1)
        best[a:a + len(ok)] = np.where(ok.any(axis=1), k, -1)
    return best
