"""The simulator: determinism, a truth consistent with the export and the model, linkage that is
neither trivial nor hopeless (scipy + scikit-learn as the oracle), and the ingest round trip."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist
from sklearn.metrics import roc_auc_score

from profiling.ingest.vocabulary import reference_path
from profiling.simulate import (
    Operation,
    OperationError,
    ParameterError,
    simulate,
    write,
)
from profiling.simulate.export import CANONICAL_FIELDS, QUARANTINE_REASONS
from profiling.simulate.vocabulary import load_vocabulary, normalise

PROFILE = shutil.which("profile") or str(Path(sys.executable).with_name("profile"))
VOCABULARY = load_vocabulary()


def run_profile(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real console command."""
    return subprocess.run(
        [PROFILE, *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def read_truth(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def messy_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("messy")
    done = run_profile("simulate", "--exhibits", "600", "--seed", "11", "--messy", "--out",
                       str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    write(simulate(1500, 5), out)
    return out


# --------------------------------------------------------------------------- determinism


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes_from_the_console_command(tmp_path, messy_dir):
    again = tmp_path / "again"
    done = run_profile("simulate", "--exhibits", "600", "--seed", "11", "--messy", "--out",
                       str(again), "--quiet")
    assert done.returncode == 0, done.stderr
    first, second = _files(messy_dir), _files(again)
    assert set(first) == {"export.csv", "truth.csv", "mapping.toml", "scenario.json", "areas.csv"}
    assert first == second


def test_same_seed_same_bytes_xlsx_and_operation(tmp_path):
    for name in ("a", "b"):
        sim = simulate(120, 3, messy=True, operation="Dunholt:2025-03-03:4")
        write(sim, tmp_path / name, xlsx=True)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert "export.csv" not in _files(tmp_path / "a")


def test_different_seed_different_export(tmp_path):
    write(simulate(200, 1, messy=True), tmp_path / "a")
    write(simulate(200, 2, messy=True), tmp_path / "b")
    for name in ("export.csv", "truth.csv", "scenario.json"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_xlsx_holds_the_same_cells_as_the_csv(tmp_path):
    from openpyxl import load_workbook

    sim = simulate(150, 4, messy=True)
    write(sim, tmp_path / "csv")
    write(sim, tmp_path / "xlsx", xlsx=True)
    rows = read_rows(tmp_path / "csv" / "export.csv")
    sheet = load_workbook(tmp_path / "xlsx" / "export.xlsx", read_only=True).active
    for want, got in zip(rows, sheet.iter_rows(values_only=True), strict=True):
        for w, g in zip(want, got, strict=True):
            if isinstance(g, (int, float)):
                assert float(w) == g
            else:
                assert w == (g or "")


# --------------------------------------------------------------------------- canonical export


def test_canonical_export_is_the_truth(clean_dir):
    rows = read_rows(clean_dir / "export.csv")
    truth = read_truth(clean_dir / "truth.csv")
    header = rows[0]
    assert header == CANONICAL_FIELDS + [f"p_{c}" for c in VOCABULARY.compounds]
    assert not (clean_dir / "mapping.toml").exists()
    assert len(rows) - 1 == len(truth) == 1500
    assert (truth.expected == "accepted").all() and (truth.expected_flags == "").all()
    export = pd.DataFrame(rows[1:], columns=header)
    for f in ["exhibit_id", "seizure_id", "force", "area", "seized_on", "analysed_on", "drug",
              "seizure_type", "weight_before_g", "weight_after_g", "rock_count", "adulterants",
              "packaging", "price_gbp"]:
        assert (export[f].to_numpy() == truth[f].to_numpy()).all(), f
    censored = truth.purity_censored != ""
    assert (export.purity[~censored] == truth.purity[~censored]).all()
    assert set(export.purity[censored]) <= {"trace", "<1%"}
    assert truth.line.astype(int).tolist() == list(range(2, len(truth) + 2))


# --------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def truth_frame(clean_dir) -> pd.DataFrame:
    t = read_truth(clean_dir / "truth.csv")
    for c in ("weight_before_g", "weight_after_g", "purity", "price_gbp"):
        t[c] = pd.to_numeric(t[c].replace("", np.nan))
    t["rock_count"] = pd.to_numeric(t.rock_count.replace("", np.nan))
    t["level"] = t.level.astype(int)
    return t


def test_levels_follow_quantity_and_purity(truth_frame):
    t = truth_frame
    weight = t.groupby("level").weight_before_g.median()
    purity = t.groupby("level").purity.median()
    assert weight[1] < 2 < weight[2] < 500 < weight[3]
    assert purity[1] < purity[2] < purity[3]
    assert 0.20 <= purity[1] <= 0.50  # DOMAIN: street purity about 20-50 %
    assert t.loc[t.level == 3, "purity"].between(0.55, 0.95).all()
    assert (t.loc[t.level == 3, "seizure_type"].isin(["border", "warrant"])).all()
    assert (t.loc[t.level == 1, "weight_before_g"] < 100).all()
    # Not trivial: the levels' weights overlap.
    assert t.loc[t.level == 1, "weight_before_g"].max() > t.loc[t.level == 2,
                                                                  "weight_before_g"].min()


def test_seizures_group_exhibits_of_one_source(truth_frame):
    t = truth_frame
    per = t.groupby("seizure_id")
    for column in ("level", "area", "force", "seized_on", "batch_id", "lot_id", "dealer_id",
                   "seizure_type"):
        assert (per[column].nunique() == 1).all(), column
    sizes = per.size()
    assert (sizes > 1).any() and sizes.max() <= 20
    levels = per["level"].first()
    assert sizes[levels == 3].mean() > sizes[levels == 1].mean()


def test_batch_lot_dealer_nesting(truth_frame):
    t = truth_frame
    assert (t[t.lot_id != ""].groupby("lot_id").batch_id.nunique() == 1).all()
    assert (t[t.dealer_id != ""].groupby("dealer_id").lot_id.nunique() == 1).all()
    assert (t.batch_id != "").all()
    street, middle, imports = t[t.level == 1], t[t.level == 2], t[t.level == 3]
    assert (street.dealer_id != "").all() and (street.lot_id != "").all()
    assert (middle.dealer_id == "").all() and (middle.lot_id != "").all()
    assert (imports.lot_id == "").all() and (imports.dealer_id == "").all()
    # A lot's cut is its own: every exhibit of a lot carries the same adulterant set.
    assert (t[t.lot_id != ""].groupby("lot_id").adulterants.nunique() == 1).all()
    # A dealer keeps his packaging.
    packed = street[street.packaging != ""]
    assert (packed.groupby("dealer_id").packaging.nunique() == 1).all()
    assert (imports.adulterants == "").all()


def test_prices_follow_rocks(truth_frame):
    t = truth_frame
    priced = t[t.price_gbp.notna()]
    assert len(priced) > 50
    assert (priced.seizure_type == "test_purchase").all() and (priced.level == 1).all()
    crack = priced[priced.drug == "crack_cocaine"]
    per_rock = crack.price_gbp / crack.rock_count
    assert set(per_rock.round(2)) <= {10.0, 20.0}
    assert (crack.groupby("dealer_id").price_gbp.apply(
        lambda p: p.div(crack.loc[p.index, "rock_count"]).nunique()) == 1).all()
    mean_rock = t.weight_before_g / t.rock_count
    street_rocks = mean_rock[(t.level == 1) & t.rock_count.notna()]
    assert street_rocks.between(0.06, 0.5).all()
    assert 0.1 <= street_rocks.median() <= 0.3  # issue 3: rocks of about 0.1-0.3 g


def test_analysis_consumes_a_little(truth_frame):
    t = truth_frame
    loss = t.weight_before_g - t.weight_after_g
    assert (loss >= 0).all()
    # Well inside the analysis-loss tolerance of evidence.toml, so no normal row is flagged.
    assert (loss <= 0.6 * np.maximum(0.1, 0.1 * t.weight_before_g)).all()
    seized = pd.to_datetime(t.seized_on)
    analysed = pd.to_datetime(t.analysed_on)
    assert (analysed > seized).all()
    assert analysed.max() < pd.Timestamp(dt.date.today())  # no accidental future_date


def test_scenario_records_the_injected_truth(tmp_path):
    sim = simulate(20000, 8, operation="Juniper Hill:2025-01-06:8", forces=4)
    write(sim, tmp_path)
    scenario = json.loads((tmp_path / "scenario.json").read_text())
    assert scenario["seed"] == 8 and len(scenario["forces"]) == 4
    assert len(scenario["areas"]) == 16
    op = scenario["operation"]
    assert op["area"] == "Juniper Hill" and op["start"] == "2025-01-06"
    assert op["end"] == "2025-03-02" and op["price_effect"] == 0.25
    assert set(op["displaced_areas"]) == {
        a["area"] for a in scenario["areas"] if "Juniper Hill" in a["adjacent"]
    }
    areas = pd.read_csv(tmp_path / "areas.csv", dtype=str, keep_default_na=False)
    assert set(areas.columns) >= {"area", "force", "adjacent"}
    assert areas.force.nunique() == 4
    # Price per gram of crack test purchases moves with the area's index: the areas' trends and
    # the operation's +25 % are in the data (log-linear fit per area, product form held fixed;
    # about 140 purchases an area, so each slope is known to a few tenths of a per cent).
    t = sim.truth()
    tp = t[(t.price_gbp != "") & (t.drug == "crack_cocaine") & (t.expected == "accepted")].copy()
    tp["log_ppg"] = np.log(tp.price_gbp.astype(float) / tp.weight_before_g.astype(float))
    tp["month"] = (pd.to_datetime(tp.seized_on) - pd.Timestamp("2024-04-01")).dt.days / 30.4375
    during = (tp.area == op["area"]) & tp.seized_on.between(op["start"], op["end"])
    fitted, injected = [], []
    for area, g in tp[~during].groupby("area"):
        fitted.append(np.expm1(np.polyfit(g.month, g.log_ppg, 1)[0]))
        injected.append(scenario["price_trend_per_month"][area])
    error = np.abs(np.subtract(fitted, injected))
    assert error.mean() < 0.004 and error.max() < 0.01
    assert np.corrcoef(fitted, injected)[0, 1] > 0.75
    g = tp[tp.area == op["area"]]
    level = g.log_ppg - np.log1p(scenario["price_trend_per_month"][op["area"]]) * g.month
    effect = np.expm1(level[during].median() - level[~during[g.index]].median())
    assert 0.1 < effect < 0.45
    # More seizures in the operation's area while it runs, and in the areas displaced into.
    seizures = t[t.level.isin(["1", "2"])].drop_duplicates("seizure_id")
    days = (dt.date(2025, 3, 2) - dt.date(2025, 1, 6)).days + 1

    def rate_change(area: str) -> float:
        s = seizures[seizures.area == area]
        inside = s.seized_on.between(op["start"], op["end"]).sum()
        return inside / days / ((len(s) - inside) / (731 - days)) - 1

    assert 0.2 < rate_change(op["area"]) < 0.9  # injected +50 %, about 90 seizures
    assert 0.05 < np.mean([rate_change(a) for a in op["displaced_areas"]]) < 0.45  # +20 %


def test_operation_and_parameters_are_checked():
    with pytest.raises(OperationError, match="not a simulated area"):
        simulate(50, 1, operation="Atlantis:2025-01-01:3")
    with pytest.raises(OperationError, match="outside the simulated period"):
        simulate(50, 1, operation="Dunholt:2027-01-01:3")
    with pytest.raises(OperationError):
        Operation.parse("Dunholt:yesterday:3")
    with pytest.raises(ParameterError, match="unknown simulation parameter"):
        simulate(50, 1, params={"purity": {"improt": [0.6, 0.9]}})
    with pytest.raises(ParameterError, match="not a adulterant"):
        simulate(50, 1, params={"adulterants": {"cut_tokens": {"talcum": 1.0}}})


def test_params_file_overrides_defaults(tmp_path):
    override = tmp_path / "p.toml"
    override.write_text(
        "[purity]\nimport = [0.95, 0.97]\n"
        "[adulterants]\ncount_weights = [1.0]\n[adulterants.cut_tokens]\nlidocaine = 1.0\n"
    )
    t = simulate(400, 2, params=override).truth()
    imports = t[t.level == "3"].purity.astype(float)
    assert imports.between(0.85, 0.99).all()
    cut = set(";".join(t[t.level != "3"].adulterants).split(";")) - {""}
    assert "lidocaine" in cut
    assert cut <= {"lidocaine", "mannitol", "lactose", "glucose", "inositol"}


def test_console_command_reports_errors_in_one_sentence(tmp_path):
    done = run_profile("simulate", "--exhibits", "10", "--out", str(tmp_path),
                       "--operation", "Atlantis:2025-01-01:3")
    assert done.returncode == 2
    assert done.stderr.startswith("profile: error: operation area 'Atlantis'")
    assert "Traceback" not in done.stderr
    done = run_profile("simulate", "--exhibits", "50", "--seed", "3", "--out",
                       str(tmp_path / "j"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["counts"]["exhibits"] == 50 and report["counts"]["rows"] == 50


# --------------------------------------------------------------------------- messy export


def test_messy_export_has_each_fault_flag_and_duplicate(messy_dir):
    truth = read_truth(messy_dir / "truth.csv")
    rows = read_rows(messy_dir / "export.csv")
    assert len(rows) - 1 == len(truth)
    assert set(truth.expected_reason[truth.expected == "quarantined"]) == set(QUARANTINE_REASONS)
    flags = set(";".join(truth.expected_flags).split(";")) - {""}
    assert flags == {"weight_gain", "analysis_loss", "rock_mass", "seized_after_analysed",
                     "future_date"}
    flagged = truth[truth.expected_flags != ""]
    assert (flagged.expected == "accepted").all()
    assert not flagged.expected_flags.str.contains(";").any()  # one injected flag per row
    dups = truth[truth.expected == "duplicate"]
    assert len(dups) >= 2
    for line, original in zip(dups.line.astype(int), dups.duplicate_of.astype(int)):
        assert original < line and rows[line - 1] == rows[original - 1]
    missing = truth[truth.expected_reason == "exhibit_id:missing"]
    assert (missing.exhibit_id == "").all()


def test_mapping_file_maps_every_header(messy_dir):
    mapping = tomllib.loads((messy_dir / "mapping.toml").read_text())
    header = read_rows(messy_dir / "export.csv")[0]
    assert set(mapping) == {"columns", "profile", "options"}
    assert mapping["options"] == {"date_order": "dmy", "weight_unit": "g",
                                  "purity_unit": "fraction"}
    assert set(mapping["columns"]) == set(CANONICAL_FIELDS)
    assert set(mapping["columns"].values()) | set(mapping["profile"]) == set(header)
    assert set(mapping["profile"].values()) == set(VOCABULARY.compounds)
    assert "%" not in mapping["columns"]["purity"]
    assert not set(header) & set(CANONICAL_FIELDS)


# An independent reader of the messy cells, written from the ingest contract, as the oracle that
# the export says what the truth says.

_UNITS = {"mg": 0.001, "g": 1.0, "kg": 1000.0, None: 1.0}


def _weight(cell: str) -> float:
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*(mg|g|kg)?", cell.strip())
    assert m, cell
    return float(m[1]) * _UNITS[m[2]]


def _purity(cell: str) -> tuple[float | None, str]:
    cell = cell.strip()
    if cell.lower() == "trace":
        return None, "trace"
    if cell == "<1%":
        return None, "below"
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(%?)", cell)
    assert m, cell
    value = float(m[1])
    return (value / 100 if m[2] or value > 1 else value), ""


def _date(cell: str) -> str:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", cell):
        return cell
    day, month, year = cell.split("/")
    return dt.date(int(year), int(month), int(day)).isoformat()


def _lookup(table: dict[str, list[str]]) -> dict[str, str]:
    return {normalise(s): token for token, spellings in table.items() for s in spellings}


def _adulterants(cell: str) -> str:
    if normalise(cell) in {normalise(p) for p in VOCABULARY.none_phrases}:
        return ""
    names = _lookup(VOCABULARY.adulterants)
    parts = [re.sub(r"\(\s*[\d.]+\s*%\s*\)", "", p) for p in re.split(r"[,;/]", cell)]
    return ";".join(sorted(names[normalise(p)] for p in parts if p.strip()))


def _packaging(cell: str) -> str:
    phrases = {}
    for kind in VOCABULARY.packaging.values():
        phrases.update(_lookup(kind))
    fillers = {normalise(w) for w in VOCABULARY.packaging_fillers}
    words, tokens, i = normalise(cell).split(), set(), 0
    while i < len(words):
        for size in (3, 2, 1):
            key = " ".join(words[i:i + size])
            if key in phrases:
                tokens.add(phrases[key])
                i += size
                break
        else:
            assert words[i] in fillers, (cell, words[i])
            i += 1
    return ";".join(sorted(tokens))


def test_messy_cells_read_back_as_the_truth(messy_dir):
    mapping = tomllib.loads((messy_dir / "mapping.toml").read_text())
    rows = read_rows(messy_dir / "export.csv")
    export = pd.DataFrame(rows[1:], columns=rows[0]).rename(
        columns={v: k for k, v in mapping["columns"].items()}
    )
    truth = read_truth(messy_dir / "truth.csv")
    ok = (truth.expected == "accepted").to_numpy()
    e, t = export[ok], truth[ok]
    drugs, types = _lookup(VOCABULARY.drugs), _lookup(VOCABULARY.seizure_types)
    for i in range(len(t)):
        x, y = e.iloc[i], t.iloc[i]
        assert x.exhibit_id == y.exhibit_id and x.seizure_id == y.seizure_id
        assert abs(_weight(x.weight_before_g) - float(y.weight_before_g)) < 5e-4
        assert abs(_weight(x.weight_after_g) - float(y.weight_after_g)) < 5e-4
        purity, censored = _purity(x.purity)
        assert censored == y.purity_censored
        if purity is not None:
            assert abs(purity - float(y.purity)) < 1e-3
        assert _date(x.seized_on) == y.seized_on and _date(x.analysed_on) == y.analysed_on
        assert drugs[normalise(x.drug)] == y.drug
        assert types[normalise(x.seizure_type)] == y.seizure_type
        assert re.sub(r"\D", "", x.rock_count) == y.rock_count
        assert (float(x.price_gbp.lstrip("£")) if x.price_gbp else "") == (
            float(y.price_gbp) if y.price_gbp else ""
        )
        assert _adulterants(x.adulterants) == y.adulterants
        assert _packaging(x.packaging) == y.packaging
    profile = e[list(mapping["profile"])]
    assert profile.isin(["<LOQ", ""]).any().any()
    assert profile.apply(lambda c: c.str.contains("E+", regex=False)).any().any()


# --------------------------------------------------------------------------- linkage


def _pretreat(x: np.ndarray, name: str) -> np.ndarray:
    n = x / x.sum(axis=1, keepdims=True)
    return {
        "sum": n,
        "sum_sqrt": np.sqrt(n),
        "sum_4root": n ** 0.25,
        "sum_log": np.log(n + 1e-4),
        "sum_std": n / n.std(axis=0, ddof=1),
    }[name]


def test_linkage_is_neither_trivial_nor_hopeless():
    """Default scenario (the command's defaults: 2000 exhibits, seed 0), 900 exhibits sampled."""
    frame = simulate(2000, 0).profiles()
    frame = frame.sample(900, random_state=0)
    x = frame[[c for c in frame if c.startswith("p_")]].to_numpy()
    keep = x.sum(axis=1) > 0
    x, batch, seizure = x[keep], frame.batch.to_numpy()[keep], frame.seizure.to_numpy()[keep]
    i, j = np.triu_indices(len(x), 1)
    same_batch, same_seizure = batch[i] == batch[j], seizure[i] == seizure[j]
    results = {}
    for pretreatment in ("sum", "sum_sqrt", "sum_4root", "sum_log", "sum_std"):
        y = _pretreat(x, pretreatment)
        for metric in ("correlation", "cosine", "euclidean", "cityblock", "canberra"):
            d = pdist(y, metric)
            auc = roc_auc_score(same_batch, -d)
            threshold = np.quantile(d[~same_seizure], 0.01)  # 1 % false positives
            linked = (d <= threshold) & ~same_seizure
            results[pretreatment, metric] = (auc, same_batch[linked].mean())
    best = max(results, key=lambda k: results[k][0])
    auc, precision = results[best]
    assert 0.90 <= auc <= 0.99, (best, auc)
    assert precision >= 0.95, (best, precision)


# --------------------------------------------------------------------------- ingest round trip


def test_ingest_recovers_the_truth(messy_dir, tmp_path):
    library, quarantine = tmp_path / "L.h5", tmp_path / "Q.csv"
    done = run_profile(
        "ingest", str(messy_dir / "export.csv"), "--mapping", str(messy_dir / "mapping.toml"),
        "--library", str(library), "--quarantine", str(quarantine), "--json",
    )
    assert done.returncode == 0, f"profile ingest failed:\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    truth = read_truth(messy_dir / "truth.csv")
    expected = truth.expected.value_counts()
    assert report["read"] == len(truth)
    assert report["accepted"] == expected["accepted"]
    assert report["quarantined"] == expected["quarantined"]
    assert report["duplicates"] == expected["duplicate"]
    assert report["conflicts"] == 0
    flag_counts = pd.Series(";".join(truth.expected_flags).split(";")).value_counts()
    assert {k: v for k, v in report["flags"].items() if v} == {
        k: int(v) for k, v in flag_counts.items() if k
    }

    q = pd.read_csv(quarantine, dtype=str, keep_default_na=False)
    assert {"source", "line", "exhibit_id", "reasons"} <= set(q.columns)
    marked = truth[truth.expected == "quarantined"]
    assert sorted(q.line.astype(int)) == sorted(marked.line.astype(int))
    reasons = dict(zip(q.line.astype(int), q.reasons))
    for line, reason in zip(marked.line.astype(int), marked.expected_reason):
        assert reasons[line] == reason, line

    records = tmp_path / "records.csv"
    done = run_profile("export", str(library), "--out", str(records))
    assert done.returncode == 0, f"profile export failed:\n{done.stdout}\n{done.stderr}"
    got = pd.read_csv(records, dtype=str, keep_default_na=False).set_index("exhibit_id")
    want = truth[truth.expected == "accepted"].set_index("exhibit_id")
    assert sorted(got.index) == sorted(want.index)
    got = got.loc[want.index]
    for column in ("weight_before_g", "weight_after_g"):
        gap = (got[column].astype(float) - want[column].astype(float)).abs()
        assert (gap <= 5e-4).all(), column
    has = want.purity != ""
    gap = (got.purity[has].astype(float) - want.purity[has].astype(float)).abs()
    assert (gap <= 1e-3 + 1e-9).all()
    assert (got.purity[~has] == "").all()
    if "purity_censored" in got:
        assert (got.purity_censored == want.purity_censored).all()
    for column in ("adulterants", "packaging", "flags"):
        source = "expected_flags" if column == "flags" else column
        got_sets = got[column].map(lambda s: frozenset(filter(None, s.split(";"))))
        want_sets = want[source].map(lambda s: frozenset(filter(None, s.split(";"))))
        assert (got_sets == want_sets).all(), column
    for column in ("seizure_id", "area", "force", "seized_on", "analysed_on", "drug",
                   "seizure_type"):
        assert (got[column] == want[column]).all(), column
    rocks = got.rock_count.replace("", np.nan).astype(float)
    assert (rocks.fillna(-1) == want.rock_count.replace("", "-1").astype(float)).all()
    price = got.price_gbp.replace("", np.nan).astype(float)
    assert (price.fillna(-1) == want.price_gbp.replace("", "-1").astype(float)).all()


def test_bundled_sample_is_what_the_command_writes(tmp_path):
    """reference_data/sample/ is `profile simulate --exhibits 300 --seed 2026 --messy`."""
    sample = Path(str(reference_path("sample")))
    done = run_profile("simulate", "--exhibits", "300", "--seed", "2026", "--messy", "--out",
                       str(tmp_path), "--quiet")
    assert done.returncode == 0, done.stderr
    assert _files(sample) == _files(tmp_path)
    assert sum(len(b) for b in _files(sample).values()) < 400_000
