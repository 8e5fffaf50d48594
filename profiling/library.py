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
Writers are serialised by an exclusive lock on ``<library>.lock``. An import that only adds rows
(``write_library(..., stored_rows=n)``) copies the stored columns into the temporary file as they
are (HDF5 object copy: the checksummed chunks, not decoded and encoded again) and appends the new
rows to them, so a day's export costs a file copy, not a re-encoding of the library.
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

from profiling._native.textcol import decode_text
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
    return {"at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
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


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunk shape of a dataset of ``shape``: up to ``_CHUNK`` elements of a column, or whole
    rows of a matrix."""
    if len(shape) == 1:
        return (max(1, min(shape[0], _CHUNK)),)
    return (max(1, min(shape[0], max(1, _CHUNK // max(1, shape[1])))), max(1, shape[1]))


def _create(group: h5py.Group, name: str, data: np.ndarray) -> None:
    maxshape = (None,) if data.ndim == 1 else (None, None)
    group.create_dataset(name, data=data, fletcher32=True, chunks=_chunks(data.shape),
                         maxshape=maxshape)


def _extendable(ds, rows: int, width: int | None = None) -> bool:
    """Can ``rows`` rows be appended to the stored dataset ``ds`` in place, keeping the chunk
    layout ``_create`` would give the longer dataset? (A dataset created short has short chunks:
    it is written anew instead, so a library grown by appends reads like one written whole.)"""
    if not isinstance(ds, h5py.Dataset) or ds.chunks is None or not ds.fletcher32:
        return False
    if ds.maxshape[0] is not None or len(ds.shape) != (1 if width is None else 2):
        return False
    shape = (ds.shape[0] + rows,) if width is None else (ds.shape[0] + rows, width)
    if width is not None and (ds.shape[1] != width or ds.maxshape[1] is not None):
        return False
    want = _chunks(shape)
    return ds.chunks[0] >= want[0] and ds.chunks[1:] == want[1:]


def _extend(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """Append ``data``'s rows to the dataset ``group[name]``."""
    if not len(data):
        return
    ds = group[name]
    if not _extendable(ds, len(data), data.shape[1] if data.ndim == 2 else None):
        # short chunks (so a short dataset, read whole cheaply): written anew, old rows first
        old = ds[()]
        del group[name]
        _create(group, name, np.concatenate([old.astype(data.dtype, copy=False), data]))
        return
    n = ds.shape[0]
    ds.resize(n + len(data), axis=0)
    ds[n:] = data


def _encode_text(values) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes and n + 1 character offsets of a sequence of strings ('' for missing)."""
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
    return np.frombuffer(blob, dtype=np.uint8), offsets


def _encode(kind: str, values) -> np.ndarray:
    """The stored form of a column that is not text."""
    if kind == "date":
        days = pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[D]")
        out = days.astype(np.int64)
        out[np.isnat(days)] = _DATE_MISSING
        return out.astype(np.int32)
    if kind == "count":
        arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
        return np.where(np.isnan(arr), MISSING_COUNT, arr).astype(np.int64)
    return np.asarray(values, dtype=np.float64)


_STORED_DTYPE = {"date": np.int32, "count": np.int64, "float": np.float64}


def _write_column(group: h5py.Group, name: str, kind: str, values) -> None:
    if kind in ("text", "tokens"):
        blob, offsets = _encode_text(values)
        sub = group.create_group(name)
        _create(sub, "utf8", blob)
        _create(sub, "offsets", offsets)
    else:
        _create(group, name, _encode(kind, values))


def _stored_rows(node) -> int:
    return node["offsets"].shape[0] - 1 if isinstance(node, h5py.Group) else node.shape[0]


def _append_column(group: h5py.Group, name: str, kind: str, values) -> None:
    """Append rows to a column stored by :func:`_write_column`."""
    if kind in ("text", "tokens"):
        blob, offsets = _encode_text(values)
        sub = group[name]
        last = int(sub["offsets"][-1])
        _extend(sub, "utf8", blob)
        _extend(sub, "offsets", offsets[1:] + last)
    else:
        _extend(group, name, _encode(kind, values))


def _appendable_column(node, kind: str, rows: int, total: int) -> bool:
    """Is ``node`` a column stored by :func:`_write_column` of ``kind`` with ``rows`` rows, that
    can grow to ``total`` rows in place?"""
    if kind in ("text", "tokens"):
        if not isinstance(node, h5py.Group) or set(node) != {"utf8", "offsets"}:
            return False
        offsets, utf8 = node["offsets"], node["utf8"]
        return (offsets.dtype == np.int64 and utf8.dtype == np.uint8 and utf8.ndim == 1
                and utf8.maxshape == (None,) and utf8.fletcher32
                and offsets.shape[0] == rows + 1 and _extendable(offsets, total - rows))
    return (isinstance(node, h5py.Dataset) and node.dtype == _STORED_DTYPE.get(kind, np.float64)
            and node.shape == (rows,) and _extendable(node, total - rows))


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
        # compiled: one pass over the bytes; equal strings share one str object
        return decode_text(np.ascontiguousarray(node["utf8"][()], dtype=np.uint8),
                           np.ascontiguousarray(node["offsets"][()], dtype=np.int64))
    data = node[()]
    if data.dtype == np.int32:  # dates
        out = data.astype("datetime64[D]")
        out[data == _DATE_MISSING] = np.datetime64("NaT")
        return out.astype("datetime64[s]")
    return data


def _write_table(group: h5py.Group, frame: pd.DataFrame, kinds: dict[str, str]) -> None:
    """Store ``frame`` in ``group``. A column the group already holds (copied from the library
    by :func:`_copy_stored` for an import that only adds rows) holds the frame's first rows:
    the rows after them are appended."""
    group.attrs["n_rows"] = len(frame)
    group.attrs["columns"] = list(frame.columns) if len(frame.columns) else np.array([], dtype="S1")
    for column in frame.columns:
        kind = kinds.get(column, "text")
        if column in group:
            stored = _stored_rows(group[column])
            _append_column(group, column, kind, frame[column].iloc[stored:].to_numpy())
        else:
            _write_column(group, column, kind, frame[column].to_numpy())


#: the dtype pandas gives a column of str objects (pandas 3: its string dtype; pandas 2: object)
_TEXT_DTYPE = pd.Series(np.array([""], dtype=object)).dtype


def _text_array(values: np.ndarray):
    """A decoded text column as pandas would store it, without pandas inferring the type of and
    copying 10^6 objects again (a StringArray over the object array: one scan that they are
    str)."""
    if not len(values):
        return values                   # pandas decides, as for any empty object column
    if getattr(_TEXT_DTYPE, "storage", None) == "python":
        return pd.arrays.StringArray(values, dtype=_TEXT_DTYPE)
    return values if _TEXT_DTYPE == object else pd.array(values, dtype=_TEXT_DTYPE)


def _read_table(group: h5py.Group) -> pd.DataFrame:
    n = int(group.attrs["n_rows"])
    columns = [c.decode() if isinstance(c, bytes) else str(c) for c in group.attrs["columns"]]
    data = {}
    for c in columns:
        values = _read_column(group[c])
        data[c] = _text_array(values) if isinstance(group[c], h5py.Group) else values
    # the arrays are new and the frame's alone: no copy
    return pd.DataFrame(data, index=range(n), copy=False)


def _write_data(root: h5py.Group, data: LibraryData) -> None:
    """Records, attributes and profiles of ``data`` into ``root``. What ``root`` already holds
    (columns and matrix copied by :func:`_copy_stored` from the library, holding ``data``'s
    first rows) is appended to; everything else is written whole."""
    _write_table(root.require_group("records"), data.records[list(RECORD_KINDS)], RECORD_KINDS)
    attrs = root.require_group("attributes")
    _write_table(attrs, data.attributes, {})
    attrs.attrs["personal"] = json.dumps(sorted(data.personal))
    prof = root.require_group("profiles")
    matrix = np.asarray(data.profiles, dtype=np.float64).reshape(data.n, len(data.compounds))
    if "matrix" in prof:
        _extend(prof, "matrix", np.ascontiguousarray(matrix[prof["matrix"].shape[0]:]))
    else:
        _create(prof, "matrix", np.ascontiguousarray(matrix))
    if "compounds" not in prof:
        _write_column(prof, "compounds", "text", data.compounds)


def _copy_stored(old: h5py.Group, new: h5py.Group, data: LibraryData, rows: int) -> bool:
    """For an import that only added rows: copy into ``new`` the record and attribute columns and
    the profile matrix of the library ``old`` that ``data`` extends (its first ``rows`` rows are
    the stored ones) and that can grow in place; :func:`_write_data` then appends the new rows
    to them and writes the rest whole. False (nothing copied) when the library does not hold
    ``rows`` rows, or holds columns ``data`` does not: then the library is written whole."""
    if not all(g in old for g in ("records", "attributes", "profiles")):
        return False
    records, attributes = old["records"], old["attributes"]
    if int(records.attrs.get("n_rows", -1)) != rows or rows > data.n:
        return False
    stored_attrs = [c.decode() if isinstance(c, bytes) else str(c)
                    for c in attributes.attrs.get("columns", [])]
    if int(attributes.attrs.get("n_rows", -1)) != rows or \
            not set(stored_attrs) <= set(data.attributes.columns):
        return False
    stored_compounds = _read_column(old["profiles"]["compounds"]).tolist()
    if stored_compounds != list(data.compounds[:len(stored_compounds)]):
        return False
    copy = []
    for group, columns, kinds in ((records, list(RECORD_KINDS), RECORD_KINDS),
                                  (attributes, stored_attrs, {})):
        for column in columns:
            if column in group and _appendable_column(group[column], kinds.get(column, "text"),
                                                      rows, data.n):
                copy.append((group.name.strip("/"), column))
    for group, column in copy:
        target = new.require_group(group)
        old.copy(old[group][column], target, name=column)
    prof = new.require_group("profiles")
    matrix = old["profiles"]["matrix"]
    if stored_compounds == list(data.compounds) and matrix.dtype == np.float64 and \
            matrix.shape == (rows, len(stored_compounds)) and \
            _extendable(matrix, data.n - rows, len(stored_compounds)):
        old.copy(matrix, prof, name="matrix")
        old.copy(old["profiles"]["compounds"], prof, name="compounds")
    # (a new compound widens the matrix: it is written whole, with NaN (not measured) for the
    # stored rows in the new columns, from data.profiles)
    return True


def _same_history(old: h5py.Group, history: LibraryData) -> bool:
    """Does the library's stored history hold exactly ``history``'s rows and layout (an import
    that only added rows and no new compound or attribute)?"""
    if "history" not in old or "records" not in old["history"]:
        return False
    hist = old["history"]
    try:
        stored_attrs = [c.decode() if isinstance(c, bytes) else str(c)
                        for c in hist["attributes"].attrs.get("columns", [])]
        return (int(hist["records"].attrs["n_rows"]) == history.n
                and _read_column(hist["profiles"]["compounds"]).tolist() == list(history.compounds)
                and stored_attrs == list(history.attributes.columns))
    except KeyError:
        return False


def _read_data(root: h5py.Group) -> LibraryData:
    records = _read_table(root["records"])
    for name in RECORD_KINDS:
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
                  audit: dict | None = None, *, stored_rows: int = 0) -> None:
    """Atomically replace the library at ``path`` with ``data`` (caller holds the write lock).

    Groups of the old file that this module does not manage (calibrations, classes, …) are
    copied over unchanged, except those ``extra`` writes anew (``extra[name](group)``): one
    write, so a command that changes records and links together is atomic as a whole.

    ``stored_rows=n`` says that ``data``'s first ``n`` records, attributes and profiles are the
    library's, unchanged, and its history is the library's (an import that only added rows): the
    stored columns are then copied as they are and the rows after them appended (same contents
    as a whole write). The library is written whole when it does not hold ``n`` rows.
    """
    extra = extra or {}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove_stale_temporaries(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        with contextlib.ExitStack() as stack:
            f = stack.enter_context(h5py.File(tmp, "w", libver=("earliest", "latest")))
            old = stack.enter_context(h5py.File(path, "r")) if path.exists() else None
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["created_by"] = "profiling"
            appending = (old is not None and stored_rows > 0
                         and _copy_stored(old, f, data, stored_rows))
            _write_data(f, data)
            _write_table(f.create_group("provenance"), data.provenance, PROVENANCE_COLUMNS)
            if data.history is not None and data.history.n:
                if appending and _same_history(old, data.history):
                    old.copy(old["history"], f, name="history")
                else:
                    hist = f.create_group("history")
                    _write_data(hist, data.history)
                    _write_table(hist.create_group("superseded"),
                                 data.history.records[["superseded_at", "superseded_by_import"]],
                                 HISTORY_KINDS)
            if old is not None:
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
