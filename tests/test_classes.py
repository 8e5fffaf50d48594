"""Chemical classes as library entities (profiling.link.classes): Ward's criterion exact through
class sums, against scipy; build on a sample equals the exact build on separated groups; stable
ids; cutting groups inside classes."""

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import cdist
from sklearn.metrics import adjusted_rand_score

from profiling.link import classes as cl
from profiling.link.engine import stable_ids
from profiling.link.layers import subgroups


def blobs(seed, groups=6, per=40, spread=0.05, d=12):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (groups, d))
    X = np.vstack([c + rng.normal(0, spread, (per, d)) for c in centres])
    return cl.unit_rows(X, "cosine"), np.repeat(np.arange(groups), per)


def _sse(X):
    return float(((X - X.mean(axis=0)) ** 2).sum()) if len(X) else 0.0


def test_cost_of_joining_a_class_is_the_rise_in_its_sum_of_squares():
    Z, truth = blobs(1)
    count, sums = cl.sums_of(Z, truth, truth.max() + 1)
    model = cl.ClassModel([str(k) for k in range(len(count))], count, sums, 0.1, 1)
    q = cl.unit_rows(np.random.default_rng(2).normal(0, 1, (25, Z.shape[1])), "cosine")
    best, cost = model.distances_to(q)
    brute = np.array([[_sse(np.vstack([Z[truth == k], x])) - _sse(Z[truth == k])
                       for k in range(len(count))] for x in q])
    np.testing.assert_allclose(cost, brute.min(axis=1), atol=1e-10)
    assert (best == brute.argmin(axis=1)).all()


def test_two_exhibits_cost_their_cosine_distance():
    Z, _ = blobs(2, groups=2, per=3)
    np.testing.assert_allclose(cl.merge_costs(np.ones(6), Z, np.ones(6), Z),
                               cdist(Z, Z, "cosine"), atol=1e-12)


@pytest.mark.parametrize("seed,cut", [(3, 0.05), (4, 0.2), (5, 0.6), (6, 3.0)])
def test_merging_classes_through_their_sums_is_scipys_ward_linkage(seed, cut):
    rng = np.random.default_rng(seed)
    Z = cl.unit_rows(rng.normal(0, 1, (60, 5)) + np.repeat(rng.normal(0, 2, (6, 5)), 10, axis=0),
                     "cosine")
    into, merges = cl.merge_close(np.ones(len(Z), np.int64), Z.copy(), cut)
    ours = cl.renumber(into)
    ref = fcluster(linkage(Z, "ward"), t=np.sqrt(2 * cut), criterion="distance")
    assert adjusted_rand_score(ref, ours) == pytest.approx(1.0)
    assert all(d <= cut for _, _, d in merges)
    # the recorded costs are scipy's heights (h^2 / 2), in the same order
    heights = np.sort(linkage(Z, "ward")[:, 2] ** 2 / 2)
    np.testing.assert_allclose(sorted(d for _, _, d in merges), heights[heights <= cut],
                               rtol=1e-9, atol=1e-12)


def test_exact_build_equals_scipy_ward_linkage():
    Z, _ = blobs(7, groups=5, per=30, spread=0.3)
    ours, cut, info = cl.build(Z, 0.4)
    ref = fcluster(linkage(Z, "ward"), t=np.sqrt(0.8), criterion="distance")
    assert adjusted_rand_score(ref, ours) == pytest.approx(1.0)
    assert cut == 0.4 and info["class_cut_source"] == "given"


def test_build_on_a_sample_finds_the_groups_the_exact_build_finds():
    Z, truth = blobs(8, groups=12, per=150, spread=0.08)
    sampled, _, _ = cl.build(Z, 0.5, sample=300)           # 6 rounds' worth of assignment
    exact, _, _ = cl.build(Z, 0.5)
    assert adjusted_rand_score(truth, exact) == pytest.approx(1.0)
    # the sampled build leaves each class's farthest members (beyond its reach) to a later round;
    # one of 1,800 may then end in a neighbouring group
    assert adjusted_rand_score(exact, sampled) >= 0.995
    assert len(np.unique(sampled)) == 12


def test_build_is_deterministic_and_numbered_by_first_member():
    Z, _ = blobs(9)
    a, _, _ = cl.build(Z, 0.5, sample=100)
    b, _, _ = cl.build(Z, 0.5, sample=100)
    assert (a == b).all()
    firsts = [int(np.flatnonzero(a == k)[0]) for k in range(a.max() + 1)]
    assert firsts == sorted(firsts)


@pytest.mark.parametrize("seed,groups", [(10, 8), (11, 15), (12, 30)])
def test_the_chosen_cut_finds_the_groups(seed, groups):
    Z, truth = blobs(seed, groups=groups, per=40, spread=0.05)
    lab, cut, info = cl.build(Z)
    assert adjusted_rand_score(truth, lab) == pytest.approx(1.0)
    assert "silhouette" in info["class_cut_source"] and f"of {groups} classes" in \
        info["class_cut_source"]
    # the cut lies between the groups' own merges and the first merge of two groups
    heights = np.sort(linkage(Z, "ward")[:, 2] ** 2 / 2)
    assert heights[-(groups - 1)] > cut >= heights[-groups]


def test_no_cut_below_the_floor():
    Z, _ = blobs(13, groups=6, per=40, spread=0.05)
    heights = np.sort(linkage(Z, "ward")[:, 2] ** 2 / 2)
    floor = heights[-3]                     # at most 3 classes allowed
    lab, cut, _ = cl.build(Z, floor=floor)
    assert cut >= floor and len(np.unique(lab)) <= 3


def test_ids_survive_growth_merges_and_splits():
    ids = [f"E{k}" for k in range(6)]
    labels = np.array([0, 0, 1, 1, 2, 3])
    first, events, nxt = stable_ids(ids, labels, {}, 1, "2026-01-01")
    assert first == ["C000001", "C000001", "C000002", "C000002", "C000003", "C000004"]
    assert [e["event"] for e in events] == ["new"] * 4 and nxt == 5
    prev = dict(zip(ids, first))
    again, events, nxt2 = stable_ids(ids, labels, prev, nxt, "2026-01-02")
    assert again == first and events == [] and nxt2 == nxt
    ids2 = ids + ["E6", "E7"]
    labels2 = np.array([0, 0, 1, 1, 1, 2, 0, 3])
    grown, events, nxt3 = stable_ids(ids2, labels2, prev, nxt, "2026-01-03")
    assert grown[2] == grown[3] == grown[4] == "C000002"        # larger part keeps its id
    assert grown[5] == "C000004" and grown[7] == "C000005"
    assert [(e["event"], e["class_id"], e["related"]) for e in events] == [
        ("merge", "C000002", "C000003"), ("new", "C000005", "")]
    prev2 = dict(zip(ids2, grown))
    labels3 = np.array([0, 0, 1, 1, 1, 2, 4, 3])
    split, events, _ = stable_ids(ids2, labels3, prev2, nxt3, "2026-01-04")
    assert split[0] == split[1] == "C000001" and split[6] == "C000006"
    assert [(e["event"], e["class_id"], e["related"]) for e in events] == [
        ("split", "C000006", "C000001")]


def test_subgroups_inside_classes():
    labels = np.array([0, 0, 0, 0, 1, 1])
    i = np.array([0, 1, 2, 4, 0])
    j = np.array([1, 2, 3, 5, 4])
    same = np.array([True, False, True, True, True])   # 0-4 crosses classes: ignored
    assert subgroups(labels, i, j, same).tolist() == [1, 1, 2, 2, 1, 1]


def test_spread_is_the_members_mean_squared_distance_to_their_centre():
    Z, truth = blobs(14, groups=4, per=50, spread=0.2)
    count, sums = cl.sums_of(Z, truth, 4)
    own = np.array([_sse(Z[truth == k]) / 50 for k in range(4)])
    prior = np.median(own)
    expected = (50 * own + cl.SPREAD_PRIOR * prior) / (50 + cl.SPREAD_PRIOR)
    expected = np.minimum(expected, np.quantile(own, cl.SPREAD_CAP))
    np.testing.assert_allclose(cl.spreads(count, sums), expected, rtol=1e-10)


def test_an_exhibit_of_no_class_joins_none_and_a_member_joins_its_own():
    Z, truth = blobs(15, groups=5, per=60, spread=0.05)
    count, sums = cl.sums_of(Z, truth, 5)
    factor = cl.reach(Z, truth, count, sums)
    # 99 % of members lie within the reach of their own class
    model = cl.ClassModel(list("abcde"), count, sums, 10.0, 6)
    ok = cl.joinable(model, Z, factor)
    assert ok[np.arange(len(Z)), truth].mean() >= 0.985
    # a new group far from all five: no class may take it, however generous the cut
    far = cl.unit_rows(np.random.default_rng(16).normal(0, 1, (20, Z.shape[1])), "cosine")
    assert not cl.joinable(model, far, factor).any()


def test_a_coarser_level_than_batches_is_not_taken_for_them():
    """Four origins of eight batches each: the silhouette alone prefers the origins; the lower
    bound on the number of classes (0.15 sqrt(N)) sends it to the batches."""
    rng = np.random.default_rng(17)
    origins = rng.normal(0, 3, (4, 12))
    centres = np.vstack([o + rng.normal(0, 0.5, (8, 12)) for o in origins])
    X = np.vstack([c + rng.normal(0, 0.12, (40, 12)) for c in centres])
    Z, truth = cl.unit_rows(X, "cosine"), np.repeat(np.arange(32), 40)
    tree = linkage(Z, "ward")
    unbounded, _ = cl.choose_cut(Z, tree=tree)
    assert len(np.unique(fcluster(tree, np.sqrt(2 * unbounded), "distance"))) == 4
    lab, _, info = cl.build(Z)
    assert adjusted_rand_score(truth, lab) >= 0.95, info
