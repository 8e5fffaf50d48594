"""Chemical classes as library entities (profiling.link.classes): exact average linkage through
class sums, against scipy; build on a sample equals the exact build on separated groups; stable
ids; cutting groups inside classes."""

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import cdist, pdist
from sklearn.metrics import adjusted_rand_score

from profiling.link import classes as cl
from profiling.link.engine import stable_ids
from profiling.link.layers import subgroups


def blobs(seed, groups=6, per=40, spread=0.05, d=12):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (groups, d))
    X = np.vstack([c + rng.normal(0, spread, (per, d)) for c in centres])
    return cl.unit_rows(X, "cosine"), np.repeat(np.arange(groups), per)


def test_distance_to_a_class_is_the_mean_cosine_distance_to_its_members():
    Z, truth = blobs(1)
    count, sums = cl.sums_of(Z, truth, truth.max() + 1)
    model = cl.ClassModel([str(k) for k in range(len(count))], count, sums, 0.1, 1)
    q = cl.unit_rows(np.random.default_rng(2).normal(0, 1, (25, Z.shape[1])), "cosine")
    best, dist = model.distances_to(q)
    brute = np.stack([cdist(q, Z[truth == k], "cosine").mean(axis=1)
                      for k in range(len(count))], axis=1)
    np.testing.assert_allclose(dist, brute.min(axis=1), atol=1e-12)
    assert (best == brute.argmin(axis=1)).all()


@pytest.mark.parametrize("seed,cut", [(3, 0.05), (4, 0.2), (5, 0.6), (6, 1.0)])
def test_merging_classes_through_their_sums_is_scipys_average_linkage(seed, cut):
    rng = np.random.default_rng(seed)
    Z = cl.unit_rows(rng.normal(0, 1, (60, 5)) + np.repeat(rng.normal(0, 2, (6, 5)), 10, axis=0),
                     "cosine")
    into, merges = cl.merge_close(np.ones(len(Z), np.int64), Z.copy(), cut, min_size=1)
    ours = cl.renumber(into)
    ref = fcluster(linkage(pdist(Z, "cosine"), "average"), t=cut, criterion="distance")
    assert adjusted_rand_score(ref, ours) == pytest.approx(1.0)
    assert all(d <= cut for _, _, d in merges)


def test_exact_build_equals_scipy_average_linkage():
    Z, _ = blobs(7, groups=5, per=30, spread=0.3)
    ours = cl.build(Z, 0.15)
    ref = fcluster(linkage(pdist(Z, "cosine"), "average"), t=0.15, criterion="distance")
    assert adjusted_rand_score(ref, ours) == pytest.approx(1.0)


def test_build_on_a_sample_finds_the_groups_the_exact_build_finds():
    Z, truth = blobs(8, groups=12, per=150, spread=0.08)
    sampled = cl.build(Z, 0.1, sample=300)           # 6 rounds' worth of assignment
    exact = cl.build(Z, 0.1)
    assert adjusted_rand_score(truth, exact) == pytest.approx(1.0)
    assert adjusted_rand_score(exact, sampled) == pytest.approx(1.0)


def test_build_is_deterministic_and_numbered_by_first_member():
    Z, _ = blobs(9)
    a, b = cl.build(Z, 0.1, sample=100), cl.build(Z, 0.1, sample=100)
    assert (a == b).all()
    firsts = [int(np.flatnonzero(a == k)[0]) for k in range(a.max() + 1)]
    assert firsts == sorted(firsts)


def test_choose_cut_lands_between_the_groups_scale_and_their_separation():
    Z, truth = blobs(10, groups=8, per=60, spread=0.05)
    within = pdist(Z[truth == 0], "cosine").max()
    cut, info = cl.choose_cut(Z)
    lab = cl.build(Z, cut)
    assert adjusted_rand_score(truth, lab) == pytest.approx(1.0)
    assert cut >= within / 2 and "silhouette" in info["class_cut_source"]


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
