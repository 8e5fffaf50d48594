"""`profile evaluate`: the operation found in its area and not in a control area, displacement,
the placebo inference, degenerate data and bad input."""

import json
import stat

import numpy as np
import pandas as pd
import pytest

from profiling.errors import InputError
from profiling.market.evaluate import (
    count_gap,
    evaluate,
    linear_gap,
    poisson_irls,
    read_adjacency,
    run_evaluate,
)
from profiling.market.seizures import open_source

from .conftest import run_cli
from .market_synthetic import blank_records, market, write_records

OPERATION = {"area": "East", "start": "2025-06-02", "weeks": 8, "price_effect": 0.25,
             "rate_effect": 0.5}
END = "2025-07-27"
AREAS = ("North", "South", "East", "West", "Upton", "Downham")


@pytest.fixture(scope="module")
def operation(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    records, _ = market(6000, seed=21, areas=AREAS, trend={"North": -0.01, "West": 0.01},
                        operation=OPERATION)
    lib = write_records(d / "lib.h5", records)
    adjacency = d / "areas.csv"
    adjacency.write_text("# test geography\narea,adjacent\nEast,North\nNorth,East;West\n"
                         "West,North;South\nSouth,West;Upton\nUpton,Downham\n")
    return d, lib, adjacency


def test_adjacency_is_read_symmetric(operation):
    _, _, adjacency = operation
    adj = read_adjacency(adjacency)
    assert adj["East"] == {"North"} and adj["South"] == {"West", "Upton"}
    assert adj["Downham"] == {"Upton"}                        # made symmetric
    assert adj["North"] == {"East", "West"}
    assert "Brindley" in read_adjacency()["Ashcombe"]       # the bundled default


def test_operation_is_detected_in_its_area_with_displacement_measured(operation, tmp_path):
    _, lib, adjacency = operation
    out = tmp_path / "ev"
    r = run_cli("evaluate", str(lib), "--area", "East", "--start", OPERATION["start"], "--end",
                END, "--adjacency", str(adjacency), "--out", str(out))
    assert r.returncode == 0, r.stderr
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["area"] == "East" and ev["start"] == "2025-06-02" and ev["end"] == END
    assert ev["comparison"] == ["Downham", "South", "Upton", "West"]
    assert ev["adjacent"] == ["North"]
    for m in ("n_seizures", "price_per_g", "price_per_pure_g", "purity"):
        assert {"estimate", "lo", "hi", "p_value"} <= set(ev["effects"][m])
    price = ev["effects"]["price_per_g"]
    assert price["lo"] <= 0.25 <= price["hi"] and price["lo"] > 0 and price["p_value"] < 0.05
    # (+50 % seizures over 8 weeks in this small market is found in about 1 seed of 5: not
    # asserted here; test_market_simulated asserts it over seeds of a larger market)
    assert ev["effects"]["n_seizures"]["n_target_during"] > 0
    assert set(ev["displacement"]) == {"North"}
    assert {"price_per_g", "n_seizures"} <= set(ev["displacement"]["North"])
    assert "after" in price and price["n_target_after"] > 0
    weekly = pd.read_csv(out / "weekly.csv")
    assert set(weekly["role"]) == {"target", "comparison", "adjacent"}
    html = (out / "evaluation.html").read_text()
    assert "Before and after" in html and "Displacement into adjacent areas" in html
    for f in ("evaluation.json", "weekly.csv", "evaluation.html"):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o600
    assert "East price_per_g: +" in r.stdout


def test_over_seeds_price_effect_found_and_controls_quiet(operation, tmp_path):
    """Five markets: the +25 % price found in each; in the control areas (each judged against
    areas the operation did not touch) at most 15 % of the 5 % tests fire, and the interval
    leaves out 0 exactly when p < 0.05. (Set on 30 seeds: the price was found in all 30, and
    99.9 % of 2,000 random sets of 5 had at most 15 % of control tests firing.)"""
    *_, adjacency = operation
    controls = {"South": ["Downham", "Upton"], "Downham": ["South", "West"],
                "West": ["Upton", "Downham"], "Upton": ["West"]}
    tests, purity_covered = [], []
    for seed in range(21, 26):
        records, _ = market(6000, seed=seed, areas=AREAS, trend={"North": -0.01, "West": 0.01},
                            operation=OPERATION)
        src = open_source(write_records(tmp_path / f"lib{seed}.h5", records))
        ev = evaluate(src, "East", OPERATION["start"], END, adjacency=adjacency).evaluation
        price = ev["effects"]["price_per_g"]
        assert price["lo"] > 0 and price["p_value"] < 0.05, (seed, price)
        purity = ev["effects"]["purity"]
        purity_covered.append(purity["lo"] <= 0 <= purity["hi"])
        for area, compare in controls.items():
            effects = evaluate(src, area, OPERATION["start"], END, compare=compare,
                               adjacency=adjacency).evaluation["effects"]
            tests += [e for e in effects.values() if e["estimate"] is not None]
    assert sum(purity_covered) >= 4, purity_covered
    assert len(tests) == 5 * 4 * 4
    assert all((e["lo"] > 0 or e["hi"] < 0) == (e["p_value"] < 0.05) for e in tests)
    fired = [e for e in tests if e["p_value"] < 0.05]
    assert len(fired) <= 0.15 * len(tests), fired


def test_gaps_against_direct_computation():
    rng = np.random.default_rng(3)
    t = np.arange(60) / 4.0
    z = 0.5 + 0.02 * t + rng.normal(0, 0.1, 60)
    z[50:58] += 0.3
    base = np.arange(60) < 50
    window = (np.arange(60) >= 50) & (np.arange(60) < 58)
    gap, se = linear_gap(t, z, base, window, 3)
    b, a = np.polyfit(t[base], z[base], 1)
    assert gap == pytest.approx(np.mean(z[window] - (a + b * t[window])))
    assert 0.15 < gap < 0.45 and se > 0
    # Poisson with offset against a direct fit
    y = rng.poisson(np.exp(1.0 + 0.05 * t)).astype(float)
    X = np.column_stack([np.ones(50), t[:50]])
    beta, rank = poisson_irls(X, y[:50], np.zeros(50))
    assert rank == 2 and beta == pytest.approx([1.0, 0.05], abs=0.15)
    g, _ = count_gap(t, y, np.zeros(60), base, window, 3)
    expected = np.exp(beta[0] + beta[1] * t[window]).sum()
    assert g == pytest.approx(np.log(y[window].sum() / expected))


def test_degenerate_data_give_warnings_not_errors(tmp_path):
    # one area only, the operation at the very start (no baseline), no prices at all
    r = blank_records(3)
    r["exhibit_id"] = ["E1", "E2", "E3"]
    r["seizure_id"] = ["S1", "S2", "S3"]
    r["area"] = "Solo"
    r["force"] = "F"
    r["seized_on"] = np.array(["2025-01-06", "2025-01-08", "2025-03-01"], dtype="datetime64[s]")
    r["drug"] = "crack_cocaine"
    r["seizure_type"] = "stop_search"
    r["weight_before_g"] = 0.3
    r["purity"] = 0.3
    lib = write_records(tmp_path / "lib.h5", r)
    run = run_evaluate(lib, tmp_path / "o", "Solo", "2025-01-06")
    ev = run.evaluation
    assert ev["comparison"] == [] and ev["effects"]["price_per_g"]["estimate"] is None
    assert any("no comparison area" in w for w in ev["warnings"])
    assert any("not in the adjacency file" in w for w in ev["warnings"])
    assert all(e["estimate"] is None and e["warning"] for e in ev["effects"].values())
    html = (tmp_path / "o" / "evaluation.html").read_text()
    assert ">nan<" not in html.lower()
    json.loads((tmp_path / "o" / "evaluation.json").read_text())     # strict JSON, no NaN


def test_identical_prices_everywhere_give_no_effect_not_a_division_by_zero(tmp_path):
    # every purchase the same price, weight and purity: no spread, so gaps and standard errors
    # of rounding size (or exactly 0, which divided by zero)
    records, _ = market(n_seizures=300, seed=6, areas=("North", "South"), start="2025-01-01",
                        days=365)
    records["price_gbp"] = np.where(records["price_gbp"].notna(), 20.0, np.nan)
    records["weight_before_g"] = 0.2
    records["rock_count"] = 1
    records["purity"] = 0.3
    lib = write_records(tmp_path / "lib.h5", records)
    ev = run_evaluate(lib, tmp_path / "o", "North", "2025-07-01", level="all").evaluation
    for m in ("price_per_g", "price_per_pure_g", "purity"):
        e = ev["effects"][m]
        assert e["estimate"] == pytest.approx(0.0, abs=1e-9) and e["p_value"] == 1.0, m
    json.loads((tmp_path / "o" / "evaluation.json").read_text())


def test_bad_input_is_one_sentence_and_exit_code_2(operation, tmp_path):
    _, lib, _ = operation
    r = run_cli("evaluate", str(lib), "--area", "Atlantis", "--start", "2025-06-02",
                "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert r.stderr.startswith("profile: error: area 'Atlantis' has no seizures in the data")
    assert r.stderr.count("\n") == 1
    for kwargs, message in (({"start": "02/06/2025"}, "not an ISO date"),
                            ({"end": "2025-01-01"}, "before --start"),
                            ({"compare": ["Nowhere"]}, "have no seizures"),
                            ({"adjacency": tmp_path / "missing.csv"}, "cannot read adjacency")):
        args = {"start": "2025-06-02", **kwargs}
        with pytest.raises(InputError, match=message):
            run_evaluate(lib, tmp_path / "x", "East", args.pop("start"), **args)
    bad = tmp_path / "bad.csv"
    bad.write_text("zone,next\nA,B\n")
    with pytest.raises(InputError, match="needs the columns area and adjacent"):
        read_adjacency(bad)
