"""Acceptance on simulator data (issue 6), over several simulator seeds: supply levels against
the simulator's truth, the injected price trends recovered within their intervals, and the
injected operation (+25 % price for 8 weeks, more seizures) found in its area and not in control
areas.

A 95 % interval misses the truth 5 % of the time and a 5 % test fires 5 % of the time, so no
single interval or test is asserted on its own: the assertions are rates over the seeds, with
margins that a method honest at its nominal level passes and one as overconfident as the
uncorrected methods were (84 % trend coverage, 21 % false trends; 27 % false effects with
independent-observation intervals) fails. The margins were set on 45 seeds: each assertion held
for at least 98.8 % of 2,000 random triples of them. ``benchmarks/market_coverage.py`` measures
the rates themselves over 60 seeds.

``PROFILE_MARKET_SEEDS=1,2,3`` runs the module on other seeds.
"""

import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from profiling.ingest import ingest
from profiling.market.evaluate import evaluate, read_adjacency, run_evaluate
from profiling.market.levels import run_levels
from profiling.market.prices import market
from profiling.market.seizures import open_source
from profiling.simulate import simulate, write

N_EXHIBITS = 40_000      # at 20,000 the +25 % price is missed in 1 seed of 9
SEEDS = tuple(int(s) for s in os.environ.get("PROFILE_MARKET_SEEDS", "7,8,9").split(","))
OPERATION = "Elderby:2025-06-02:8"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Per seed: (directory, library, simulator files, scenario)."""
    out = []
    for seed in SEEDS:
        d = tmp_path_factory.mktemp(f"simulated{seed}")
        files = write(simulate(N_EXHIBITS, seed, operation=OPERATION), d / "sim")
        lib = d / "lib.h5"
        ingest([files["export"]], lib, quarantine=d / "quarantine.csv", as_of=dt.date(2026, 6, 1))
        out.append((d, lib, files, json.loads(files["scenario"].read_text())))
    return out


@pytest.mark.parametrize("k", range(len(SEEDS)))
def test_supply_level_is_right_for_90_percent_and_85_percent_of_each_level(simulated, k):
    d, lib, files, _ = simulated[k]
    run = run_levels(lib, d / "levels", known=str(files["truth"]))
    check = run.summary["checks"]["default_model"]
    truth = pd.read_csv(files["truth"], dtype=str).drop_duplicates("seizure_id")
    assert check["n"] == len(truth)
    assert check["accuracy"] >= 0.90
    for level in ("1", "2", "3"):
        assert check["n_per_level"][level] > 0
        assert check["recall"][level] >= 0.85, (level, check)
    # the confusion matrix is in the report, with the counts
    html = (d / "levels" / "levels.html").read_text()
    m = np.array(check["matrix"])
    assert "Confusion matrix" in html and f"{m[0, 0]} of {m[0].sum()}" in html


@pytest.fixture(scope="module")
def trends(simulated):
    """trends.csv of every seed with the simulator's truth: the area's injected price trend for
    the price measures (purity has none, so price per pure gram follows price), 0 for purity
    and seizure counts (none injected)."""
    frames = []
    for k, (_, lib, _, scenario) in enumerate(simulated):
        t = market(open_source(lib)).trends
        injected = t["area"].map(scenario["price_trend_per_month"])
        truth = np.where(t["measure"].str.startswith("price"), injected, 0.0)
        frames.append(t.assign(seed=SEEDS[k], truth=np.where(t["area"] == "all", np.nan, truth)))
    return pd.concat(frames, ignore_index=True)


def test_market_trend_intervals_hold_the_injected_trends(trends, simulated):
    t = trends[trends["area"] != "all"]
    assert len(t) == 12 * 4 * len(SEEDS) and t["slope_lo"].notna().all()
    assert set(t["area"]) == set(simulated[0][3]["price_trend_per_month"])
    covered = (t["slope_lo"] <= t["truth"]) & (t["truth"] <= t["slope_hi"])
    # 95 % intervals: over 144 of them, at least 88 % (the uncorrected intervals held 84 %)
    assert covered.mean() >= 0.88, t.assign(covered=covered).groupby("measure")["covered"].mean()
    for _, g in t.assign(covered=covered).groupby("measure"):
        assert g["covered"].mean() >= 0.80, g
    # no trend injected in purity or seizure counts: few "significant" ones (21 % before)
    null = t[t["measure"].isin(["purity", "n_seizures"])]
    assert (null["p_value"] < 0.05).mean() <= 0.12


def test_market_detects_the_injected_price_trends_with_their_sign(trends):
    price = trends[trends["measure"] == "price_per_g"]
    significant = price[price["p_value"] < 0.05]
    # every significant price trend has the injected sign where the injected trend is at least
    # 0.2 % a month; most trends of 0.8 % a month or more are found
    clear = significant[significant["truth"].abs() >= 0.002]
    assert (np.sign(clear["slope_per_month"]) == np.sign(clear["truth"])).all(), clear
    strong = price[price["truth"].abs() >= 0.008]
    assert len(strong) >= 6 and (strong["p_value"] < 0.05).mean() >= 0.6, strong


def test_hedonic_index_follows_the_mean_injected_trend(trends, simulated):
    index = trends[(trends["area"] == "all") & (trends["measure"] == "standard_deal")]
    assert len(index) == len(SEEDS)
    for (_, row), (_, _, _, scenario) in zip(index.iterrows(), simulated):
        mean = float(np.mean(list(scenario["price_trend_per_month"].values())))
        # the index's path is the areas' common path: within 0.3 % a month of their mean trend
        assert abs(row["slope_per_month"] - mean) <= 0.003, (row, mean)
        if mean <= -0.004:
            assert row["slope_hi"] < 0


@pytest.fixture(scope="module")
def evaluations(simulated):
    """Per seed: the operation's area (with displacement, all outputs written) and the control
    areas — not touched by the operation, not next to an area it touched, judged against
    areas that it did not touch either."""
    out = []
    for d, lib, files, scenario in simulated:
        op = scenario["operation"]
        target = run_evaluate(lib, d / "ev", op["area"], op["start"], op["end"],
                              adjacency=files["areas"]).evaluation
        adjacency = read_adjacency(files["areas"])
        touched = {op["area"], *op["displaced_areas"]}
        controls = sorted(a for a in adjacency if a not in touched and not adjacency[a] & touched)
        src = open_source(lib)
        control = {}
        for c in controls:
            compare = [a for a in adjacency if a != c and a not in adjacency[c] and a not in touched]
            control[c] = evaluate(src, c, op["start"], op["end"], compare=compare,
                                  adjacency=files["areas"]).evaluation["effects"]
        out.append((op, target, control))
    return out


def test_operation_found_in_its_area(evaluations):
    seizure_logs, seizure_ses, covers = [], [], []
    for op, ev, _ in evaluations:
        assert set(ev["displacement"]) == set(op["displaced_areas"])
        price = ev["effects"]["price_per_g"]
        # +25 % for 8 weeks: found in every seed
        assert price["lo"] > 0 and price["p_value"] < 0.05, price
        covers.append(price["lo"] <= op["price_effect"] <= price["hi"])
        seizures = ev["effects"]["n_seizures"]
        covers.append(seizures["lo"] <= op["seizure_rate_effect"] <= seizures["hi"])
        seizure_logs.append(seizures["log_effect"])
        seizure_ses.append(seizures["se"])
    # 95 % intervals of the true effects: at most two misses in 2 x 3
    assert sum(covers) >= len(covers) - 2, covers
    # more seizures (+50 %): one seed's 8 weeks do not always show it (p < 0.05 in about 2 seeds
    # of 3); the seeds together do, at one-sided 5 %
    z = np.sum(seizure_logs) / np.sqrt(np.sum(np.square(seizure_ses)))
    assert z > stats.norm.ppf(0.95), (seizure_logs, seizure_ses)


def test_no_operation_found_in_control_areas(evaluations):
    tests = [e for _, _, control in evaluations for effects in control.values()
             for e in effects.values() if e["estimate"] is not None]
    assert len(tests) >= 4 * 4 * len(SEEDS) * 0.9
    # the interval leaves out 0 exactly when p < 0.05
    assert all((e["lo"] > 0 or e["hi"] < 0) == (e["p_value"] < 0.05) for e in tests)
    # 5 % tests: at most 15 % of them fire (intervals that ignored the weeks-long changes of
    # the market fired in 27 %)
    fired = [e for e in tests if e["p_value"] < 0.05]
    assert len(fired) <= 0.15 * len(tests), fired
