"""Redacted sharing: no original reference or personal field in any output byte; same key, same
pseudonyms; another key, unlinkable ones."""

import json
import os

import numpy as np
import pandas as pd

from profiling.redact import Redactor, is_personal, load_key

from .conftest import run_cli
from .test_link import make_export


def _export_with_personal(tmp_path):
    path = make_export(tmp_path / "lab_export_0427.csv", batches=3)
    frame = pd.read_csv(path)
    frame["exhibit_id"] = [f"LABREF{k:05d}" for k in range(len(frame))]
    frame["seizure_id"] = "OCCREF" + frame["seizure_id"].str.replace("-", "X")
    frame["Suspect Name"] = [f"Johnny Smithers{k}" for k in range(len(frame))]
    frame["Intel"] = "CHISREF99"
    frame.to_csv(path, index=False)
    mapping = tmp_path / "m.toml"
    mapping.write_text('[options]\npersonal = ["Intel"]\n')
    return path, mapping, frame


def _all_output_bytes(folder) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def test_redacted_link_outputs_hold_no_reference_and_no_personal_field(tmp_path):
    export, mapping, _ = _export_with_personal(tmp_path)
    key = tmp_path / "key"
    args = ["link", export, "--mapping", mapping, "--library", tmp_path / "lib.h5", "--out",
            tmp_path / "shared", "--redact", "--key", key, "--as-of", "2026-01-01", "--quiet"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "created redaction key" in r.stderr
    assert os.stat(key).st_mode & 0o077 == 0
    blob = _all_output_bytes(tmp_path / "shared")
    for value in ["LABREF", "OCCREF", "Johnny", "Smithers", "CHISREF99", "lab_export_0427"]:
        assert value.encode() not in blob, value
    manifest = json.loads((tmp_path / "shared" / "redaction.json").read_text())
    assert {"exhibit", "seizure"} <= set(manifest["pseudonymised"])
    links = pd.read_csv(tmp_path / "shared" / "links.csv")
    assert links["exhibit_a"].str.fullmatch(r"E-[0-9a-f]{16}").all()
    # the same key reproduces the same pseudonyms
    r = run_cli("link", "--library", tmp_path / "lib.h5", "--out", tmp_path / "again", "--redact",
                "--key", key, "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again" / "classes.csv").read_bytes() == (tmp_path / "shared" / "classes.csv").read_bytes()
    # another key gives other pseudonyms
    r = run_cli("link", "--library", tmp_path / "lib.h5", "--out", tmp_path / "other", "--redact",
                "--key", tmp_path / "key2", "--quiet")
    other = pd.read_csv(tmp_path / "other" / "classes.csv")
    first = pd.read_csv(tmp_path / "shared" / "classes.csv")
    assert not set(other["exhibit_id"]) & set(first["exhibit_id"])


def test_redacted_export_drops_personal_columns(tmp_path):
    export, mapping, _ = _export_with_personal(tmp_path)
    lib = tmp_path / "lib.h5"
    assert run_cli("ingest", export, "--mapping", mapping, "--library", lib, "--quiet").returncode == 0
    out = tmp_path / "records.csv"
    r = run_cli("export", lib, "--out", out, "--redact", "--key", tmp_path / "k", "--coarsen-area", "force")
    assert r.returncode == 0, r.stderr
    text = out.read_bytes()
    for value in [b"LABREF", b"OCCREF", b"Johnny", b"CHISREF99"]:
        assert value not in text
    cols = pd.read_csv(out, nrows=1).columns
    assert "attr_suspect_name" not in cols and "attr_intel" not in cols and "source_file" not in cols
    assert (tmp_path / "records.csv.redaction.json").exists()


def test_pseudonyms_and_personal_names():
    a, b = Redactor(b"a" * 32), Redactor(b"b" * 32)
    assert a.pseudonym("exhibit", "X1") == a.pseudonym("exhibit", "X1") != b.pseudonym("exhibit", "X1")
    assert a.pseudonym("exhibit", "X1") != a.pseudonym("seizure", "X1")
    assert a.pseudonym("exhibit", "") == ""
    assert is_personal("attr_officer_name", []) and is_personal("attr_x", ["attr_x"])
    assert not is_personal("attr_colour", [])


def test_bad_key_file(tmp_path):
    bad = tmp_path / "k"
    bad.write_text("not hex")
    r = run_cli("export", tmp_path / "nolib.h5", "--out", tmp_path / "o.csv", "--redact", "--key", bad)
    assert r.returncode == 2 and "does not hold a hex key" in r.stderr
    key, created = load_key(tmp_path / "new", create=True)
    assert created and len(key) == 32


def _market_export(tmp_path):
    """The personal-field export, spread over four areas of areas.csv and a year, priced,
    with every seventh exhibit seized without a seizure reference (keyed by its exhibit)."""
    export, mapping, frame = _export_with_personal(tmp_path)
    rng = np.random.default_rng(3)
    frame["area"] = rng.choice(["Ashcombe", "Brindley", "Carrow Vale", "Dunholt"], len(frame))
    frame["force"] = "Northmoor Police"
    frame["seized_on"] = (pd.Timestamp("2025-01-01") + pd.to_timedelta(
        rng.integers(0, 365, len(frame)), "D")).strftime("%Y-%m-%d")
    frame["seizure_type"] = "test purchase"
    frame["price_gbp"] = "£20"
    frame.loc[::7, "seizure_id"] = ""
    frame.to_csv(export, index=False)
    return export, mapping, frame


def test_redacted_levels_market_evaluate_hold_no_reference_and_share_link_pseudonyms(tmp_path):
    export, mapping, frame = _market_export(tmp_path)
    lib, key = tmp_path / "lib.h5", tmp_path / "key"
    areas = tmp_path / "coarse.csv"
    areas.write_text("area,coarse_area\nAshcombe,North\nBrindley,North\nCarrow Vale,South\n")
    runs = {
        "link": ["link", export, "--mapping", mapping, "--library", lib, "--coarsen-area", areas],
        "levels": ["levels", lib],
        "market": ["market", lib, "--coarsen-area", areas],
        "evaluate": ["evaluate", lib, "--area", "Ashcombe", "--start", "2025-07-01"],
    }
    for name, args in runs.items():
        r = run_cli(*args, "--out", tmp_path / name, "--redact", "--key", key, "--as-of",
                    "2026-01-01", "--quiet")
        assert r.returncode == 0, (name, r.stderr)
        blob = _all_output_bytes(tmp_path / name)
        for value in ["LABREF", "OCCREF", "Johnny", "Smithers", "CHISREF99", "lab_export_0427", "lib.h5",
                      "coarse.csv"]:
            assert value.encode() not in blob, (name, value)
        manifest = json.loads((tmp_path / name / "redaction.json").read_text())
        assert set(manifest["files"]) == {p.name for p in (tmp_path / name).iterdir()} - {"redaction.json"}
    # levels: seizures keyed by the same pseudonyms as everywhere with this key; a seizure
    # without a reference is its exhibit, with the exhibit's pseudonym from link's classes.csv
    red = Redactor(load_key(key, create=False)[0])
    levels = pd.read_csv(tmp_path / "levels" / "levels.csv", dtype=str)
    no_ref = frame["seizure_id"].fillna("") == ""
    expected = {red.pseudonym("seizure", s) for s in frame.loc[~no_ref, "seizure_id"]} | \
        {red.pseudonym("exhibit", e) for e in frame.loc[no_ref, "exhibit_id"]}
    assert set(levels["seizure_id"]) == expected
    linked = set(pd.read_csv(tmp_path / "link" / "classes.csv", dtype=str)["exhibit_id"])
    keyed_by_exhibit = {red.pseudonym("exhibit", e) for e in frame.loc[no_ref, "exhibit_id"]}
    assert keyed_by_exhibit <= linked and keyed_by_exhibit <= set(levels["seizure_id"])
    assert {"exhibit", "seizure"} <= set(json.loads(
        (tmp_path / "levels" / "redaction.json").read_text())["pseudonymised"])
    r = run_cli("levels", lib, "--out", tmp_path / "again", "--redact", "--key", key, "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again" / "levels.csv").read_bytes() == \
        (tmp_path / "levels" / "levels.csv").read_bytes()
    # coarsened areas: in link's class table and charts, the market tables and its map
    entities = pd.read_csv(tmp_path / "link" / "i2_entities.csv", dtype=str, keep_default_na=False)
    areas_named = {a for text in entities["Area"] for a in text.split("; ") if a}
    assert areas_named and areas_named <= {"North", "South", "other"}
    market_csv = pd.read_csv(tmp_path / "market" / "market.csv", dtype=str)
    assert set(market_csv["area"]) == {"North", "South", "other"}
    for name, file, prop in (("market", "market.geojson", "area"), ("link", "classes.geojson", "place")):
        doc = json.loads((tmp_path / name / file).read_text())
        assert {f["properties"][prop] for f in doc["features"]} <= {"North", "South"}
    evaluation = json.loads((tmp_path / "evaluate" / "evaluation.json").read_text())
    assert evaluation["area"] == "Ashcombe"      # no coarsening asked: the area itself
