"""The HDF5 library: atomic imports under kill -9, serialised writers, checksums, round trip."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from profiling.errors import LibraryCorruptError, LibraryLockedError
from profiling.ingest import ingest
from profiling.library import read_library, write_lock

from .conftest import AS_OF, export  # noqa: F401  (fixture)

INGEST_SCRIPT = """
import sys, datetime as dt
from profiling.ingest import ingest
ingest([sys.argv[1]], sys.argv[2], quarantine=sys.argv[3], as_of=dt.date(2026, 1, 1))
"""


def big_export(path: Path, n: int, prefix: str = "K") -> Path:
    rng = np.random.default_rng(0)
    lines = ["exhibit_id,seizure_id,weight_before_g,purity,p_tropacocaine,p_norcocaine,p_cuscohygrine"]
    areas = rng.lognormal(5, 1, (n, 3))
    for i in range(n):
        lines.append(f"{prefix}{i},S{i // 2},{0.1 + i % 97 / 100:.2f} g,{i % 90 + 5}%,"
                     f"{areas[i, 0]:.4f},{areas[i, 1]:.4f},{areas[i, 2]:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_dataframe_and_matrix(tmp_path, export):  # noqa: F811
    lib = tmp_path / "lib.h5"
    ingest([export], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    data = read_library(lib)
    assert data.records.shape[0] == data.profiles.shape[0] == 4
    assert data.profiles.dtype == np.float64
    assert list(data.records.columns[:3]) == ["exhibit_id", "seizure_id", "force"]
    with h5py.File(lib) as f:
        assert f.attrs["schema_version"] == 1
        assert f["profiles/matrix"].fletcher32
        assert f["records/weight_before_g"].fletcher32
        assert f["records/exhibit_id/utf8"].fletcher32
    assert os.stat(lib).st_mode & 0o077 == 0          # owner only


def test_kill_during_import_leaves_library_unchanged_and_readable(tmp_path):
    lib = tmp_path / "lib.h5"
    first = big_export(tmp_path / "first.csv", 2000, "F")
    ingest([first], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    before, n_before = sha(lib), read_library(lib).n
    second = big_export(tmp_path / "second.csv", 150_000, "S")
    script = tmp_path / "run.py"
    script.write_text(INGEST_SCRIPT)
    killed_mid_write = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(second), str(lib),
                                 str(tmp_path / "q2.csv")])
        tmp_file = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(tmp_path.glob(".lib.h5.tmp-*"))
            if found:
                tmp_file = found[0]
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if tmp_file is not None:
            killed_mid_write += 1
        assert sha(lib) == before
        assert read_library(lib).n == n_before
    assert killed_mid_write >= 1, "the writer was never caught mid-write"
    # the next import cleans the dead writer's temporary file and succeeds
    r = ingest([second], lib, quarantine=tmp_path / "q3.csv", as_of=AS_OF)
    assert r.accepted == 150_000 and read_library(lib).n == n_before + 150_000
    assert not list(tmp_path.glob(".lib.h5.tmp-*"))


def test_concurrent_writers_are_serialised(tmp_path):
    lib = tmp_path / "lib.h5"
    script = tmp_path / "run.py"
    script.write_text(INGEST_SCRIPT)
    exports = [big_export(tmp_path / f"e{k}.csv", 20_000, f"W{k}-") for k in range(2)]
    procs = [subprocess.Popen([sys.executable, str(script), str(e), str(lib),
                               str(tmp_path / f"q{k}.csv")]) for k, e in enumerate(exports)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    data = read_library(lib)
    assert data.n == 40_000
    assert sorted(data.provenance["import_id"].tolist()) == [1, 2]
    assert sorted(data.provenance["accepted"].tolist()) == [20_000, 20_000]
    assert data.records["exhibit_id"].is_unique


def test_lock_times_out_with_a_clear_error(tmp_path):
    lib = tmp_path / "lib.h5"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from profiling.library import write_lock\n"
        "with write_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(30)"), str(lib)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LibraryLockedError, match="being written by another process"):
            with write_lock(lib, timeout_s=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_flipped_byte_is_detected_on_read(tmp_path, export):  # noqa: F811
    lib = tmp_path / "lib.h5"
    ingest([export], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    with h5py.File(lib) as f:
        offset = f["records/weight_before_g"].id.get_chunk_info(0).byte_offset
    raw = bytearray(lib.read_bytes())
    raw[offset + 3] ^= 0xFF
    lib.write_bytes(bytes(raw))
    with pytest.raises(LibraryCorruptError, match="Fletcher-32 checksum"):
        read_library(lib)


def test_not_a_library(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"this is not hdf5 at all")
    with pytest.raises(LibraryCorruptError, match="damaged"):
        read_library(path)
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(LibraryCorruptError, match="not a profile library"):
        read_library(tmp_path / "y.h5")


def test_audit_log_is_append_only_and_verify_finds_problems(tmp_path, export):  # noqa: F811
    from profiling.library import read_audit, verify_library

    from .conftest import run_cli

    lib = tmp_path / "lib.h5"
    ingest([export], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    ingest([export], lib, quarantine=tmp_path / "q2.csv", as_of=AS_OF)
    log = read_audit(lib)
    assert len(log) == 2 and log["change"].str.startswith("import ").all()
    assert log["inputs"].str.contains("export.csv=" + sha(export)).all()
    assert verify_library(lib) == []
    r = run_cli("show", lib, "--audit")
    assert r.returncode == 0 and r.stdout.count("import ") == 2
    r = run_cli("verify", lib)
    assert r.returncode == 0 and "sound" in r.stdout
    with h5py.File(lib) as f:
        offset = f["profiles/matrix"].id.get_chunk_info(0).byte_offset
    raw = bytearray(lib.read_bytes())
    raw[offset] ^= 0x01
    lib.write_bytes(bytes(raw))
    problems = verify_library(lib)
    assert problems and problems[0].startswith("dataset /profiles/matrix fails its checksum")
    r = run_cli("verify", lib)
    assert r.returncode == 2 and "profiles/matrix" in r.stderr and "Traceback" not in r.stderr
