"""`profile market`: cells against pandas, the hedonic fit against numpy lstsq, seeded
bootstraps, trends, availability, small-numbers and emerging-market warnings, empty and
degenerate data."""

import json
import stat

import numpy as np
import pandas as pd
import pytest

from profiling.errors import InputError
from profiling.market.prices import market_table, run_market
from profiling.market.trends import availability

from .conftest import run_cli
from .market_synthetic import blank_records, market, write_records

TREND = {"North": -0.02, "South": 0.02}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("market")
    records, _ = market(2500, seed=4, trend=TREND)
    month = pd.to_datetime(records["seized_on"]).dt.strftime("%Y-%m")
    records = records[month != "2025-01"].reset_index(drop=True)      # an empty period
    quiet = records[records["area"] == "West"].head(30).copy()       # an area with no prices
    quiet["area"] = "Quiet"
    quiet["price_gbp"] = np.nan
    quiet["seizure_type"] = "stop_search"
    quiet["exhibit_id"] = "Q" + quiet["exhibit_id"]
    quiet["seizure_id"] = "Q" + quiet["seizure_id"]
    records = pd.concat([records, quiet], ignore_index=True)
    lib = write_records(d / "lib.h5", records)
    out = d / "out"
    run = run_market(lib, out, period="month")
    return records, lib, out, run


def _oracle_design(records):
    r = records[records["drug"] == "crack_cocaine"]
    ok = (r["price_gbp"] > 0) & (r["purity"] > 0)
    r = r[ok]
    period = pd.to_datetime(r["seized_on"]).dt.strftime("%Y-%m")
    X = pd.concat([
        pd.Series(1.0, index=r.index, name="const"),
        np.log(r["weight_before_g"]).rename("lq"), np.log(r["purity"]).rename("lp"),
        pd.get_dummies(r["area"], prefix="a", drop_first=True, dtype=float),
        pd.get_dummies(period, prefix="p", drop_first=True, dtype=float)], axis=1)
    return X, np.log(r["price_gbp"].to_numpy())


def test_hedonic_fit_equals_numpy_lstsq(data):
    records, _, _, _ = data
    _, h, _ = market_table(records, "area", "month", "crack_cocaine")
    X, y = _oracle_design(records)
    beta, *_ = np.linalg.lstsq(X.to_numpy(), y, rcond=None)
    coef = dict(zip(X.columns, beta))
    assert h.n == len(y)
    assert abs(h.coef["log_quantity"] - coef["lq"]) < 1e-8
    assert abs(h.coef["log_purity"] - coef["lp"]) < 1e-8
    assert abs(h.coef["intercept"] - coef["const"]) < 1e-8
    for name, v in coef.items():
        if name.startswith("a_"):
            assert abs(h.coef[f"area:{name[2:]}"] - v) < 1e-8
        if name.startswith("p_"):
            assert abs(h.coef[f"period:{name[2:]}"] - v) < 1e-8
    resid = y - X.to_numpy() @ beta
    assert h.r2 == pytest.approx(1 - resid @ resid / ((y - y.mean()) ** 2).sum(), abs=1e-10)


def test_cells_match_pandas_and_counts_stand_beside_rates(data):
    records, _, out, _ = data
    table = pd.read_csv(out / "market.csv")
    assert list(table.columns[:10]) == ["area", "period", "n_seizures", "n_priced",
                                        "median_price_per_g", "median_price_per_rock",
                                        "median_purity", "price_per_pure_g",
                                        "price_per_pure_g_lo", "price_per_pure_g_hi"]
    r = records[(records["drug"] == "crack_cocaine") & (records["area"] == "North")]
    r = r[pd.to_datetime(r["seized_on"]).dt.strftime("%Y-%m") == "2024-09"]
    from profiling.market.levels import levels_for
    lv, _ = levels_for(records, None)
    r = r[r["seizure_id"].map(lv) == 1]
    cell = table[(table["area"] == "North") & (table["period"] == "2024-09")].iloc[0]
    priced = r[r["price_gbp"] > 0]
    assert cell["n_seizures"] == r["seizure_id"].nunique()
    assert cell["n_priced"] == len(priced)
    assert cell["median_price_per_g"] == pytest.approx(
        (priced["price_gbp"] / priced["weight_before_g"]).median())
    ppg = priced["price_gbp"] / (priced["weight_before_g"] * priced["purity"])
    assert cell["price_per_pure_g"] == pytest.approx(ppg.median())
    assert cell["price_per_pure_g_lo"] <= cell["price_per_pure_g"] <= cell["price_per_pure_g_hi"]
    assert cell["median_purity"] == pytest.approx(r["purity"].median())
    assert cell["purity_q1"] == pytest.approx(r["purity"].quantile(0.25))
    assert cell["n_purity"] == r["purity"].notna().sum()


def test_outputs_are_deterministic_and_owner_only(data, tmp_path):
    _, lib, out, _ = data
    again = tmp_path / "again"
    run_market(lib, again, period="month")
    for f in ("market.csv", "trends.csv", "hedonic.json", "emerging.csv"):
        assert (out / f).read_bytes() == (again / f).read_bytes(), f
        assert stat.S_IMODE((again / f).stat().st_mode) == 0o600
    hed = json.loads((out / "hedonic.json").read_text())
    assert {"log_quantity", "log_purity", "n", "r2"} <= set(hed)


def test_empty_period_and_area_without_prices_give_warnings_not_nan(data):
    _, _, out, run = data
    table = run.table
    empty = table[table["period"] == "2025-01"]
    assert len(empty) == table["area"].nunique() and (empty["n_seizures"] == 0).all()
    assert all(w == "no_prices;no_purity;no_seizures" for w in empty["warnings"])
    quiet = table[table["area"] == "Quiet"]
    assert (quiet["n_priced"] == 0).all() and quiet["warnings"].str.contains("no_prices").all()
    text = (out / "market.csv").read_text()
    assert "nan" not in text.lower()
    html = (out / "market.html").read_text()
    assert "No median price per pure gram for: Quiet" in html
    assert "No expected price of the standard deal for: Quiet" in html
    assert ">nan<" not in html.lower()
    trend = run.trends[(run.trends["area"] == "Quiet") & (run.trends["measure"] == "price_per_g")]
    assert "no trend estimated" in trend["warning"].iloc[0]
    assert any("small numbers" in w for w in run.summary["warnings"])


def test_trend_sign_and_size_are_recovered_within_the_interval(data):
    _, _, _, run = data
    t = run.trends[run.trends["measure"] == "price_per_g"].set_index("area")
    for area, truth in TREND.items():
        row = t.loc[area]
        assert row["slope_lo"] <= truth <= row["slope_hi"], (area, row.to_dict())
        assert np.sign(row["slope_per_month"]) == np.sign(truth)
        assert row["p_value"] < 0.05 and row["n"] > 0
    flat = t.loc["East"]
    assert flat["slope_lo"] <= 0 <= flat["slope_hi"]


def test_availability_rises_when_price_falls_and_seizures_rise():
    table = pd.DataFrame({"area": ["A"] * 3, "price_per_pure_g": [100.0, 100.0, 80.0],
                          "median_purity": [0.3, 0.3, 0.3], "n_seizures": [10, 10, 20]})
    a = availability(table)
    assert a[0] == pytest.approx(0.0) and a[2] > 0.2
    table.loc[2, ["price_per_pure_g", "median_purity"]] = np.nan
    assert np.isfinite(availability(table)).all()        # counts alone still say something


def _emerging_records():
    rows = []
    rng = np.random.default_rng(0)
    for area, slope_n, slope_p in (("Newtown", 1.0, -0.03), ("Oldtown", 0.0, 0.0)):
        for m in range(24):
            for k in range(int(4 + slope_n * m)):
                rows.append((area, m, 20 / (60 * (1 + slope_p) ** m) * np.exp(rng.normal(0, 0.03))))
    r = blank_records(len(rows))
    r["exhibit_id"] = [f"E{i}" for i in range(len(rows))]
    r["seizure_id"] = r["exhibit_id"]
    r["area"] = [a for a, _, _ in rows]
    r["force"] = "F"
    r["seized_on"] = [np.datetime64("2024-04-10") + np.timedelta64(int(m * 30.4), "D")
                      for _, m, _ in rows]
    r["drug"] = "crack_cocaine"
    r["seizure_type"] = "test_purchase"
    r["weight_before_g"] = [w for _, _, w in rows]
    r["rock_count"] = 1
    r["purity"] = 0.35
    r["price_gbp"] = 20.0
    return r


def _no_nan(name):
    raise AssertionError(f"{name} in JSON output")


def test_emerging_market_warning_flags_rising_seizures_with_falling_prices(tmp_path):
    lib = write_records(tmp_path / "lib.h5", _emerging_records())
    r = run_cli("market", str(lib), "--out", str(tmp_path / "o"), "--json")
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout, parse_constant=_no_nan)
    flagged = {e["area"]: e for e in payload["emerging"]}
    assert set(flagged) == {"Newtown"}
    ev = flagged["Newtown"]["evidence"]
    assert "seizures +" in ev and "price per g -" in ev and "priced purchases" in ev
    csv = pd.read_csv(tmp_path / "o" / "emerging.csv")
    assert csv["area"].tolist() == ["Newtown"]
    assert "Emerging-market warnings" in (tmp_path / "o" / "market.html").read_text()


def test_single_observation_and_hostile_names(tmp_path):
    r = blank_records(1)
    r["exhibit_id"] = "E1"
    r["seizure_id"] = "=HYPERLINK(1)"
    r["area"] = "<script>alert(1)</script>"
    r["force"] = "F"
    r["seized_on"] = np.datetime64("2025-03-03")
    r["drug"] = "crack_cocaine"
    r["seizure_type"] = "test_purchase"
    r["weight_before_g"] = 0.2
    r["rock_count"] = 1
    r["purity"] = 0.3
    r["price_gbp"] = 20.0
    lib = write_records(tmp_path / "lib.h5", r)
    res = run_cli("market", str(lib), "--out", str(tmp_path / "m"))
    assert res.returncode == 0, res.stderr
    assert "warning:" in res.stdout
    html = (tmp_path / "m" / "market.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    hed = json.loads((tmp_path / "m" / "hedonic.json").read_text())
    assert hed["log_quantity"] is None and hed["n"] == 1 and "cannot be fitted" in hed["warning"]
    table = pd.read_csv(tmp_path / "m" / "market.csv")
    assert table["n_priced"].tolist() == [1] and table["price_per_pure_g"].iloc[0] == pytest.approx(20 / 0.06)
    from profiling.market.levels import run_levels

    run_levels(lib, tmp_path / "l")
    assert "'=HYPERLINK(1)" in (tmp_path / "l" / "levels.csv").read_text()
    assert "&lt;script&gt;" in (tmp_path / "l" / "levels.html").read_text()


def test_market_on_an_empty_range_and_bad_options(data, tmp_path):
    _, lib, _, _ = data
    run = run_market(lib, tmp_path / "e", period="quarter", first="2030-01", last="2030-02")
    assert any("small numbers or no data" in w for w in run.summary["warnings"])
    table = pd.read_csv(tmp_path / "e" / "market.csv")
    assert (table["n_seizures"] == 0).all() and set(table["period"]) == {"2029-30Q4"}
    bad = run_cli("market", str(lib), "--out", str(tmp_path / "b"), "--period", "week")
    assert bad.returncode == 2
    assert bad.stderr == "profile: error: --period must be month or quarter, not 'week'.\n"
    for kwargs in ({"by": "district"}, {"drug": "speed"}, {"level": "4"}, {"first": "2025-13"}):
        with pytest.raises(InputError):
            run_market(lib, tmp_path / "b", **kwargs)
