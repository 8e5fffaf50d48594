"""A library whose stored links are damaged, and a scheduler that makes no sense: one clear
message, exit status 2, no traceback, nothing written."""

import h5py

from profiling.library import read_edges, verify_library

from .conftest import run_cli
from .test_link import make_export


def _linked_library(tmp_path):
    lib = tmp_path / "lib.h5"
    r = run_cli("link", make_export(tmp_path / "e.csv", batches=4), "--library", lib,
                "--out", tmp_path / "out", "--as-of", "2026-01-01", "--quiet")
    assert r.returncode == 0, r.stderr
    return lib


def test_links_pointing_past_their_ids_are_reported_not_followed(tmp_path):
    lib = _linked_library(tmp_path)
    assert verify_library(lib) == []
    n_ids = len(read_edges(lib, "links")[0])
    with h5py.File(lib, "r+") as f:
        a = f["links/a"][...]
        a[len(a) // 2] = n_ids + 7
        f["links/a"][...] = a
    problems = verify_library(lib)
    assert f"links point past their {n_ids} exhibit ids." in problems
    r = run_cli("verify", lib)
    assert r.returncode == 2 and "links point past" in r.stderr and "Traceback" not in r.stderr
    before = lib.read_bytes()
    more = make_export(tmp_path / "more.csv", seed=5, batches=2, start=5000)
    r = run_cli("link", more, "--library", lib, "--out", tmp_path / "out2", "--as-of",
                "2026-01-01", "--quiet")
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr and "links" in r.stderr and "verify" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert lib.read_bytes() == before                  # nothing imported, nothing relinked
    assert not (tmp_path / "out2" / "links.csv").exists()


def test_a_scheduler_that_makes_no_sense_is_one_line(tmp_path):
    lib = _linked_library(tmp_path)
    for command in (("query", "E3"), ("link", "--out", tmp_path / "o", "--quiet")):
        r = run_cli(*command, "--library", lib, "--scheduler", "nonsense")
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and "nonsense" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert verify_library(lib) == []
