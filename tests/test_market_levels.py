"""Supply levels: accuracy against known truth, reasons, refitting, chemical-class evidence,
storage in the library and use by the returns."""

import json
import stat

import numpy as np
import pandas as pd
import pytest

from profiling.errors import InputError
from profiling.library import read_frame, replace_groups, write_frame, write_lock
from profiling.market.levels import (
    LevelModel,
    confusion,
    fit,
    infer,
    read_known,
    run_levels,
)
from profiling.market.seizures import seizure_table

from .conftest import run_cli
from .market_synthetic import market, write_records


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("levels")
    records, truth = market(1500, seed=11)
    lib = write_records(d / "lib.h5", records)
    truth.to_csv(d / "truth.csv", index=False)
    return d, lib, records, truth


def _truth_of(seizures, truth):
    return pd.Series(truth["level"].to_numpy(), index=truth["seizure_id"]).loc[
        seizures["seizure_id"]].to_numpy()


def test_default_model_finds_the_level_of_most_seizures_of_every_level(synthetic):
    _, _, records, truth = synthetic
    s = seizure_table(records)
    res = infer(s, LevelModel.default())
    c = confusion(_truth_of(s, truth), res.level)
    assert c["accuracy"] >= 0.9
    assert all(r >= 0.85 for r in c["recall"].values())
    assert np.allclose(res.proba.sum(axis=1), 1.0)
    # every answer carries its reasons, naming the evidence and the levels it favours
    assert all("favours" in r for r in res.reasons)


def test_reasons_name_the_evidence_that_drove_an_import_seizure(synthetic):
    _, _, records, _ = synthetic
    s = seizure_table(records)
    res = infer(s, LevelModel.default())
    frame = res.frame()
    border = frame[(frame["seizure_type"] == "border") & (frame["level"] == 3)].iloc[0]
    assert "border seizure (favours 3" in border["reasons"]
    assert "kg in total" in border["reasons"]
    assert border["p_level3"] > 0.9


def test_refit_on_known_levels_recovers_the_data_and_keeps_unseen_levels_at_the_defaults(synthetic):
    _, _, records, truth = synthetic
    s = seizure_table(records)
    known = pd.Series(truth["level"].to_numpy(), index=truth["seizure_id"])
    model = fit(s, known)
    # fitted means are the sample means of log10 weight at each level
    lw = np.log10(s["weight_g"].to_numpy())
    y = _truth_of(s, truth)
    for k in (1, 2, 3):
        assert model.log10_g_mean[k - 1] == pytest.approx(lw[y == k].mean())
    assert model.fitted_on == {str(k): int((y == k).sum()) for k in (1, 2, 3)}
    # a level never seen keeps the default parameters
    only12 = known[known < 3]
    partial = fit(s, only12)
    default = LevelModel.default()
    assert partial.log10_g_mean[2] == default.log10_g_mean[2]
    assert partial.purity_sd[2] == default.purity_sd[2]


def test_known_levels_are_read_from_a_column_or_a_file(synthetic, tmp_path):
    d, _, records, truth = synthetic
    attrs = pd.DataFrame({"true_level": records["seizure_id"].map(
        dict(zip(truth["seizure_id"], truth["level"].astype(str)))).to_numpy()})
    attrs.loc[0, "true_level"] = ""          # unknown stays unknown
    from_column = read_known("True Level", records, attrs)
    from_file = read_known(d / "truth.csv", records, pd.DataFrame(index=records.index))
    assert len(from_file) == len(truth)
    assert from_column.loc[truth["seizure_id"][5]] == truth["level"][5]
    with pytest.raises(InputError, match="neither a column"):
        read_known("no_such_column", records, attrs)


def test_chemical_classes_carry_the_route_into_the_reasons(tmp_path):
    records, truth = market(400, seed=5)
    lib = write_records(tmp_path / "lib.h5", records)
    # one class per import seizure, holding it and a few street seizures
    s = seizure_table(records)
    lv = _truth_of(s, truth)
    imports = s["seizure_id"][lv == 3].to_numpy()
    street = s["seizure_id"][lv == 1].to_numpy()
    rows = []
    for i, imp in enumerate(imports[:5]):
        members = [imp, *street[3 * i:3 * i + 3]]
        for sid in members:
            for e in records.loc[records["seizure_id"] == sid, "exhibit_id"]:
                rows.append((e, f"C{i}"))
    classes = pd.DataFrame(rows, columns=["exhibit_id", "class_id"])
    with write_lock(lib):
        replace_groups(lib, {"classes": lambda g: write_frame(g, classes)})
    run = run_levels(lib, tmp_path / "out")
    assert run.summary["classes_used"] is True
    t = run.table.set_index("seizure_id")
    reasons = t.loc[street[0], "reasons"]
    assert "chemical class C0" in reasons and imports[0] in reasons
    assert t.loc[street[0], "level"] == 1


def test_levels_command_writes_outputs_stores_them_and_returns_use_them(synthetic, tmp_path):
    d, lib, _, truth = synthetic
    out = tmp_path / "lv"
    r = run_cli("levels", str(lib), "--out", str(out), "--fit-known", str(d / "truth.csv"))
    assert r.returncode == 0, r.stderr
    assert "refitted cross validated: right for" in r.stdout
    table = pd.read_csv(out / "levels.csv", dtype={"seizure_id": str})
    assert list(table.columns[:6]) == ["seizure_id", "p_level1", "p_level2", "p_level3",
                                       "level", "reasons"]
    assert table["seizure_id"].is_unique and len(table) == len(truth)
    summary = json.loads((out / "levels.json").read_text())
    cv = summary["checks"]["refitted_cross_validated"]
    assert cv["accuracy"] >= 0.9 and min(cv["recall"].values()) >= 0.85
    html = (out / "levels.html").read_text()
    assert "Confusion matrix" in html and "predicted 3" in html
    for f in ("levels.csv", "levels.json", "levels.html"):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o600
    stored = read_frame(lib, "levels")
    assert list(stored.columns) == ["seizure_id", "p_level1", "p_level2", "p_level3", "level"]
    assert stored["level"].tolist() == table["level"].tolist()
    ret = run_cli("returns", str(lib), "--from", "2024-04", "--to", "2025-03", "--period", "year",
                  "--levels", str(out / "levels.csv"), "--out", str(tmp_path / "ret"))
    assert ret.returncode == 0, ret.stderr
    one = tmp_path / "ret" / "testshire_police_2024_25.csv"
    levels_seen = set(pd.read_csv(one, dtype=str)["level"])
    assert {"1", "2", "3"} <= levels_seen


def test_levels_of_an_export_and_bad_input(tmp_path):
    from .market_synthetic import export_csv

    records, _ = market(60, seed=2)
    export = export_csv(tmp_path / "export.csv", records)
    r = run_cli("levels", str(export), "--out", str(tmp_path / "o"), "--json")
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert payload["seizures"] == records["seizure_id"].nunique()
    bad = run_cli("levels", str(export), "--out", str(tmp_path / "o"), "--fit-known", "nope")
    assert bad.returncode == 2
    assert bad.stderr.startswith("profile: error:") and len(bad.stderr.strip().splitlines()) == 1
