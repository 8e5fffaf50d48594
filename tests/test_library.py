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
import pandas as pd
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


def kill_while_writing(tmp_path, source, lib, tries, pause, check) -> int:
    """Run an import of ``source`` into ``lib`` in a subprocess ``tries`` times, each killed with
    SIGKILL as soon as its temporary file appears (or when it ends); ``check()`` after each.
    Returns how many were caught mid-write."""
    script = tmp_path / "run.py"
    script.write_text(INGEST_SCRIPT)
    killed_mid_write = 0
    for _ in range(tries):
        proc = subprocess.Popen([sys.executable, str(script), str(source), str(lib),
                                 str(tmp_path / "q2.csv")])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list(tmp_path.glob(f".{lib.name}.tmp-*")):
                killed_mid_write += 1
                break
            time.sleep(pause)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check()
    return killed_mid_write


def test_kill_during_import_leaves_library_unchanged_and_readable(tmp_path):
    lib = tmp_path / "lib.h5"
    first = big_export(tmp_path / "first.csv", 2000, "F")
    ingest([first], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    before, n_before = sha(lib), read_library(lib).n
    second = big_export(tmp_path / "second.csv", 150_000, "S")

    def unchanged():
        assert sha(lib) == before
        assert read_library(lib).n == n_before

    killed_mid_write = kill_while_writing(tmp_path, second, lib, 3, 0.001, unchanged)
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
        with pytest.raises(LibraryLockedError, match="being written by another process"), \
                write_lock(lib, timeout_s=0.3):
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


# --- appends (issue 14): an import that only adds rows copies the stored columns and appends --


def library_state(path: Path) -> dict:
    """Every dataset of a library with its storage layout and bytes, but the fields that hold
    the time of a write (audit 'at', provenance 'imported_at', history 'superseded_at')."""
    volatile = ("audit/at/", "provenance/imported_at/", "history/superseded/superseded_at/")
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, node):
            if isinstance(node, h5py.Dataset) and not (name + "/").startswith(volatile):
                out[name] = (node.shape, node.dtype.str, node.chunks, node.maxshape,
                             node.fletcher32, node[()].tobytes())
            for key, value in node.attrs.items():
                out[f"{name}@{key}"] = repr(np.asarray(value).tolist())
        f.visititems(visit)
        out["@"] = sorted(f.attrs)
    return out


APPEND_STEPS = [
    # (rows, supersede, mapping): the conftest export, then exports that bring duplicates,
    # conflicts, new compounds, new (personal) attributes and superseded versions
    ("first", None, False),
    ("dup_conflict_new", None, False),
    ("new_compound_attr", "personal", False),
    ("supersede", None, True),
    ("after_history", None, False),
    ("new_compound_after_history", None, False),
    ("after_history", None, False),          # the same export again: nothing but duplicates
]


def _step_export(tmp_path: Path, name: str) -> Path:
    from .conftest import ROWS, write_export
    if name == "first":
        return write_export(tmp_path / "first.csv")
    if name == "dup_conflict_new":
        rows = [ROWS[0], ROWS[1].replace("0.28", "0.30"),
                *[f"N{k},S9,Met,Camden,4/2/2025,10/02/2025,Crack,TP,{100 + k} mg,0.09 g,1 rock,"
                  f"{20 + k}%,levamisole,foil,£10,{1000 + k},{k}," for k in range(30)]]
        return write_export(tmp_path / "dup_conflict_new.csv", rows)
    if name == "new_compound_attr":
        path = tmp_path / "new_compound_attr.csv"
        path.write_text("exhibit_id,weight_before_g,p_cuscohygrine,p_tropacocaine,Officer\n"
                        + "".join(f"C{k},{k + 1} g,{55 + k},{k},PC {k}\n" for k in range(20)))
        return path
    if name == "supersede":
        return write_export(tmp_path / "supersede.csv", [ROWS[0].replace("34%", "36%")])
    if name == "after_history":
        return write_export(tmp_path / "after_history.csv", [
            f"H{k},S8,Met,Hackney,5/2/2025,11/02/2025,Crack,TP,{200 + k} mg,0.19 g,2 rocks,"
            f"{30 + k}%,caffeine,cling film,£20,{2000 + k},{k},é{k}" for k in range(25)])
    path = tmp_path / "new_compound_after_history.csv"
    path.write_text("exhibit_id,weight_before_g,p_hygrine,Notes\n"
                    + "".join(f"G{k},{k + 2} g,{70 + k},😀 {k}\n" for k in range(12)))
    return path


def _run_steps(tmp_path: Path, lib: Path, monkeypatch, whole: bool) -> list:
    from profiling import library

    appended = []
    real = library._copy_stored

    def spy(*args):
        done = False if whole else real(*args)
        appended.append(done)
        return done

    mapping = tmp_path / "personal.toml"
    mapping.write_text('[options]\npersonal = ["Officer"]\n')
    with monkeypatch.context() as m:
        m.setattr(library, "_CHUNK", 8)      # short chunks: the appends cross chunk boundaries
        m.setattr(library, "_copy_stored", spy)
        for k, (name, personal, supersede) in enumerate(APPEND_STEPS):
            r = ingest([_step_export(tmp_path, name)], lib, quarantine=tmp_path / f"q{k}.csv",
                       as_of=AS_OF, supersede=supersede, mapping=mapping if personal else None,
                       then=lambda new_lib, rep: ({}, f"then saw {new_lib.n} exhibits"))
            assert r.reconciles
    return appended


def test_append_writes_the_library_a_whole_write_writes(tmp_path, monkeypatch):
    appended = _run_steps(tmp_path, tmp_path / "append.h5", monkeypatch, whole=False)
    _run_steps(tmp_path, tmp_path / "whole.h5", monkeypatch, whole=True)
    # every import but the first (no library yet) and the superseding one appended
    assert appended == [True, True, True, True, True], appended
    a, b = library_state(tmp_path / "append.h5"), library_state(tmp_path / "whole.h5")
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    x, y = read_library(tmp_path / "append.h5"), read_library(tmp_path / "whole.h5")
    assert x.n == 4 + 30 + 20 + 25 + 12
    assert x.compounds == ["tropacocaine", "norcocaine", "cuscohygrine", "hygrine"]
    assert x.personal == ["attr_officer"] and x.history.n == 1
    assert x.records.equals(y.records) and x.attributes.equals(y.attributes)
    assert np.array_equal(x.profiles, y.profiles, equal_nan=True)
    assert x.provenance.drop(columns="imported_at").equals(y.provenance.drop(columns="imported_at"))
    from profiling.library import read_audit, verify_library
    assert read_audit(tmp_path / "append.h5").drop(columns="at").equals(
        read_audit(tmp_path / "whole.h5").drop(columns="at"))
    assert verify_library(tmp_path / "append.h5") == []


def test_append_keeps_other_groups_and_replaces_those_then_writes(tmp_path, export):  # noqa: F811
    from profiling.library import read_frame, write_frame

    lib = tmp_path / "lib.h5"
    ingest([export], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)

    def then(new_lib, rep):
        def classes(g):
            write_frame(g, pd.DataFrame({"exhibit_id": new_lib.records["exhibit_id"],
                                         "n": np.arange(new_lib.n)}))
        return {"classes": classes}, "classes written"

    second = big_export(tmp_path / "second.csv", 50, "A")
    ingest([second], lib, quarantine=tmp_path / "q2.csv", as_of=AS_OF, then=then)
    with h5py.File(lib, "a") as f:       # a group this module does not manage
        f.create_group("calibration").attrs["json"] = "{}"
    third = big_export(tmp_path / "third.csv", 20, "B")
    ingest([third], lib, quarantine=tmp_path / "q3.csv", as_of=AS_OF, then=then)
    data = read_library(lib)
    assert data.n == 4 + 50 + 20
    classes = read_frame(lib, "classes")
    assert classes["exhibit_id"].tolist() == data.records["exhibit_id"].tolist()
    assert read_attr_json(lib) == "{}"


def read_attr_json(path):
    from profiling.library import read_attr
    return read_attr(path, "calibration", "json")


def test_text_columns_round_trip_any_text(tmp_path):
    from profiling.library import LibraryData, blank_records, write_library

    texts = ["", "a", "Café", "😀 x", "nul\x00inside", "tab\tand\nnewline", "€" * 40, "a",
             "Café", "", "z" * 300, "ß"]
    records = blank_records(len(texts))
    records["exhibit_id"] = np.array([f"E{i}" for i in range(len(texts))], dtype=object)
    records["area"] = np.array(texts, dtype=object)
    data = LibraryData(records, np.zeros((len(texts), 0)), [], pd.DataFrame(index=range(len(texts))))
    write_library(tmp_path / "lib.h5", data)
    back = read_library(tmp_path / "lib.h5")
    assert back.records["area"].tolist() == texts
    assert back.records["exhibit_id"].tolist() == records["exhibit_id"].tolist()
    assert back.records["force"].tolist() == [""] * len(texts)


def test_text_offsets_that_do_not_fit_their_bytes_are_damage(tmp_path, export):  # noqa: F811
    lib = tmp_path / "lib.h5"
    ingest([export], lib, quarantine=tmp_path / "q.csv", as_of=AS_OF)
    with h5py.File(lib, "a") as f:
        offsets = f["records/area/offsets"]
        offsets[-1] = offsets[-1] + 5       # rewritten with a valid checksum: not bit rot
    with pytest.raises(LibraryCorruptError, match="damaged"):
        read_library(lib)


def test_kill_during_an_append_leaves_library_unchanged(tmp_path):
    """kill -9 while an import appends to a library whose columns have full-size chunks."""
    lib = tmp_path / "lib.h5"
    ingest([big_export(tmp_path / "first.csv", 70_000, "F")], lib, quarantine=tmp_path / "q.csv",
           as_of=AS_OF)
    before = sha(lib)
    day = big_export(tmp_path / "day.csv", 300, "D")

    def unchanged():
        assert sha(lib) == before
        assert read_library(lib).n == 70_000

    killed_mid_write = kill_while_writing(tmp_path, day, lib, 5, 0.0005, unchanged)
    assert killed_mid_write >= 1, "the writer was never caught mid-write"
    r = ingest([day], lib, quarantine=tmp_path / "q3.csv", as_of=AS_OF)
    assert r.accepted == 300
    from profiling.library import verify_library
    assert verify_library(lib) == [] and read_library(lib).n == 70_300
    assert not list(tmp_path.glob(".lib.h5.tmp-*"))
