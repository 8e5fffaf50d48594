"""The profile library: one HDF5 file that accumulates every imported exhibit.

Layout (schema version in the root attribute ``schema_version``)::

    /records/<field>        one dataset (or text column group) per canonical field, N rows
    /attributes/<name>      extra export columns kept as text (attr_<name> in outputs)
    /profiles/matrix        float64 [N, d] peak areas; 0 = not detected, NaN = not measured
    /profiles/compounds     d compound names
    /history/...            superseded versions of exhibits (same layout) + when and by which import
    /provenance/<column>    one row per import: source name, SHA-256, time, row counts
    (other groups, e.g. calibrations and classes, are carried over untouched by every write)

Text columns are stored as a UTF-8 blob plus character offsets, so that every byte of the
library sits in a chunked dataset with a Fletcher-32 checksum: corruption is detected on read
and reported as :class:`~profiling.errors.LibraryCorruptError`.

Writes are atomic: the new state is written to a temporary file beside the library, flushed to
disk and renamed over it, so a process killed mid-write leaves the previous file as it was.
Writers are serialised by an exclusive lock on ``<library>.lock``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from profiling.errors import LibraryCorruptError, LibraryError, LibraryLockedError
from profiling.records import FIELDS, MISSING_COUNT

SCHEMA_VERSION = 1
MANAGED_GROUPS = ("records", "attributes", "profiles", "history", "provenance", "audit")
_DATE_MISSING = np.iinfo(np.int32).min
_CHUNK = 1 << 16

PROVENANCE_COLUMNS = {
    "import_id": "count", "source": "text", "sha256": "text", "imported_at": "text",
    "read": "count", "accepted": "count", "quarantined": "count", "duplicates": "count",
    "conflicts": "count", "superseded": "count",
}


AUDIT_COLUMNS = {"at": "text", "user": "text", "command": "text", "inputs": "text",
                 "change": "text"}
AUDIT_GROUP = "audit"


def audit_row(change: str, inputs: str = "") -> dict:
    """Who (OS user), when (UTC), the command line, input file hashes and what changed."""
    import datetime as dt
    import getpass
    import shlex
    import sys

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "user": user, "command": shlex.join(sys.argv), "inputs": inputs, "change": change}


def _append_audit(old: h5py.File | None, new: h5py.File, row: dict) -> None:
    """The audit log is append-only: the old rows are copied, one row is added."""
    rows = _read_table(old[AUDIT_GROUP]) if old is not None and AUDIT_GROUP in old else \
        empty_frame(AUDIT_COLUMNS)
    rows = pd.concat([rows, pd.DataFrame([row])], ignore_index=True) if len(rows) else \
        pd.DataFrame([row])
    _write_table(new.create_group(AUDIT_GROUP), rows[list(AUDIT_COLUMNS)], AUDIT_COLUMNS)


@dataclass
class LibraryData:
    """Everything a library holds about exhibits, in memory."""

    records: pd.DataFrame                      # canonical FIELDS, one row per exhibit
    profiles: np.ndarray                       # float64 [N, d]
    compounds: list[str]
    attributes: pd.DataFrame                   # attr_<name> text columns, same rows
    provenance: pd.DataFrame = field(default_factory=lambda: empty_frame(PROVENANCE_COLUMNS))
    history: LibraryData | None = None         # superseded versions (+ superseded_at, _by)
    personal: list[str] = field(default_factory=list)   # attr_ columns marked personal

    @property
    def n(self) -> int:
        return len(self.records)


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    dtypes = {"text": object, "count": np.int64, "float": np.float64, "date": "datetime64[s]",
              "tokens": object}
    return pd.DataFrame({c: pd.Series([], dtype=dtypes[k]) for c, k in columns.items()})


RECORD_KINDS = {f.name: f.kind for f in FIELDS}


def blank_records(n: int) -> pd.DataFrame:
    """``n`` records with every field missing ('' text, -1 counts, NaT dates, NaN numbers):
    the starting point for building records in code (benchmarks, synthetic tests)."""
    fill = {"text": lambda: np.full(n, "", dtype=object), "tokens": lambda: np.full(n, "", dtype=object),
            "count": lambda: np.full(n, MISSING_COUNT, dtype=np.int64),
            "date": lambda: np.full(n, np.datetime64("NaT"), dtype="datetime64[s]"),
            "float": lambda: np.full(n, np.nan)}
    return pd.DataFrame({name: fill[kind]() for name, kind in RECORD_KINDS.items()})
HISTORY_KINDS = {**RECORD_KINDS, "superseded_at": "text", "superseded_by_import": "count"}


def empty_library() -> LibraryData:
    return LibraryData(empty_frame(RECORD_KINDS), np.zeros((0, 0)), [], pd.DataFrame(index=range(0)))


# --- column encoding ------------------------------------------------------------------------


def _create(group: h5py.Group, name: str, data: np.ndarray) -> None:
    kwargs = {"fletcher32": True}
    if data.ndim == 1:
        kwargs["chunks"] = (max(1, min(len(data), _CHUNK)),)
        kwargs["maxshape"] = (None,)
    else:
        rows = max(1, min(data.shape[0], max(1, _CHUNK // max(1, data.shape[1]))))
        kwargs["chunks"] = (rows, max(1, data.shape[1]))
        kwargs["maxshape"] = (None, None)
    group.create_dataset(name, data=data, **kwargs)


def _write_column(group: h5py.Group, name: str, kind: str, values) -> None:
    if kind in ("text", "tokens"):
        strings = list(values)
        try:
            joined = "".join(strings)
        except TypeError:  # a missing value that is not ''
            strings = ["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v)
                       for v in strings]
            joined = "".join(strings)
        blob = joined.encode("utf-8")
        offsets = np.zeros(len(strings) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, strings), dtype=np.int64, count=len(strings)),
                  out=offsets[1:])
        sub = group.create_group(name)
        _create(sub, "utf8", np.frombuffer(blob, dtype=np.uint8))
        _create(sub, "offsets", offsets)
    elif kind == "date":
        days = pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[D]")
        out = days.astype(np.int64)
        out[np.isnat(days)] = _DATE_MISSING
        _create(group, name, out.astype(np.int32))
    elif kind == "count":
        arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
        out = np.where(np.isnan(arr), MISSING_COUNT, arr).astype(np.int64)
        _create(group, name, out)
    else:
        _create(group, name, np.asarray(values, dtype=np.float64))


def _read_column(node) -> np.ndarray:
    try:
        return _decode_column(node)
    except OSError as err:
        raise LibraryCorruptError(
            f"dataset {node.name} of library {Path(node.file.filename).name} fails its "
            f"Fletcher-32 checksum or cannot be read ({_describe(err)}); the library was not "
            "read: restore it from a backup.") from None


def _decode_column(node) -> np.ndarray:
    if isinstance(node, h5py.Group):
        text = node["utf8"][()].tobytes().decode("utf-8")
        offsets = node["offsets"][()]
        return np.array([text[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())],
                        dtype=object)
    data = node[()]
    if data.dtype == np.int32:  # dates
        out = data.astype("datetime64[D]")
        out[data == _DATE_MISSING] = np.datetime64("NaT")
        return out.astype("datetime64[s]")
    return data


def _write_table(group: h5py.Group, frame: pd.DataFrame, kinds: dict[str, str]) -> None:
    group.attrs["n_rows"] = len(frame)
    group.attrs["columns"] = list(frame.columns) if len(frame.columns) else np.array([], dtype="S1")
    for column in frame.columns:
        _write_column(group, column, kinds.get(column, "text"), frame[column].to_numpy())


def _read_table(group: h5py.Group) -> pd.DataFrame:
    n = int(group.attrs["n_rows"])
    columns = [c.decode() if isinstance(c, bytes) else str(c) for c in group.attrs["columns"]]
    return pd.DataFrame({c: _read_column(group[c]) for c in columns}, index=range(n))


def _write_data(root: h5py.Group, data: LibraryData) -> None:
    _write_table(root.create_group("records"), data.records[list(RECORD_KINDS)], RECORD_KINDS)
    attrs = root.create_group("attributes")
    _write_table(attrs, data.attributes, {})
    attrs.attrs["personal"] = json.dumps(sorted(data.personal))
    prof = root.create_group("profiles")
    _create(prof, "matrix", np.ascontiguousarray(data.profiles, dtype=np.float64).reshape(
        data.n, len(data.compounds)))
    _write_column(prof, "compounds", "text", data.compounds)


def _read_data(root: h5py.Group) -> LibraryData:
    records = _read_table(root["records"])
    for name, kind in RECORD_KINDS.items():
        if name not in records:
            raise LibraryCorruptError(f"the library has no records/{name} dataset.")
    attributes = _read_table(root["attributes"])
    personal = json.loads(root["attributes"].attrs.get("personal", "[]"))
    compounds = _read_column(root["profiles"]["compounds"]).tolist()
    matrix = _read_column(root["profiles"]["matrix"])
    if matrix.shape != (len(records), len(compounds)):
        raise LibraryCorruptError(
            f"profile matrix shape {matrix.shape} does not match {len(records)} records x "
            f"{len(compounds)} compounds.")
    return LibraryData(records, matrix, compounds, attributes, personal=personal)


# --- files ----------------------------------------------------------------------------------


def read_library(path: str | Path) -> LibraryData:
    """Read a whole library into memory. Missing file -> LibraryError; bad bytes ->
    LibraryCorruptError."""
    path = Path(path)
    if not path.exists():
        raise LibraryError(f"library {path} does not exist (create it with `profile ingest`).")
    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("schema_version")
            if version is None:
                raise LibraryCorruptError(f"{path.name} is an HDF5 file but not a profile library "
                                          "(no schema_version).")
            if int(version) > SCHEMA_VERSION:
                raise LibraryError(f"{path.name} has schema version {int(version)}; this version of "
                                   f"profiling reads up to {SCHEMA_VERSION}. Upgrade profiling.")
            data = _read_data(f)
            data.provenance = _read_table(f["provenance"])
            if "history" in f and "records" in f["history"]:
                hist = _read_data(f["history"])
                extra = _read_table(f["history"]["superseded"])
                hist.records = pd.concat([hist.records, extra], axis=1)
                data.history = hist
            return data
    except (LibraryError, LibraryCorruptError):
        raise
    except (OSError, KeyError, ValueError, UnicodeDecodeError) as err:
        raise LibraryCorruptError(
            f"library {path.name} is damaged and was not read ({_describe(err)}); restore it "
            "from a backup.") from None


def _describe(err: Exception) -> str:
    text = str(err)
    if "Fletcher32" in text or "checksum" in text.lower() or "filter returned failure" in text:
        return "checksum mismatch"
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def write_lock(path: str | Path, timeout_s: float = 600.0) -> Iterator[None]:
    """Exclusive lock serialising writers of one library (``<library>.lock``)."""
    lock_path = Path(str(path) + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LibraryLockedError(
                        f"library {Path(path).name} is being written by another process; waited "
                        f"{timeout_s:.0f} s for it to finish.") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def write_library(path: str | Path, data: LibraryData,
                  extra: dict[str, Callable[[h5py.Group], None]] | None = None,
                  audit: dict | None = None) -> None:
    """Atomically replace the library at ``path`` with ``data`` (caller holds the write lock).

    Groups of the old file that this module does not manage (calibrations, classes, …) are
    copied over unchanged, except those ``extra`` writes anew (``extra[name](group)``): one
    write, so a command that changes records and links together is atomic as a whole.
    """
    extra = extra or {}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove_stale_temporaries(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        with h5py.File(tmp, "w", libver=("earliest", "latest")) as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["created_by"] = "profiling"
            _write_data(f, data)
            _write_table(f.create_group("provenance"), data.provenance, PROVENANCE_COLUMNS)
            if data.history is not None and data.history.n:
                hist = f.create_group("history")
                _write_data(hist, data.history)
                _write_table(hist.create_group("superseded"),
                             data.history.records[["superseded_at", "superseded_by_import"]],
                             HISTORY_KINDS)
            if path.exists():
                with h5py.File(path, "r") as old:
                    for name in old:
                        if name not in MANAGED_GROUPS and name not in extra:
                            old.copy(old[name], f, name=name)
                    _append_audit(old, f, audit or audit_row("library rewritten"))
            else:
                _append_audit(None, f, audit or audit_row("library created"))
            for name in sorted(extra):
                extra[name](f.create_group(name))
        _commit(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if err.errno == errno.ENOSPC:
            raise LibraryError(f"no space left on the device holding {path.name}; the library "
                               "is unchanged.") from None
        raise LibraryError(f"could not write library {path.name}: {err}; it is unchanged.") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def replace_groups(path: str | Path, writers: dict[str, Callable[[h5py.Group], None]],
                   change: str | None = None, inputs: str = "", drop=()) -> None:
    """Atomically replace (or add) top-level groups of an existing library, copying every other
    group unchanged but those named in ``drop`` (caller holds the write lock).
    ``writers[name](group)`` fills the new group."""
    path = Path(path)
    if not path.exists():
        raise LibraryError(f"library {path} does not exist (create it with `profile ingest`).")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove_stale_temporaries(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        with h5py.File(path, "r") as old, h5py.File(tmp, "w", libver=("earliest", "latest")) as f:
            for key, value in old.attrs.items():
                f.attrs[key] = value
            for name in old:
                if name not in writers and name != AUDIT_GROUP and name not in drop:
                    old.copy(old[name], f, name=name)
            for name in sorted(writers):
                writers[name](f.create_group(name))
            _append_audit(old, f, audit_row(change or "replaced " + ", ".join(sorted(writers)),
                                            inputs))
        _commit(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LibraryError(f"could not write library {path.name}: {err}; it is unchanged.") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _commit(tmp: Path, path: Path) -> None:
    """fsync the new file, rename it over the library, fsync the directory."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_frame(group: h5py.Group, frame: pd.DataFrame, kinds: dict[str, str] | None = None) -> None:
    """Store a small table (text, count, float or date columns) in ``group``."""
    kinds = kinds or {c: ("float" if frame[c].dtype.kind == "f" else
                          "count" if frame[c].dtype.kind in "iub" else "text") for c in frame.columns}
    _write_table(group, frame, kinds)


def read_frame(path: str | Path, name: str) -> pd.DataFrame | None:
    """A table stored with :func:`write_frame`, or None when the library has no such group."""
    try:
        with h5py.File(path, "r") as f:
            if name not in f:
                return None
            return _read_table(f[name])
    except OSError as err:
        raise LibraryCorruptError(f"library {Path(path).name} is damaged ({_describe(err)}).") from None


def write_edges(group: h5py.Group, ids, a: np.ndarray, b: np.ndarray, score: np.ndarray) -> None:
    """Store links compactly: the exhibit ids once, each link as two positions into them and its
    score (a library's links grow with the square of its classes' sizes)."""
    group.attrs["n_rows"] = len(a)
    _write_column(group, "exhibit_ids", "text", ids)
    _create(group, "a", np.asarray(a, dtype=np.uint32))
    _create(group, "b", np.asarray(b, dtype=np.uint32))
    _create(group, "score", np.asarray(score, dtype=np.float64))


def edges_problem(edges) -> str | None:
    """What is wrong with stored links (as :func:`read_edges` returns them) that would make
    following them wrong, or None."""
    ids, a, b, _ = edges
    if len(a) and max(int(a.max()), int(b.max())) >= len(ids):
        return f"links point past their {len(ids)} exhibit ids."
    return None


def read_edges(path: str | Path, name: str):
    """(exhibit ids, a, b, score) stored by :func:`write_edges`, or None."""
    try:
        with h5py.File(path, "r") as f:
            if name not in f or "a" not in f[name]:
                return None
            g = f[name]
            return (_read_column(g["exhibit_ids"]), _read_column(g["a"]), _read_column(g["b"]),
                    _read_column(g["score"]))       # positions stay uint32: 4 bytes a link end
    except OSError as err:
        raise LibraryCorruptError(f"library {Path(path).name} is damaged ({_describe(err)}).") from None


def read_attr(path: str | Path, name: str, attr: str):
    with h5py.File(path, "r") as f:
        return f[name].attrs.get(attr) if name in f else None


def read_audit(path: str | Path) -> pd.DataFrame:
    frame = read_frame(path, AUDIT_GROUP)
    return frame if frame is not None else empty_frame(AUDIT_COLUMNS)


def verify_library(path: str | Path) -> list[str]:
    """Check a library end to end; returns the problems found, first problem first (empty: the
    library is sound). Every dataset is read in full, so every checksum is checked."""
    path = Path(path)
    problems: list[str] = []
    if not path.exists():
        return [f"{path} does not exist."]
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        return [f"{path.name} cannot be opened as HDF5 ({_describe(err)})."]
    with f:
        if "schema_version" not in f.attrs:
            return [f"{path.name} has no schema_version: not a profile library."]
        if int(f.attrs["schema_version"]) > SCHEMA_VERSION:
            problems.append(f"schema version {int(f.attrs['schema_version'])} is newer than "
                            f"{SCHEMA_VERSION}.")
        for group in ("records", "attributes", "profiles", "provenance"):
            if group not in f:
                problems.append(f"group /{group} is missing.")
        if problems:
            return problems
        bad: list[str] = []

        def check(name, node):
            if isinstance(node, h5py.Dataset) and not bad:
                try:
                    node[()]
                except OSError as err:
                    bad.append(f"dataset /{name} fails its checksum ({_describe(err)}).")
        f.visititems(check)
        if bad:
            return bad
        n = int(f["records"].attrs["n_rows"])
        for column in RECORD_KINDS:
            if column not in f["records"]:
                problems.append(f"records/{column} is missing.")
                continue
            node = f["records"][column]
            length = len(node["offsets"]) - 1 if isinstance(node, h5py.Group) else len(node)
            if length != n:
                problems.append(f"records/{column} has {length} rows, the library {n}.")
        if f["profiles"]["matrix"].shape[0] != n:
            problems.append(f"profiles/matrix has {f['profiles']['matrix'].shape[0]} rows, "
                            f"the library {n}.")
    if problems:
        return problems
    data = read_library(path)
    ids = data.records["exhibit_id"]
    if (ids == "").any():
        problems.append(f"{int((ids == '').sum())} records have no exhibit id.")
    if not ids.is_unique:
        problems.append(f"exhibit id {ids[ids.duplicated()].iloc[0]!r} appears more than once.")
    prov = data.provenance
    expected = int(prov["accepted"].sum() - prov["superseded"].sum()) if len(prov) else 0
    if expected != data.n:
        problems.append(f"provenance accounts for {expected} exhibits (accepted minus "
                        f"superseded), the records hold {data.n}.")
    history = data.history.n if data.history is not None else 0
    if len(prov) and int(prov["superseded"].sum()) != history:
        problems.append(f"provenance records {int(prov['superseded'].sum())} superseded versions, "
                        f"the history holds {history}.")
    known = set(ids)
    named = []
    classes = read_frame(path, "classes")
    if classes is not None:
        named.append(("classes", classes["exhibit_id"]))
    edges = read_edges(path, "links")
    if edges is not None:
        named.append(("links", edges[0]))
        if (problem := edges_problem(edges)) is not None:
            problems.append(problem)
    for group, column in named:
        missing = sorted(set(column) - known)
        if missing:
            problems.append(f"{group} names exhibit {missing[0]!r}, which is not in the "
                            f"records ({len(missing)} such).")
    return problems


def _remove_stale_temporaries(path: Path) -> None:
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def profile_frame(data: LibraryData) -> pd.DataFrame:
    """Profiles as a DataFrame with one ``p_<compound>`` column per compound."""
    return pd.DataFrame(data.profiles, columns=[f"p_{c}" for c in data.compounds],
                        index=data.records.index)
