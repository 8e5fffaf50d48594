"""Chemical classes: no chaining through weak links; ids stable as the library grows."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from profiling.classes import assign_ids, group_links, subgroups


def edges_of(X, t):
    d = pdist(X)
    i, j = np.triu_indices(len(X), k=1)
    keep = d <= t
    return i[keep], j[keep], d[keep]


def test_average_linkage_does_not_chain():
    # a line of points 1 apart: every neighbour is linked at t = 1.2, but the chain is long
    X = np.arange(8, dtype=float).reshape(-1, 1)
    i, j, d = edges_of(X, 1.2)
    labels = group_links(8, i, j, d, 1.2, distances=lambda m: pdist(X[m]))
    assert len(set(labels.tolist())) > 1                      # single linkage would give one class
    expected = fcluster(linkage(pdist(X), "average"), 1.2, "distance")
    # same partition as scipy's average linkage on the whole set
    assert len({(a, b) for a, b in zip(labels, expected)}) == len(set(labels.tolist()))


def test_groups_are_deterministic_and_numbered_by_first_member():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (5, 3))
    X = np.vstack([c + rng.normal(0, 0.1, (6, 3)) for c in centres])[rng.permutation(30)]
    i, j, d = edges_of(X, 1.0)
    a = group_links(30, i, j, d, 1.0, distances=lambda m: pdist(X[m]))
    b = group_links(30, i[::-1], j[::-1], d[::-1], 1.0, distances=lambda m: pdist(X[m]))
    assert np.array_equal(a, b)
    assert a[0] == 0 and sorted(set(a.tolist())) == list(range(5))
    firsts = [int(np.flatnonzero(a == k)[0]) for k in range(5)]
    assert firsts == sorted(firsts)


def test_ids_survive_growth_merges_and_splits():
    ids = [f"E{k}" for k in range(6)]
    labels = np.array([0, 0, 1, 1, 2, 3])
    first, events, nxt = assign_ids(ids, labels, {}, 1, "2026-01-01")
    assert first == ["C000001", "C000001", "C000002", "C000002", "C000003", "C000004"]
    assert [e.event for e in events] == ["new"] * 4 and nxt == 5
    prev = dict(zip(ids, first))
    # rerun: nothing changes
    again, events, nxt2 = assign_ids(ids, labels, prev, nxt, "2026-01-02")
    assert again == first and events == [] and nxt2 == nxt
    # growth: E6 joins class 1, E7 is new; C000002 and C000003 merge
    ids2 = ids + ["E6", "E7"]
    labels2 = np.array([0, 0, 1, 1, 1, 2, 0, 3])
    grown, events, nxt3 = assign_ids(ids2, labels2, prev, nxt, "2026-01-03")
    assert grown[:2] == ["C000001", "C000001"] and grown[6] == "C000001"
    assert grown[2] == grown[3] == grown[4] == "C000002"        # larger part keeps its id
    assert grown[5] == "C000004" and grown[7] == "C000005"
    assert [(e.event, e.class_id, e.related) for e in events] == [
        ("merge", "C000002", ("C000003",)), ("new", "C000005", ())]
    # split: C000001's members part ways
    prev2 = dict(zip(ids2, grown))
    labels3 = np.array([0, 0, 1, 1, 1, 2, 4, 3])
    split, events, _ = assign_ids(ids2, labels3, prev2, nxt3, "2026-01-04")
    assert split[0] == split[1] == "C000001" and split[6] == "C000006"
    assert [(e.event, e.class_id, e.related) for e in events] == [("split", "C000006", ("C000001",))]


def test_subgroups_inside_classes():
    labels = np.array([0, 0, 0, 0, 1, 1])
    i = np.array([0, 1, 2, 4, 0])
    j = np.array([1, 2, 3, 5, 4])
    same = np.array([True, False, True, True, True])   # 0-4 crosses classes: ignored
    assert subgroups(labels, i, j, same).tolist() == [1, 1, 2, 2, 1, 1]


def test_sparse_average_linkage_equals_scipy_with_missing_pairs_at_twice_the_threshold():
    from profiling.classes import sparse_average_linkage

    rng = np.random.default_rng(5)
    X = np.vstack([c + rng.normal(0, 0.35, (12, 2)) for c in rng.normal(0, 2.0, (6, 2))])
    t = 0.9
    d_full = pdist(X)
    i, j = np.triu_indices(len(X), k=1)
    keep = d_full <= t
    sparse = sparse_average_linkage(np.arange(len(X)), i[keep], j[keep], d_full[keep], t)
    dense = fcluster(linkage(np.where(keep, d_full, 2 * t + 1e-12), "average"), t, "distance")
    # the same partition
    assert len(set(zip(sparse.tolist(), dense.tolist()))) == len(set(dense.tolist())) == len(set(sparse.tolist()))
    assert len(set(sparse.tolist())) > 1


def _same_partition(x, y) -> bool:
    x, y = np.asarray(x).tolist(), np.asarray(y).tolist()
    return len(set(zip(x, y))) == len(set(x)) == len(set(y))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 90), groups=st.integers(1, 8),
       spread=st.floats(0.1, 1.5), t=st.floats(0.2, 2.0))
def test_compiled_sparse_linkage_equals_scipy_on_random_graphs(seed, n, groups, spread, t):
    """The nearest-neighbour chain gives scipy's average linkage (pairs without an edge at twice
    the threshold) cut at the threshold, on clustered data of every density, with members that
    are arbitrary sorted indices and edges given in any order."""
    from profiling.classes import sparse_average_linkage

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, (groups, 3))
    X = centres[rng.integers(0, groups, n)] + rng.normal(0, spread, (n, 3))
    members = np.sort(rng.choice(10 * n + 5, n, replace=False))
    if n < 2:
        assert sparse_average_linkage(members, np.zeros(0, int), np.zeros(0, int), np.zeros(0), t).tolist() == [1] * n
        return
    d_full = pdist(X)
    i, j = np.triu_indices(n, k=1)
    keep = d_full <= t
    order = rng.permutation(int(keep.sum()))
    a, b = members[i[keep]][order], members[j[keep]][order]
    flip = rng.random(len(a)) < 0.5
    a, b = np.where(flip, b, a), np.where(flip, a, b)
    sparse = sparse_average_linkage(members, a, b, d_full[keep][order], t)
    dense = fcluster(linkage(np.where(keep, d_full, 2 * t + 1e-12), "average"), t, "distance")
    assert _same_partition(sparse, dense)
    # labels are 1..k numbered by first member
    first = [sparse.tolist().index(v) for v in range(1, sparse.max() + 1)]
    assert first == sorted(first) and sparse.min() == 1


def test_compiled_sparse_linkage_ignores_nan_and_self_edges():
    from profiling.classes import sparse_average_linkage

    members = np.arange(4)
    i = np.array([0, 0, 2, 3])
    j = np.array([1, 0, 3, 1])
    d = np.array([0.1, 0.0, 0.2, np.nan])
    assert sparse_average_linkage(members, i, j, d, 0.5).tolist() == [1, 1, 2, 2]
