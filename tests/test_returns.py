"""NCIS-style returns: reconciliation, the several-drugs rule, byte identity, safety, schema."""

import csv
import hashlib
import json

import numpy as np
import openpyxl
import pandas as pd
import pytest

from profiling.ingest import ingest
from profiling.library import read_library
from profiling.returns import (
    SCHEMA_VERSION,
    build_returns,
    periods_between,
    schema,
    write_returns,
)

from .conftest import AS_OF, run_cli

FORCES = ["Metropolitan", "West Midlands", "=cmd|' /C calc'!A0"]


def make_export(path, n=600, seed=3):
    rng = np.random.default_rng(seed)
    lines = ["exhibit_id,seizure_id,force,area,seized_on,drug,weight_before_g,weight_after_g,"
             "rock_count,purity,price_gbp"]
    for i in range(n):
        seizure = f"S{i // 3}"
        drug = ["crack", "heroin", "cocaine"][rng.integers(0, 3)]
        day = pd.Timestamp("2024-03-20") + pd.Timedelta(days=int(rng.integers(0, 760)))
        w = round(float(rng.lognormal(-1, 1.5)), 3) + 0.001
        rocks = int(rng.integers(1, 5)) if drug == "crack" else ""
        purity = "" if rng.random() < 0.1 else f"{rng.uniform(3, 85):.1f}%"
        price = f"£{rng.choice([10, 20, 40])}" if rng.random() < 0.3 else ""
        force = FORCES[(i // 3) % len(FORCES)]
        lines.append(f'E{i},{seizure},"{force}",A{i % 7},{day:%d/%m/%Y},{drug},{w} g,'
                     f"{round(w * 0.98, 4)},{rocks},{purity},{price}")
    lines.append("U1,,Metropolitan,A1,,crack,1 g,,,,")          # undated: in no return
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    d = tmp_path_factory.mktemp("ret")
    lib = d / "lib.h5"
    ingest([make_export(d / "e.csv")], lib, quarantine=d / "q.csv", as_of=AS_OF)
    return lib


def _ug(x):
    return int(round(float(x) * 1e6))


@pytest.mark.parametrize("period", ["month", "quarter", "year"])
def test_totals_reconcile_exactly_with_the_library(library, tmp_path, period):
    data = read_library(library)
    ret = build_returns(data, "2024-04", "2026-03", period)
    write_returns(ret, tmp_path, ("csv",))
    index = pd.read_csv(tmp_path / "index.csv", dtype=str)
    exhibits = before = after = 0
    for name in index["file"]:
        for row in csv.DictReader((tmp_path / name).open()):
            exhibits += int(row["n_exhibits"])
            before += _ug(row["weight_before_g"])
            after += _ug(row["weight_after_g"])
    rec = data.records
    seized = pd.to_datetime(rec["seized_on"])
    inside = (seized >= "2024-04-01") & (seized < "2026-04-01")
    assert exhibits == int(inside.sum())
    assert before == sum(_ug(w) for w in rec.loc[inside, "weight_before_g"])
    assert after == sum(_ug(w) for w in rec.loc[inside, "weight_after_g"].fillna(0))
    # totals.csv counts each seizure once per force and period
    totals = pd.read_csv(tmp_path / "totals.csv")
    assert int(totals["n_exhibits"].sum()) == exhibits
    assert len(totals) == len(ret.units) * len(ret.periods)
    # independently: distinct seizures per force and period, each counted once
    labels = {m: periods_between(m, m, period)[0] for m in seized[inside].dt.strftime("%Y-%m")}
    independent = (rec.loc[inside].assign(label=seized[inside].dt.strftime("%Y-%m").map(labels))
                   .groupby(["force", "label"])["seizure_id"].nunique())
    got = totals[totals["n_seizures"] > 0].set_index(["force", "period"])["n_seizures"]
    assert got.sort_index().tolist() == independent.sort_index().tolist()


def test_a_seizure_with_several_drugs_counts_once_per_drug_and_once_in_total(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("exhibit_id,seizure_id,force,seized_on,drug,weight_before_g\n"
                    "A,S1,F,2025-05-01,crack,1 g\nB,S1,F,2025-05-01,heroin,2 g\n"
                    "C,S1,F,2025-05-02,heroin,3 g\nD,,F,2025-05-03,heroin,4 g\n")
    lib = tmp_path / "lib.h5"
    ingest([path], lib, as_of=AS_OF)
    ret = build_returns(read_library(lib), "2025-05", "2025-05", "month")
    t = ret.table.set_index("drug")
    assert t.loc["crack_cocaine", "n_seizures"] == 1 and t.loc["heroin", "n_seizures"] == 2
    assert t.loc["heroin", "n_exhibits"] == 3 and t.loc["cocaine_hcl", "n_seizures"] == 0
    assert ret.totals["n_seizures"].tolist() == [2] and ret.totals["n_exhibits"].tolist() == [4]


def test_rerun_gives_identical_bytes(library, tmp_path):
    digests = []
    for k in range(2):
        r = run_cli("returns", library, "--from", "2024-04", "--to", "2025-03", "--period",
                    "quarter", "--format", "csv,xlsx", "--annex", "--out", tmp_path / f"r{k}")
        assert r.returncode == 0, r.stderr
        files = sorted(p.name for p in (tmp_path / f"r{k}").iterdir())
        digests.append({f: hashlib.sha256((tmp_path / f"r{k}" / f).read_bytes()).hexdigest()
                        for f in files})
    assert digests[0] == digests[1]
    assert len(digests[0]) == 3 * 4 * 2 + 4     # returns x formats + index, totals, schema, annex


def test_formula_cells_are_neutralised_in_csv_and_xlsx(library, tmp_path):
    ret = build_returns(read_library(library), "2024-04", "2024-06", "quarter")
    index = write_returns(ret, tmp_path, ("csv", "xlsx"))
    evil = index[index["force"].str.startswith("'=")]
    assert len(evil) == 2
    csv_file = tmp_path / evil["file"].iloc[0]
    first = next(csv.DictReader(csv_file.open()))
    assert first["force"] == "'=cmd|' /C calc'!A0"
    assert "=cmd" not in [r["force"] for r in csv.DictReader((tmp_path / "index.csv").open())]
    wb = openpyxl.load_workbook(tmp_path / evil["file"].iloc[1])
    cell = wb["return"]["A3"]
    assert cell.value == "'=cmd|' /C calc'!A0" and cell.data_type == "s"
    assert all(".." not in p.name and "/" not in p.name for p in tmp_path.iterdir())


def test_xlsx_sheets_headers_and_units_match_the_schema(library, tmp_path):
    ret = build_returns(read_library(library), "2025-01", "2025-01", "month")
    index = write_returns(ret, tmp_path, ("xlsx",))
    wb = openpyxl.load_workbook(tmp_path / index["file"].iloc[0])
    assert wb.sheetnames == ["return", "schema"]
    ws = wb["return"]
    assert [c.value for c in ws[1]] == [c.name for c in schema()]
    assert [c.value or "" for c in ws[2]] == [c.unit for c in schema()]
    rows = list(wb["schema"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[1], r[2] or "") for r in rows] == [(c.name, c.dtype, c.unit) for c in schema()]
    assert {r[4] for r in rows} == {SCHEMA_VERSION}
    n_rows = ws.max_row - 2
    assert n_rows == index["rows"].iloc[0] == 4       # every drug, level unknown
    counts = [ws.cell(3 + i, 6).value for i in range(n_rows)]
    assert all(isinstance(v, int) for v in counts)


def test_empty_range_writes_a_return_of_zeros(library, tmp_path):
    ret = build_returns(read_library(library), "2030-01", "2030-02", "month")
    index = write_returns(ret, tmp_path, ("csv",))
    assert len(index) == len(ret.units) * 2
    for name in index["file"]:
        rows = list(csv.DictReader((tmp_path / name).open()))
        assert len(rows) == 4
        assert all(r["n_exhibits"] == "0" and r["weight_before_g"] == "0.000000" and
                   r["purity_median"] == "" for r in rows)


def test_financial_year_periods():
    assert periods_between("2025-03", "2025-04", "quarter") == ["2024-25Q4", "2025-26Q1"]
    assert periods_between("2024-04", "2026-03", "year") == ["2024-25", "2025-26"]
    assert periods_between("2024-12", "2025-01", "month") == ["2024-12", "2025-01"]
    with pytest.raises(ValueError):
        periods_between("2025-04", "2025-03", "month")


def test_levels_and_redacted_annex(library, tmp_path):
    data = read_library(library)
    levels = {s: "1" for s in data.records["seizure_id"].unique()[:50]}
    ret = build_returns(data, "2024-04", "2026-03", "year", levels=levels)
    assert set(ret.table["level"]) == {"1", "unknown"}
    from profiling.redact import Redactor

    write_returns(ret, tmp_path, ("csv",), annex=True, redactor=Redactor(b"k" * 32))
    annex = pd.read_csv(tmp_path / "annex.csv", dtype=str, keep_default_na=False)
    assert "source_file" not in annex.columns
    assert annex["exhibit_id"].str.fullmatch(r"E-[0-9a-f]{16}").all()
    assert not set(annex["seizure_id"]) & set(data.records["seizure_id"])
    manifest = json.loads((tmp_path / "redaction.json").read_text())
    assert "source_file" in manifest["removed_columns"] and "exhibit" in manifest["pseudonymised"]


def test_bad_options_fail_clearly(library, tmp_path):
    r = run_cli("returns", library, "--from", "2025-13", "--to", "2026-01", "--out", tmp_path)
    assert r.returncode == 2 and "is not a month" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("returns", library, "--from", "2025-01", "--to", "2026-01", "--period", "week",
                "--out", tmp_path)
    assert r.returncode == 2 and "period must be one of" in r.stderr


def test_returns_reconcile_on_simulator_data(tmp_path):
    """Summing every monthly return of a simulated messy export equals the library's own totals
    (exhibits, seizures per drug, weights to the microgram) over the same range."""
    from profiling.simulate import simulate, write

    files = write(simulate(3000, seed=11, messy=True, forces=3), tmp_path / "sim")
    lib = tmp_path / "lib.h5"
    ingest([files["export"]], lib, mapping=files.get("mapping"), quarantine=tmp_path / "q.csv",
           as_of=AS_OF)
    data = read_library(lib)
    ret = build_returns(data, "2024-04", "2026-03", "month")
    index = write_returns(ret, tmp_path / "out", ("csv",))
    assert len(index) == 3 * 24
    rows = pd.concat([pd.read_csv(tmp_path / "out" / f, dtype=str) for f in index["file"]])
    rec = data.records
    seized = pd.to_datetime(rec["seized_on"])
    inside = rec[(seized >= "2024-04-01") & (seized < "2026-04-01")]
    assert rows["n_exhibits"].astype(int).sum() == len(inside) > 2500
    assert sum(_ug(w) for w in rows["weight_before_g"]) == sum(_ug(w) for w in inside["weight_before_g"])
    assert sum(_ug(w) for w in rows["weight_after_g"]) == sum(_ug(w) for w in inside["weight_after_g"].fillna(0))
    months = seized[inside.index].dt.strftime("%Y-%m")
    by_drug = inside.assign(m=months).groupby(["force", "m", "drug"])["seizure_id"].nunique()
    got = rows.astype({"n_seizures": int}).groupby(["force", "period", "drug"])["n_seizures"].sum()
    assert int(got.sum()) == int(by_drug.sum())
    totals = pd.read_csv(tmp_path / "out" / "totals.csv")
    assert int(totals["n_seizures"].sum()) == int(inside.assign(m=months).groupby(["force", "m"])["seizure_id"].nunique().sum())
