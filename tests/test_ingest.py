"""Ingest end to end: quarantine, flags, reconciliation, duplicates, conflicts, history."""

import csv
import hashlib

import h5py
import numpy as np
import pandas as pd
import pytest

from profiling.errors import MappingError
from profiling.ingest import ingest
from profiling.library import read_library

from .conftest import AS_OF, HEADER, ROWS, write_export


def records_digest(path) -> str:
    """SHA-256 over every record, attribute and profile dataset's bytes (not provenance, audit)."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        def visit(name, node):
            if isinstance(node, h5py.Dataset) and not name.startswith(("provenance", "audit")):
                h.update(name.encode())
                h.update(node[()].tobytes())
        f.visititems(visit)
    return h.hexdigest()


def test_reconciliation_quarantine_and_flags(tmp_path, export):
    lib, q = tmp_path / "lib.h5", tmp_path / "q.csv"
    r = ingest([export], lib, quarantine=q, as_of=AS_OF)
    assert (r.read, r.accepted, r.quarantined, r.duplicates) == (7, 4, 2, 1)
    assert r.reconciles
    assert dict(r.flags) == {"seized_after_analysed": 1, "unknown_vocabulary": 1, "weight_gain": 1}
    rows = list(csv.DictReader(q.open()))
    assert [(x["line"], x["reasons"]) for x in rows] == [
        ("6", "exhibit_id:missing;weight_before_g:unreadable;purity:above_100"),
        ("8", "row:short;weight_before_g:missing"),
    ]
    # the raw cells come back unchanged
    assert rows[0]["Weight before (mg)"] == "abc" and rows[0]["Purity"] == "120%"
    data = read_library(lib)
    rec = data.records.set_index("exhibit_id")
    assert rec.loc["E1", "weight_before_g"] == 0.23            # 230 in a (mg) column
    assert rec.loc["E2", "weight_before_g"] == 0.45 and rec.loc["E2", "rock_count"] == 3
    assert rec.loc["E2", "mean_rock_g"] == pytest.approx(0.15)
    assert rec.loc["E3", "weight_before_g"] == 1200.0 and rec.loc["E3", "purity_censored"] == "trace"
    assert np.isnan(rec.loc["E3", "purity"])
    assert rec.loc["E5", "purity_censored"] == "below" and rec.loc["E5", "purity_limit"] == 0.01
    assert rec.loc["E1", "adulterants"] == "benzocaine;lidocaine"
    assert rec.loc["E2", "adulterant_fractions"] == "phenacetin=0.05"
    assert rec.loc["E1", "packaging"] == "clear;knotted;plastic_bag"
    assert rec.loc["E1", "price_gbp"] == 20.0 and rec.loc["E1", "drug"] == "crack_cocaine"
    assert rec.loc["E2", "seizure_type"] == "stop_search"
    assert str(rec.loc["E1", "seized_on"].date()) == "2025-02-03"      # day-first
    assert rec.loc["E5", "drug"] == "other"
    assert rec.loc["E5", "unknown_vocabulary"] == "drug=speedball | packaging=weird"
    assert rec.loc["E5", "flags"] == "seized_after_analysed;unknown_vocabulary;weight_gain"
    assert rec.loc["E1", "pure_mass_g"] == pytest.approx(0.23 * 0.34)
    assert data.compounds == ["tropacocaine", "norcocaine"]
    assert data.profiles[0].tolist() == [120000.0, 0.0]
    assert data.attributes["attr_notes"].tolist() == ["hello", "", "", "x"]
    assert rec.loc["E5", "source_line"] == 7


def test_reimport_changes_no_record(tmp_path, export):
    lib = tmp_path / "lib.h5"
    ingest([export], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    before = records_digest(lib)
    r = ingest([export], lib, quarantine=tmp_path / "q2.csv", as_of=AS_OF)
    assert (r.accepted, r.duplicates, r.quarantined, r.conflicts) == (0, 5, 2, 0)
    assert records_digest(lib) == before
    assert len(read_library(lib).provenance) == 2


def test_conflict_is_reported_not_overwritten_then_superseded_with_history(tmp_path, export):
    lib = tmp_path / "lib.h5"
    ingest([export], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    changed = [ROWS[0].replace("34%", "36%")]
    second = write_export(tmp_path / "second.csv", changed)
    r = ingest([second], lib, quarantine=tmp_path / "q2.csv", as_of=AS_OF)
    assert (r.accepted, r.quarantined, r.conflicts) == (0, 1, 1)
    assert "exhibit_id:conflict" in (tmp_path / "q2.csv").read_text()
    assert read_library(lib).records.set_index("exhibit_id").loc["E1", "purity"] == 0.34
    r = ingest([second], lib, supersede=True, as_of=AS_OF)
    assert (r.accepted, r.conflicts, r.superseded) == (1, 1, 1)
    data = read_library(lib)
    assert data.n == 4
    assert data.records.set_index("exhibit_id").loc["E1", "purity"] == 0.36
    assert data.history is not None and data.history.n == 1
    old = data.history.records.iloc[0]
    assert old["exhibit_id"] == "E1" and old["purity"] == 0.34 and old["superseded_by_import"] == 3


def test_same_id_twice_in_one_file_with_different_content(tmp_path):
    rows = [ROWS[0], ROWS[0].replace("34%", "40%")]
    path = write_export(tmp_path / "e.csv", rows)
    r = ingest([path], tmp_path / "lib.h5", quarantine=tmp_path / "q.csv", as_of=AS_OF)
    assert (r.read, r.accepted, r.quarantined, r.conflicts) == (2, 1, 1, 1)


def test_two_files_union_their_compounds_and_attributes(tmp_path, export):
    other = tmp_path / "other.csv"
    other.write_text("exhibit_id,weight_before_g,p_cuscohygrine,Officer\nX1,1 g,55,PC 123\n")
    lib = tmp_path / "lib.h5"
    r = ingest([export, other], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    assert r.accepted == 5 and r.reconciles
    data = read_library(lib)
    assert data.compounds == ["tropacocaine", "norcocaine", "cuscohygrine"]
    row = data.records.index[data.records["exhibit_id"] == "X1"][0]
    assert np.isnan(data.profiles[row, 0]) and data.profiles[row, 2] == 55.0   # NaN = not measured
    assert data.attributes["attr_officer"].tolist() == ["", "", "", "", "PC 123"]


def test_mapping_decides_columns_and_units(tmp_path):
    path = tmp_path / "lab.csv"
    path.write_text("Ref;Gross Wt;Conc;Area Tropa;Seized\nA1;230;34;1000;02/03/2025\n")
    mapping = tmp_path / "m.toml"
    mapping.write_text('[columns]\nexhibit_id = "Ref"\nweight_before_g = "Gross Wt"\n'
                       'purity = "Conc"\nseized_on = "Seized"\n'
                       '[profile]\n"Area Tropa" = "tropacocaine"\n'
                       '[options]\ndate_order = "mdy"\nweight_unit = "mg"\npurity_unit = "percent"\n')
    lib = tmp_path / "lib.h5"
    ingest([path], lib, mapping=mapping, as_of=AS_OF)
    rec = read_library(lib).records.iloc[0]
    assert rec["weight_before_g"] == 0.23 and rec["purity"] == 0.34
    assert str(rec["seized_on"].date()) == "2025-02-03"


def test_export_without_required_columns_fails_clearly(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("name,colour\nx,y\n")
    with pytest.raises(MappingError, match="no column for the required field"):
        ingest([path], tmp_path / "lib.h5")
    assert not (tmp_path / "lib.h5").exists()


def test_evidence_flags_from_tolerances(tmp_path):
    header = "exhibit_id,seized_on,analysed_on,weight_before_g,weight_after_g,rock_count"
    rows = ["A,2025-01-01,2025-01-05,1.0,0.95,",       # loss 0.05 <= max(0.1, 0.1): clean
            "B,2025-01-01,2025-01-05,0.3,0.1,",        # loss 0.2 > 0.1: analysis_loss
            "C,2025-01-01,2025-01-05,10,8.5,",         # loss 1.5 > 1.0: analysis_loss
            "D,2025-01-01,2025-01-05,0.2,0.2005,",     # +0.5 mg within balance tolerance
            "E,2025-01-01,2025-01-05,0.2,0.25,",       # weight_gain
            "F,2025-01-01,2025-01-05,5.0,4.99,2",      # 2.5 g a rock: rock_mass
            "G,2025-01-01,2025-01-05,0.2,0.19,10",     # 0.02 g a rock: rock_mass
            "H,2099-01-01,2099-01-05,0.2,0.19,1"]      # future_date
    path = write_export(tmp_path / "e.csv", rows, header)
    lib = tmp_path / "lib.h5"
    ingest([path], lib, as_of=AS_OF)
    flags = read_library(lib).records.set_index("exhibit_id")["flags"].to_dict()
    assert flags == {"A": "", "B": "analysis_loss", "C": "analysis_loss", "D": "",
                     "E": "weight_gain", "F": "rock_mass", "G": "rock_mass", "H": "future_date"}


def test_xlsx_export_ingests_like_csv(tmp_path, export):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER.split(","))
    for row in csv.reader(ROWS):
        ws.append(row)
    xlsx = tmp_path / "export.xlsx"
    wb.save(xlsx)
    a = ingest([export], tmp_path / "a.h5", quarantine=tmp_path / "qa.csv", as_of=AS_OF)
    b = ingest([xlsx], tmp_path / "b.h5", quarantine=tmp_path / "qb.csv", as_of=AS_OF)
    assert (a.accepted, a.quarantined, a.duplicates) == (b.accepted, b.quarantined, b.duplicates)
    ra, rb = read_library(tmp_path / "a.h5").records, read_library(tmp_path / "b.h5").records
    cols = ["exhibit_id", "weight_before_g", "purity", "adulterants", "packaging", "flags"]
    pd.testing.assert_frame_equal(ra[cols], rb[cols])


@pytest.mark.parametrize("supersede", [False, True])
def test_then_sees_the_library_as_it_is_written(tmp_path, export, supersede):
    """``then`` gets the whole library after the import (stored rows first, then this import's),
    equal to what the write stores, whether the import appends or supersedes."""
    lib = tmp_path / "lib.h5"
    ingest([export], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    rows = [ROWS[0].replace("34%", "36%"),
            *[f"N{k},S9,Met,Camden,4/2/2025,10/02/2025,Crack,TP,{100 + k} mg,0.09 g,1 rock,"
              f"{20 + k}%,levamisole,foil,£10,{1000 + k},{k},note {k}" for k in range(5)]]
    seen = {}

    def then(new_lib, report):
        seen["lib"], seen["import_id"] = new_lib, report.import_id
        return {}, "looked"

    r = ingest([write_export(tmp_path / "second.csv", rows)], lib, quarantine=tmp_path / "q2.csv",
               as_of=AS_OF, supersede=supersede, then=then)
    assert r.accepted == 5 + supersede and r.superseded == int(supersede)
    got, stored = seen["lib"], read_library(lib)
    assert got.n == stored.n == 4 + 5
    pd.testing.assert_frame_equal(got.records, stored.records)
    pd.testing.assert_frame_equal(got.attributes, stored.attributes)
    assert np.array_equal(got.profiles, stored.profiles, equal_nan=True)
    assert got.compounds == stored.compounds
    new = got.records["import_id"].to_numpy() == seen["import_id"]
    assert new.sum() == 5 + supersede and new[-5:].all()
    assert got.records["exhibit_id"].tolist()[:4] == ["E1", "E2", "E3", "E5"]
