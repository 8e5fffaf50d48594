"""Classes and links against the simulator's truth, as rates over seeds and simulator settings
(issue 14). Small libraries here (2,000 exhibits, fast enough for CI); 20,000 and 200,000 are in
``benchmarks/link_truth.py`` with their figures in BENCHMARKS.md.

Baselines are independent implementations on the same class space: scikit-learn's HDBSCAN,
scipy's Ward and average linkage cut at the true number of batches; and a single Canberra
threshold tuned on the truth to precision 0.95."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

RUNS = [(seed, setting) for setting in ("default", "small_batches", "spread")
        for seed in (11, 12)]


def score(runs, tmp_path_factory):
    import link_truth

    rows = []
    for seed, setting in runs:
        tmp = tmp_path_factory.mktemp(f"truth-{setting}-{seed}")
        rows.append(link_truth.run_one(2000, seed, setting, tmp, 2000,
                                       link={"pretreatment": "sum_std", "metric": "cosine"}))
    return rows


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    return score(RUNS, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known gap (BENCHMARKS.md, Classes): when detection is "
                   "censored (LOQ x4) classes split batches (ARI 0.20-0.32 at 2,000, against "
                   "0.63-0.78 for the best baseline at the true number of batches); with 10 "
                   "compounds reported they come close (0.90-0.93 against 0.92-0.97)")
@pytest.mark.parametrize("setting", ["censored", "few_compounds"])
def test_classes_hold_when_detection_is_censored_or_compounds_few(tmp_path_factory, setting):
    rows = score([(1, setting), (2, setting)], tmp_path_factory)   # the seeds measured
    ari = np.array([r["ours_on_subsample"]["ari"] for r in rows])
    best = np.array([max(b["ari"] for b in r["baselines"].values()) for r in rows])
    precision = np.array([r["ours"]["precision"] for r in rows])
    assert precision.mean() >= 0.95 and ari.mean() >= best.mean(), (ari, best, precision)


def test_classes_are_precise_and_as_close_to_batches_as_the_best_baseline(scored):
    precision = np.array([r["ours"]["precision"] for r in scored])
    ari = np.array([r["ours_on_subsample"]["ari"] for r in scored])
    best = np.array([max(b["ari"] for b in r["baselines"].values()) for r in scored])
    assert precision.mean() >= 0.95, precision
    assert (precision >= 0.9).all(), precision
    assert ari.mean() >= best.mean(), (ari, best)


@pytest.mark.xfail(strict=True, reason="known gap (BENCHMARKS.md, Classes): in 2 of these 6 "
                   "runs the silhouette's number of classes is a few off and ARI falls "
                   "0.012-0.017 below the best baseline told the true number of batches")
def test_classes_are_as_close_as_the_best_baseline_in_most_runs(scored):
    ari = np.array([r["ours_on_subsample"]["ari"] for r in scored])
    best = np.array([max(b["ari"] for b in r["baselines"].values()) for r in scored])
    assert np.mean(ari >= best - 0.01) >= 0.75, (ari, best)


def test_links_are_precise_and_recall_beats_a_truth_tuned_canberra_threshold(scored):
    precision = np.array([r["links"]["precision"] for r in scored])
    recall = np.array([r["links"]["recall"] for r in scored])
    canberra = np.array([r["canberra"]["recall_at_p95"] for r in scored])
    assert precision.mean() >= 0.95 and (precision >= 0.9).all(), precision
    assert (recall >= canberra).all(), (recall, canberra)


def test_adventitious_links_per_exhibit_stay_near_the_figure_asked_for(scored):
    # different-class pairs within the threshold that are truly of different batches
    got = np.array([r["adventitious_per_exhibit"] for r in scored])
    asked = np.array([r["search"]["per_search"] for r in scored])
    assert got.mean() <= 3 * asked.mean(), (got, asked)


def test_same_cut_and_same_distribution_are_precise(scored):
    for r in scored:
        assert r["layers"]["same_cut"]["precision"] >= 0.9, r["layers"]
        assert r["layers"]["same_distribution"]["precision"] >= 0.9, r["layers"]


@pytest.mark.parametrize("seed", [21, 22])
def test_a_days_export_moves_at_most_one_percent_and_joins_the_right_classes(tmp_path, seed):
    """A library of 2,000, then the held-back last 60 rows as the day's export."""
    from profiling.ingest import ingest
    from profiling.link import run_link
    from profiling.simulate import simulate, write

    sim = simulate(2060, seed)
    files = write(sim, tmp_path / "sim")
    export = pd.read_csv(files["export"], dtype=str, keep_default_na=False)
    export.iloc[:-60].to_csv(tmp_path / "library.csv", index=False)
    export.iloc[-60:].to_csv(tmp_path / "day.csv", index=False)
    lib = tmp_path / "lib.h5"
    ingest([tmp_path / "library.csv"], lib, quarantine=tmp_path / "q.csv")
    first = run_link([], lib, tmp_path / "first", pretreatment="sum_std", metric="cosine")
    day = run_link([tmp_path / "day.csv"], lib, tmp_path / "day", pretreatment="sum_std",
                   metric="cosine")
    s = day.summary
    assert s["class_mode"] == "assign"
    assert s["moved_share"] <= 0.01, s
    # each new exhibit joined the class that holds most of its batch's library exhibits
    from profiling.link import read_classes

    truth = sim.profiles().set_index("exhibit_id")["batch"]
    stored = read_classes(lib)
    stored["batch"] = truth.reindex(stored["exhibit_id"]).to_numpy()
    new_ids = set(pd.read_csv(tmp_path / "day.csv", dtype=str)["exhibit_id"])
    is_new = stored["exhibit_id"].isin(new_ids)
    home = stored[~is_new].groupby("batch")["class_id"].agg(lambda c: c.mode().iloc[0])
    new = stored[is_new & stored["batch"].isin(home.index)]
    assert len(new) >= 30
    assert (new["class_id"].to_numpy() == home.reindex(new["batch"]).to_numpy()).mean() >= 0.95
    # the classes of the first run are still there, with the same members
    before = pd.read_csv(tmp_path / "first" / "classes.csv").set_index("exhibit_id")["class_id"]
    after = pd.read_csv(tmp_path / "day" / "classes.csv").set_index("exhibit_id")["class_id"]
    common = before.index.intersection(after.index)
    assert (before[common] == after[common]).mean() >= 0.99
    assert first.summary["class_mode"] == "build"


@pytest.mark.parametrize("seed", [23, 24])
def test_a_batch_the_library_has_never_seen_starts_a_class_of_its_own(tmp_path, seed):
    """Every exhibit of one import batch held back from a 2,000-exhibit library, then linked as
    the day's export: its exhibits start new classes instead of joining the nearest old one."""
    from profiling.ingest import ingest
    from profiling.link import read_classes, run_link
    from profiling.simulate import simulate, write

    sim = simulate(2000, seed)
    files = write(sim, tmp_path / "sim")
    export = pd.read_csv(files["export"], dtype=str, keep_default_na=False)
    batch = sim.profiles().set_index("exhibit_id")["batch"]
    sizes = batch.value_counts()
    held = sizes[(sizes >= 20) & (sizes <= 200)].index[0]
    is_held = export["exhibit_id"].map(batch).eq(held).to_numpy()
    export[~is_held].to_csv(tmp_path / "library.csv", index=False)
    export[is_held].to_csv(tmp_path / "day.csv", index=False)
    lib = tmp_path / "lib.h5"
    ingest([tmp_path / "library.csv"], lib, quarantine=tmp_path / "q.csv")
    run_link([], lib, tmp_path / "first", pretreatment="sum_std", metric="cosine")
    day = run_link([tmp_path / "day.csv"], lib, tmp_path / "day", pretreatment="sum_std",
                   metric="cosine")
    stored = read_classes(lib)
    new_ids = set(export.loc[is_held, "exhibit_id"])
    is_new = stored["exhibit_id"].isin(new_ids)
    old_classes = set(stored.loc[~is_new, "class_id"])
    new_rows = stored[is_new]
    assert len(new_rows) >= 15
    assert (~new_rows["class_id"].isin(old_classes)).mean() >= 0.9, \
        new_rows["class_id"].value_counts()
    assert day.summary["class_events"].get("new", 0) >= 1
    assert day.summary["moved_exhibits"] == 0
