"""Faults: kill -9 at random points of ingest, link and calibrate; a reader during a write; disk
full. The library always opens, verifies, and holds either the state before or the state after."""

import errno
import hashlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest

from profiling.errors import LibraryError
from profiling.ingest import ingest
from profiling.library import read_library, verify_library

from .conftest import AS_OF
from .test_library import big_export
from .test_link import make_export

VOLATILE = ("audit", "provenance", "class_events")   # timestamps: not part of the state


def state(path: Path) -> str:
    """Digest of what the library holds (records, profiles, links, classes, calibration)."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        def visit(name, node):
            if name.split("/")[0] in VOLATILE:
                return
            if isinstance(node, h5py.Dataset):
                h.update(name.encode() + node[()].tobytes())
            for k, v in sorted(node.attrs.items()):
                if k == "json":
                    v = json.dumps({a: b for a, b in json.loads(v).items() if a != "created"},
                                   sort_keys=True)
                h.update(f"{name}@{k}={v}".encode())
        f.visititems(visit)
    return h.hexdigest()


def profile_cmd(*args) -> list[str]:
    return [str(Path(sys.executable).with_name("profile")), *map(str, args)]


@pytest.mark.slow
def test_twenty_kill_9_trials_leave_before_or_after(tmp_path):
    rng = random.Random(7)
    base = tmp_path / "base.h5"
    first = make_export(tmp_path / "first.csv", batches=8)
    subprocess.run(profile_cmd("link", first, "--library", base, "--out", tmp_path / "o0",
                               "--quiet", "--as-of", "2026-01-01"), check=True)
    commands = {
        "ingest": lambda lib, k: profile_cmd("ingest", big_export(tmp_path / f"b{k}.csv", 60_000, f"K{k}-"),
                                             "--library", lib, "--quiet", "--as-of", "2026-01-01"),
        "link": lambda lib, k: profile_cmd("link", make_export(tmp_path / f"m{k}.csv", seed=k + 1, batches=3,
                                                               start=100_000 * (k + 1)),
                                           "--library", lib, "--out", tmp_path / f"o{k}", "--quiet",
                                           "--as-of", "2026-01-01"),
        "calibrate": lambda lib, k: profile_cmd("calibrate", lib, "--out", tmp_path / f"c{k}",
                                                "--quiet", "--fpr", "0.02"),
    }
    outcomes = []
    for k in range(20):
        name = ["ingest", "link", "calibrate"][k % 3]
        lib = tmp_path / f"lib{k}.h5"
        lib.write_bytes(base.read_bytes())
        before = state(lib)
        cmd = commands[name](lib, k)
        # the state after a complete run, on a copy
        done = tmp_path / f"done{k}.h5"
        done.write_bytes(base.read_bytes())
        t0 = time.monotonic()
        subprocess.run([c if c != str(lib) else str(done) for c in cmd], check=True,
                       capture_output=True)
        duration = time.monotonic() - t0
        after = state(done)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.0) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert verify_library(lib) == [], (name, k)
        now = state(lib)
        assert now in (before, after), (name, k)
        outcomes.append((name, "before" if now == before else "after"))
    print("kill -9 trials:", outcomes)
    assert len(outcomes) == 20


def test_a_reader_during_a_write_sees_a_consistent_library(tmp_path):
    lib = tmp_path / "lib.h5"
    ingest([big_export(tmp_path / "a.csv", 5_000, "A")], lib, as_of=AS_OF)
    seen, errors, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(read_library(lib).n)
            except Exception as err:  # noqa: BLE001 - any failure is the finding
                errors.append(repr(err))

    t = threading.Thread(target=reader)
    t.start()
    try:
        ingest([big_export(tmp_path / "b.csv", 100_000, "B")], lib, as_of=AS_OF)
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert set(seen) <= {5_000, 105_000} and len(seen) >= 2


def test_disk_full_leaves_the_library_unchanged(tmp_path, monkeypatch):
    import profiling.library as library

    lib = tmp_path / "lib.h5"
    ingest([big_export(tmp_path / "a.csv", 1_000, "A")], lib, as_of=AS_OF)
    before = lib.read_bytes()
    real = library._write_data

    def full(root, data):
        real(root, data)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(library, "_write_data", full)
    with pytest.raises(LibraryError, match="no space left on the device"):
        ingest([big_export(tmp_path / "b.csv", 1_000, "B")], lib, as_of=AS_OF)
    assert lib.read_bytes() == before
    assert not list(tmp_path.glob(".lib.h5.tmp-*"))
