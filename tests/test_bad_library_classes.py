"""A library whose stored classes are damaged, and a scheduler that makes no sense: one clear
message, exit status 2, no traceback, nothing written."""

import h5py

from profiling.library import verify_library

from .conftest import run_cli
from .test_link import make_export


def _linked_library(tmp_path):
    lib = tmp_path / "lib.h5"
    r = run_cli("link", make_export(tmp_path / "e.csv", batches=4), "--library", lib,
                "--out", tmp_path / "out", "--as-of", "2026-01-01", "--quiet")
    assert r.returncode == 0, r.stderr
    return lib


def test_a_class_model_that_disagrees_with_its_members_is_reported_not_followed(tmp_path):
    lib = _linked_library(tmp_path)
    assert verify_library(lib) == []
    with h5py.File(lib, "r+") as f:
        n = f["class_model/n"][...]
        n[0] += 3
        f["class_model/n"][...] = n
    before = lib.read_bytes()
    more = make_export(tmp_path / "more.csv", seed=5, batches=2, start=5000)
    r = run_cli("link", more, "--library", lib, "--out", tmp_path / "out2", "--as-of",
                "2026-01-01", "--quiet")
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr and "member counts" in r.stderr and "--rebuild" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
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


def test_a_class_model_with_a_part_missing_is_one_sentence(tmp_path):
    lib = _linked_library(tmp_path)
    with h5py.File(lib, "r+") as f:
        del f["class_model/sums"]
    before = lib.read_bytes()
    r = run_cli("link", "--library", lib, "--out", tmp_path / "out2", "--quiet")
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr and "class model is incomplete" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert lib.read_bytes() == before
