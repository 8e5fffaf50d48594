"""The console command `profile`, run for real on real files."""

import csv
import json
import os

import pytest

from .conftest import export, run_cli  # noqa: F401  (fixture)


def test_ingest_json_show_export(tmp_path, export):  # noqa: F811
    lib, q, out = tmp_path / "lib.h5", tmp_path / "q.csv", tmp_path / "records.csv"
    r = run_cli("ingest", export, "--library", lib, "--quarantine", q, "--json",
                "--as-of", "2026-01-01")
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout)
    assert {k: payload[k] for k in ("read", "accepted", "quarantined", "duplicates", "conflicts")} \
        == {"read": 7, "accepted": 4, "quarantined": 2, "duplicates": 1, "conflicts": 0}
    assert payload["flags"] == {"seized_after_analysed": 1, "unknown_vocabulary": 1, "weight_gain": 1}
    assert r.stderr == ""                                   # no progress bar when not a terminal

    r = run_cli("ingest", export, "--library", lib, "--as-of", "2026-01-01")
    assert r.returncode == 0
    assert "read 7 = accepted 0 + quarantined 2 + duplicates 5" in r.stdout

    r = run_cli("show", lib)
    assert r.returncode == 0
    assert "4 exhibits, 3 seizures, 2 imports" in r.stdout
    assert "crack_cocaine 2" in r.stdout

    r = run_cli("export", lib, "--out", out)
    assert r.returncode == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    first = rows[0]
    assert first["exhibit_id"] == "E1" and first["seized_on"] == "2025-02-03"
    assert first["purity"] == "0.34" and first["weight_before_g"] == "0.23"
    assert first["adulterants"] == "benzocaine;lidocaine" and first["p_tropacocaine"] == "120000.0"
    assert first["attr_notes"] == "hello" and first["rock_count"] == "1"
    assert os.stat(out).st_mode & 0o077 == 0


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", "binary file"),
    (b"exhibit_id,weight\nA1,\"open quote\n", "truncated"),
    (b"a,b,c\n1,2,3\n", "no column for the required field"),
])
def test_bad_files_end_with_one_clear_message(tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    r = run_cli("ingest", bad, "--library", tmp_path / "lib.h5")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("profile: error:") and message in lines[0]
    assert not (tmp_path / "lib.h5").exists()


def test_missing_file_and_library_errors(tmp_path):
    r = run_cli("ingest", tmp_path / "nope.csv", "--library", tmp_path / "lib.h5")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("show", tmp_path / "nope.h5")
    assert r.returncode == 2 and "does not exist" in r.stderr
    corrupt = tmp_path / "c.h5"
    corrupt.write_bytes(b"garbage")
    r = run_cli("export", corrupt, "--out", tmp_path / "x.csv")
    assert r.returncode == 2 and "damaged" in r.stderr and "Traceback" not in r.stderr
    mapping = tmp_path / "m.toml"
    mapping.write_text("[columns]\nnot_a_field = 'x'\n")
    exp = tmp_path / "e.csv"
    exp.write_text("exhibit_id,weight_before_g\nA,1\n")
    r = run_cli("ingest", exp, "--library", tmp_path / "l.h5", "--mapping", mapping)
    assert r.returncode == 2 and "unknown field" in r.stderr


def test_formula_cells_are_neutralised_in_export(tmp_path):
    exp = tmp_path / "e.csv"
    exp.write_text('exhibit_id,weight_before_g,area,Notes\n=HYPERLINK("x"),1 g,+44 area,@SUM(A1)\n'
                   "B2,-1e-3 kg,-5,-5\n")
    lib = tmp_path / "lib.h5"
    assert run_cli("ingest", exp, "--library", lib, "--quiet").returncode == 0
    out = tmp_path / "out.csv"
    assert run_cli("export", lib, "--out", out).returncode == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["exhibit_id"] == "'=HYPERLINK(\"x\")"
    assert rows[0]["area"] == "'+44 area" and rows[0]["attr_notes"] == "'@SUM(A1)"
    assert len(rows) == 1      # B2's negative weight was quarantined, not exported
