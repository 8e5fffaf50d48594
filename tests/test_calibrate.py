"""Calibration: population rules against brute force, thresholds, Cllr, LR models."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from profiling.calibrate import (
    PopulationRule,
    auc,
    build_population,
    cllr,
    cllr_min,
    fit_lr,
    threshold_at_fpr,
)


def fixture_records():
    """Hand-built: 6 seizures of sizes 3, 2, 1, 1, 12, 1; routes and areas, some missing."""
    seizures = ["A"] * 3 + ["B"] * 2 + ["C", "D"] + ["E"] * 12 + ["F", ""]
    route = ["x", "x", "y", "y", "y", "x", "", "z", "z", "z", "x", "x", "x", "y", "y", "y", "z",
             "z", "x", "y", "x"]
    area = ["N", "N", "N", "S", "S", "N", "S", "E", "E", "E", "E", "E", "E", "E", "E", "E", "E",
            "E", "S", "N", ""]
    return pd.DataFrame({"seizure_id": seizures, "route": route, "area": area})


def brute_force(rec, rule, linked_same=(), unlinked_differ=()):
    size = rec["seizure_id"].value_counts()
    linked, unlinked = [], []
    for i, j in itertools.combinations(range(len(rec)), 2):
        a, b = rec.iloc[i], rec.iloc[j]
        cols = [*linked_same, *unlinked_differ]
        if a.seizure_id == "" or b.seizure_id == "" or any(a[c] == "" or b[c] == "" for c in cols):
            continue
        if a.seizure_id == b.seizure_id:
            if rule == "R2" and not 2 <= size[a.seizure_id] <= 10:
                continue
            if all(a[c] == b[c] for c in linked_same):
                linked.append((i, j))
        else:
            if rule == "R2" and (size[a.seizure_id] != 1 or size[b.seizure_id] != 1):
                continue
            if all(a[c] != b[c] for c in unlinked_differ):
                unlinked.append((i, j))
    return linked, unlinked


@pytest.mark.parametrize("rule,same,differ", [
    ("R1", (), ()), ("R2", (), ()), ("R1", ("route",), ()), ("R1", (), ("route", "area")),
    ("R2", ("route",), ("area",)),
])
def test_population_rules_match_brute_force_counts_and_auc(rule, same, differ):
    rec = fixture_records()
    rng = np.random.default_rng(1)
    X = rng.lognormal(0, 1, (len(rec), 6))
    pop = build_population(rec, PopulationRule(rule, same, differ))
    linked, unlinked = brute_force(rec, rule, same, differ)
    assert list(zip(pop.linked_i.tolist(), pop.linked_j.tolist())) == linked
    assert sorted(zip(pop.unlinked_i.tolist(), pop.unlinked_j.tolist())) == unlinked
    assert (pop.n_linked, pop.n_unlinked, pop.sampled) == (len(linked), len(unlinked), False)
    D = cdist(X, X, "canberra")
    d_l = np.array([D[i, j] for i, j in linked])
    d_u = np.array([D[i, j] for i, j in unlinked])
    if len(d_l) and len(d_u):
        expected = roc_auc_score(np.r_[np.ones(len(d_l)), np.zeros(len(d_u))], -np.r_[d_l, d_u])
        assert auc(D[pop.linked_i, pop.linked_j], D[pop.unlinked_i, pop.unlinked_j]) == pytest.approx(expected, abs=1e-12)


def test_large_unlinked_population_is_sampled_uniformly_and_counted_exactly():
    n = 3000
    rec = pd.DataFrame({"seizure_id": [f"S{i // 2}" for i in range(n)],
                        "area": [f"A{i % 7}" for i in range(n)]})
    pop = build_population(rec, PopulationRule("R1", (), ("area",), max_unlinked=50_000, seed=4))
    # exact count: pairs differing on seizure and area, by direct counting
    seiz = np.arange(n) // 2
    area = np.arange(n) % 7
    agree_area = sum(c * (c - 1) // 2 for c in np.bincount(area))
    same_seiz = n // 2
    both = sum(1 for k in range(n // 2) if area[2 * k] == area[2 * k + 1])
    assert pop.n_unlinked == n * (n - 1) // 2 - agree_area - same_seiz + both
    assert pop.sampled and pop.n_unlinked_used == 50_000
    i, j = pop.unlinked_i, pop.unlinked_j
    assert (i < j).all() and (seiz[i] != seiz[j]).all() and (area[i] != area[j]).all()
    assert len(set(zip(i.tolist(), j.tolist()))) == 50_000
    again = build_population(rec, PopulationRule("R1", (), ("area",), max_unlinked=50_000, seed=4))
    assert np.array_equal(again.unlinked_i, i) and np.array_equal(again.unlinked_j, j)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=40),
       st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=200),
       st.floats(0, 0.5))
def test_threshold_keeps_at_most_the_target_false_positive_rate(linked, unlinked, fpr):
    t = threshold_at_fpr(np.array(linked), np.array(unlinked), fpr)
    u = np.array(unlinked)
    assert np.mean(u <= t.distance) <= fpr + 1e-12
    assert t.fpr == np.mean(u <= t.distance)
    assert t.fnr == np.mean(np.array(linked) > t.distance)
    # maximal: the next larger unlinked distance would break the target
    above = u[u > t.distance]
    if len(above):
        assert np.mean(u <= above.min()) > fpr


def test_cllr_values():
    assert cllr(np.array([0.0]), np.array([0.0])) == pytest.approx(1.0)
    assert cllr(np.array([6.0, 8.0]), np.array([-7.0])) < 1e-5
    rng = np.random.default_rng(0)
    lk, uk = rng.normal(0.1, 0.05, 500), rng.normal(0.5, 0.1, 5000)
    assert 0 <= cllr_min(lk, uk) < 0.2
    same = rng.normal(0, 1, 400)
    assert cllr_min(same[:200], same[200:]) > 0.8          # uninformative score


@pytest.mark.parametrize("kind", ["logistic", "kde"])
def test_lr_models_are_calibrated_and_bounded(kind):
    rng = np.random.default_rng(2)
    lk, uk = rng.normal(0.1, 0.05, 2000), rng.normal(0.5, 0.1, 20000)
    model = fit_lr(lk, uk, kind)
    d = np.linspace(0, 1, 50)
    lr = model.log10_lr(d)
    lo, hi = model.params["bounds"]
    assert (lr >= lo).all() and (lr <= hi).all()
    assert lr[0] > 2 and lr[-1] < -2
    # calibrated: Cllr of the model's LRs close to the PAV optimum
    c = cllr(model.log10_lr(lk), model.log10_lr(uk))
    assert c < cllr_min(lk, uk) + 0.05
    assert np.isnan(model.log10_lr(np.array([np.nan]))).sum() == 0
