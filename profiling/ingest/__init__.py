"""Ingest: read lab exports, map their columns, normalise, check, and append to the library.

Every row read ends in exactly one place — accepted, quarantined or skipped as an exact
duplicate — and :class:`IngestReport` reconciles the counts (SPEC: Bad input).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.files import private_open
from profiling.ingest.evidence import derive, flag
from profiling.ingest.mapping import Mapping, load_mapping, plan_columns
from profiling.ingest.normalise import Normalised, normalise
from profiling.ingest.readers import RawTable, read_export
from profiling.library import (
    LibraryData,
    audit_row,
    empty_library,
    read_library,
    write_library,
    write_lock,
)
from profiling.records import CONTENT_FIELDS, FIELDS, MISSING_COUNT

__all__ = ["IngestReport", "ingest", "load_mapping", "read_export"]

#: fields compared to tell an exact duplicate from a conflict (derived values and flags follow
#: from these, and flags depend on the day of import).
COMPARED_FIELDS = tuple(f for f in CONTENT_FIELDS if f not in
                        ("analysis_loss_g", "mean_rock_g", "pure_mass_g", "flags"))


@dataclass
class FileReport:
    source: str
    sha256: str
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    conflicts: int = 0
    blank_lines: int = 0


@dataclass
class IngestReport:
    library: Path
    import_id: int
    files: list[FileReport] = field(default_factory=list)
    superseded: int = 0
    flags: Counter = field(default_factory=Counter)
    quarantine_path: Path | None = None

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def read(self) -> int:
        return self.total("read")

    @property
    def accepted(self) -> int:
        return self.total("accepted")

    @property
    def quarantined(self) -> int:
        return self.total("quarantined")

    @property
    def duplicates(self) -> int:
        return self.total("duplicates")

    @property
    def conflicts(self) -> int:
        return self.total("conflicts")

    @property
    def reconciles(self) -> bool:
        return self.read == self.accepted + self.quarantined + self.duplicates

    def as_json(self) -> dict:
        return {
            "read": self.read, "accepted": self.accepted, "quarantined": self.quarantined,
            "duplicates": self.duplicates, "conflicts": self.conflicts,
            "superseded": self.superseded, "flags": dict(sorted(self.flags.items())),
            "import_id": self.import_id,
            "quarantine_file": str(self.quarantine_path) if self.quarantine_path else None,
            "files": [vars(f) for f in self.files],
        }


@dataclass
class _Prepared:
    table: RawTable
    norm: Normalised
    report: FileReport


def _prepare(path: Path, mapping: Mapping, as_of: dt.date) -> _Prepared:
    table = read_export(path)
    plan = plan_columns(table.headers, mapping, path.name)
    norm = normalise(table, plan, mapping)
    derive(norm.records)
    norm.records["flags"] = flag(norm.records, as_of)
    norm.records["source_file"] = path.name
    norm.records["source_line"] = table.lines
    report = FileReport(path.name, table.sha256, read=table.n_rows, blank_lines=table.blank_lines)
    return _Prepared(table, norm, report)


def _content(records: pd.DataFrame, profiles: np.ndarray, compounds: list[str],
             attributes: pd.DataFrame, all_compounds: list[str], all_attrs: list[str],
             rows: np.ndarray) -> pd.DataFrame:
    """A comparable content table of ``rows``: compared fields, profile columns over
    ``all_compounds`` (NaN where not measured), attributes over ``all_attrs`` ('' if absent)."""
    cols: dict[str, np.ndarray] = {}
    rows = np.asarray(rows, dtype=np.int64)
    records = records.iloc[rows]
    profiles = profiles[rows]
    attributes = attributes.iloc[rows]
    for name in COMPARED_FIELDS:
        values = records[name].to_numpy()
        if values.dtype.kind == "M":
            values = values.astype("datetime64[D]").astype(np.int64).astype(float)
            values[values == float(np.iinfo(np.int64).min)] = np.nan
        cols[name] = values
    index = {c: j for j, c in enumerate(compounds)}
    n = len(records)
    for c in all_compounds:
        cols[f"p_{c}"] = profiles[:, index[c]] if c in index else np.full(n, np.nan)
    for a in all_attrs:
        cols[a] = attributes[a].to_numpy(dtype=object) if a in attributes else np.full(n, "", object)
    frame = pd.DataFrame(cols, index=range(n))
    for name in ("rock_count",):
        frame[name] = pd.to_numeric(frame[name]).fillna(MISSING_COUNT).astype(float)
    return frame


def _rows_equal(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Row-wise equality of two aligned frames, NaN equal to NaN."""
    same = np.ones(len(a), dtype=bool)
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if x.dtype.kind == "f" and y.dtype.kind == "f":
            same &= (x == y) | (np.isnan(x) & np.isnan(y))
        else:
            same &= pd.Series(x).astype(str).to_numpy() == pd.Series(y).astype(str).to_numpy()
    return same


def ingest(paths: Sequence[str | Path], library: str | Path, *, mapping: str | Path | Mapping | None = None,
           quarantine: str | Path | None = None, supersede: bool = False,
           as_of: dt.date | None = None,
           progress: Callable[[int], None] | None = None,
           then: Callable[[LibraryData, IngestReport], tuple[dict, str]] | None = None) -> IngestReport:
    """Import exports into the library at ``library`` (created if absent).

    Rows that cannot be read go to the quarantine CSV (``quarantine``, or
    ``<library>.quarantine-<import>.csv`` beside the library) with source, line and reasons.
    Exact duplicates (same exhibit id, same content) are skipped. An exhibit id that returns
    with different content is a conflict: quarantined, unless ``supersede`` — then the new version
    replaces the old, which is kept in the library's history.

    ``then(new_lib, report)``, called under the lock before the write, gets the whole library
    after the import (stored rows first, this import's rows last) and returns the groups to write
    with it and a note for the audit log; it must not change ``new_lib``'s rows (an import that
    only adds rows writes just the rows after the stored ones).
    """
    library = Path(library)
    library.parent.mkdir(parents=True, exist_ok=True)
    as_of = as_of or dt.date.today()
    if mapping is None:
        mapping = Mapping()
    elif not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    advance = progress or (lambda n: None)
    prepared = []
    for p in paths:
        prep = _prepare(Path(p), mapping, as_of)
        advance(1)
        prepared.append(prep)
    with write_lock(library):
        return _merge(lambda: read_library(library) if library.exists() else empty_library(),
                      prepared, library, quarantine, supersede, as_of, advance, then)


def _merge(load: Callable[[], LibraryData], prepared: list[_Prepared], library: Path,
           quarantine: str | Path | None, supersede: bool, as_of: dt.date,
           advance: Callable[[int], None], then=None) -> IngestReport:
    # the stored library is loaded here, not passed in, so that this frame holds the only
    # reference and can let go of it once the new library is built (before ``then`` runs)
    lib = load()
    import_id = int(lib.provenance["import_id"].max()) + 1 if len(lib.provenance) else 1
    report = IngestReport(library, import_id)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()

    all_compounds = list(lib.compounds)
    all_attrs = list(lib.attributes.columns)
    for prep in prepared:
        for c in prep.norm.compounds:
            if c not in all_compounds:
                all_compounds.append(c)
        for a in prep.norm.attributes.columns:
            if a not in all_attrs:
                all_attrs.append(a)

    # the library row of each exhibit id this import brings that the library holds: a hashed
    # membership test of the library's ids against the import's (not a dict of 10^6 ids)
    lib_ids = lib.records["exhibit_id"]
    new_ids = set()
    for prep in prepared:
        new_ids.update(prep.norm.records["exhibit_id"].tolist())
    hits = np.flatnonzero(lib_ids.isin(list(new_ids)).to_numpy()) if new_ids and lib.n else \
        np.zeros(0, dtype=np.int64)
    lib_index = dict(zip(lib_ids.iloc[hits].tolist(), hits.tolist()))   # last row wins, as before
    seen_new: dict[str, tuple[int, int]] = {}   # exhibit ids accepted so far in this import
    quarantine_rows: list[tuple[_Prepared, int, str]] = []
    accepted_parts = []
    replace: dict[int, tuple[int, int]] = {}    # library row -> (file index, row) superseding it

    for fi, prep in enumerate(prepared):
        rec, rep = prep.norm.records, prep.report
        def content(rows, prep=prep):
            return _content(prep.norm.records, prep.norm.profiles, prep.norm.compounds,
                            prep.norm.attributes, all_compounds, all_attrs, rows)

        problems = prep.norm.problems
        bad = np.zeros(len(rec), dtype=bool)
        bad[list(problems)] = True
        raw_dup = np.zeros(len(rec), dtype=bool)   # broken rows repeated cell for cell
        if bad.any():
            bad_idx = np.flatnonzero(bad)
            raw_dup[bad_idx] = prep.table.cells.iloc[bad_idx].duplicated(keep="first").to_numpy()
        # an exact duplicate shares its exhibit id, so only repeated ids need a content compare
        content_dup = np.zeros(len(rec), dtype=bool)
        repeated = np.flatnonzero(~bad & rec["exhibit_id"].duplicated(keep=False).to_numpy())
        if len(repeated):
            content_dup[repeated] = content(repeated).duplicated(keep="first").to_numpy()
        accept = np.zeros(len(rec), dtype=bool)
        taken = np.zeros(len(rec), dtype=bool)   # accepted, new or superseding
        ids = rec["exhibit_id"].tolist()
        lib_rows = [lib_index.get(e) for e in ids]
        in_lib = np.array([r is not None for r in lib_rows], dtype=bool)
        same_as_lib = np.zeros(len(rec), dtype=bool)
        check = np.flatnonzero(in_lib & ~bad)
        if len(check):
            rows = [lib_rows[i] for i in check]
            lib_rows_content = _content(lib.records, lib.profiles.reshape(lib.n, len(lib.compounds)),
                                        lib.compounds, lib.attributes, all_compounds, all_attrs,
                                        np.asarray(rows))
            same_as_lib[check] = _rows_equal(content(check), lib_rows_content)
        # the common row (readable, new, id seen once) is accepted in bulk; the rest one by one
        candidate = ~bad & ~content_dup & ~same_as_lib
        ids_arr = np.asarray(ids, dtype=object)
        repeated_id = np.zeros(len(rec), dtype=bool)
        repeated_id[candidate] = pd.Series(ids_arr[candidate]).duplicated(keep=False).to_numpy()
        earlier = np.isin(ids_arr, list(seen_new)) if seen_new else np.zeros(len(rec), bool)
        fast = candidate & ~in_lib & ~repeated_id & ~earlier
        accept[fast] = taken[fast] = True
        rep.accepted += int(fast.sum())
        seen_new.update(dict.fromkeys(ids_arr[fast].tolist(), (fi, -1)))
        for i in np.flatnonzero(~fast).tolist():
            if bad[i]:
                if raw_dup[i]:
                    rep.duplicates += 1
                else:
                    quarantine_rows.append((prep, i, ";".join(problems[i])))
                    rep.quarantined += 1
                continue
            if content_dup[i] or same_as_lib[i]:
                rep.duplicates += 1
                continue
            e = ids[i]
            if e in seen_new:
                quarantine_rows.append((prep, i, ("exhibit_id:conflict (repeated in this import "
                                         "with different content)")))
                rep.quarantined += 1
                rep.conflicts += 1
                continue
            if in_lib[i]:
                rep.conflicts += 1
                if not supersede:
                    quarantine_rows.append((prep, i, (
                        "exhibit_id:conflict (in the library with different content; use "
                        "--supersede to replace it)")))
                    rep.quarantined += 1
                    continue
                replace[lib_rows[i]] = (fi, i)
                seen_new[e] = (fi, i)
                taken[i] = True
                rep.accepted += 1
                continue
            seen_new[e] = (fi, i)
            accept[i] = taken[i] = True
            rep.accepted += 1
        accepted_parts.append(accept)
        report.files.append(rep)
        for tokens in rec["flags"].to_numpy()[taken]:
            if tokens:
                report.flags.update(tokens.split(";"))

    report.superseded = len(replace)
    changed = any(a.any() for a in accepted_parts) or bool(replace)
    new_lib = _build(lib, prepared, accepted_parts, replace, all_compounds, all_attrs,
                     import_id, now) if changed else lib
    # without a superseded row, the stored rows are new_lib's first rows, unchanged: the write
    # appends the rest to the stored columns instead of encoding the library again
    stored_rows = 0 if replace else lib.n
    old_provenance = lib.provenance
    lib = None          # the stored library's arrays are freed (new_lib shares what it needs)
    _return_freed_memory()
    prov_row = {
        "import_id": import_id,
        "source": ";".join(p.report.source for p in prepared),
        "sha256": ";".join(p.report.sha256 for p in prepared),
        "imported_at": now, "read": report.read, "accepted": report.accepted,
        "quarantined": report.quarantined, "duplicates": report.duplicates,
        "conflicts": report.conflicts, "superseded": report.superseded,
    }
    new_lib.provenance = pd.concat([old_provenance, pd.DataFrame([prov_row])], ignore_index=True) \
        if len(old_provenance) else pd.DataFrame([prov_row])
    change = (f"import {import_id}: read {report.read}, accepted {report.accepted}, quarantined "
              f"{report.quarantined}, duplicates {report.duplicates}, superseded "
              f"{report.superseded}")
    extra = {}
    if then is not None:
        extra, more = then(new_lib, report)
        change += "; " + more
    write_library(library, new_lib, extra=extra, audit=audit_row(
        change, ";".join(f"{p.report.source}={p.report.sha256}" for p in prepared)),
        stored_rows=stored_rows)
    if quarantine_rows:
        qpath = Path(quarantine) if quarantine else library.with_name(
            f"{library.stem}.quarantine-{import_id}.csv")
        write_quarantine(qpath, quarantine_rows)
        report.quarantine_path = qpath
    elif quarantine:
        write_quarantine(Path(quarantine), [])
        report.quarantine_path = Path(quarantine)
    advance(1)
    return report


_LIBC = None     # the C library, looked up once (False: not there)


def _return_freed_memory() -> None:
    """Give the freed heap back to the system (glibc keeps it otherwise): at 10^6 exhibits the
    stored library's column arrays are about 250 MB that ``then`` (linking) would sit on."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _LIBC = False
    if _LIBC and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def _build(lib: LibraryData, prepared: list[_Prepared], accepted_parts: list[np.ndarray],
           replace: dict[int, tuple[int, int]], compounds: list[str], attrs: list[str],
           import_id: int, now: str) -> LibraryData:
    """The library after the import: stored rows (superseded ones replaced, their old versions
    moved to the history) then the accepted rows, over ``compounds`` and ``attrs``. Without a
    superseded row the stored records are not copied (pandas concatenates each column once) and
    the profile matrix is assembled in one allocation: cheap at 10^6 exhibits."""
    columns = [f.name for f in FIELDS]

    def aligned_profiles(profiles: np.ndarray, own: list[str], out: np.ndarray | None = None):
        """``profiles`` over ``own`` as columns of ``compounds`` (NaN: not measured), into
        ``out`` when given."""
        if out is None:
            out = np.empty((profiles.shape[0], len(compounds)))
        k = len(own)
        if list(own) == compounds[:k]:          # the stored library's compounds come first
            out[:, :k] = profiles
            out[:, k:] = np.nan
        else:
            out[:] = np.nan
            out[:, [compounds.index(c) for c in own]] = profiles
        return out

    def aligned_attrs(frame: pd.DataFrame, n: int) -> pd.DataFrame:
        return pd.DataFrame({a: frame[a].to_numpy(dtype=object) if a in frame else
                             np.full(n, "", dtype=object) for a in attrs}, index=range(n))

    new_rows = [np.flatnonzero(accept) for accept in accepted_parts]
    total = lib.n + sum(len(idx) for idx in new_rows)
    profiles = np.empty((total, len(compounds)))
    old_profiles = aligned_profiles(lib.profiles.reshape(lib.n, len(lib.compounds)), lib.compounds,
                                    out=profiles[:lib.n])
    old_records = lib.records.copy() if replace else lib.records    # changed in place below
    old_attrs = aligned_attrs(lib.attributes, lib.n)
    history = None
    if replace:
        rows = sorted(replace)
        hist_records = old_records.iloc[rows].reset_index(drop=True)
        hist_records["superseded_at"] = now
        hist_records["superseded_by_import"] = import_id
        hist = LibraryData(hist_records, old_profiles[rows], list(compounds),
                           old_attrs.iloc[rows].reset_index(drop=True))
        history = hist
        for lib_row in rows:
            fi, i = replace[lib_row]
            norm = prepared[fi].norm
            row = norm.records.iloc[i].copy()
            row["import_id"] = import_id
            for c in columns:
                old_records.at[lib_row, c] = row[c]
            old_profiles[lib_row] = aligned_profiles(norm.profiles[i:i + 1], norm.compounds)[0]
            for a in attrs:
                old_attrs.at[lib_row, a] = norm.attributes[a].iloc[i] if a in norm.attributes else ""
    if lib.history is not None:
        prev = lib.history
        prev_prof = aligned_profiles(prev.profiles.reshape(prev.n, len(prev.compounds)), prev.compounds)
        if history is None:
            history = LibraryData(prev.records, prev_prof, list(compounds), aligned_attrs(prev.attributes, prev.n))
        else:
            history = LibraryData(
                pd.concat([prev.records, history.records], ignore_index=True),
                np.vstack([prev_prof, history.profiles]), list(compounds),
                pd.concat([aligned_attrs(prev.attributes, prev.n), history.attributes], ignore_index=True))
    rec_parts, attr_parts = [old_records[columns]], [old_attrs]
    at = lib.n
    for prep, idx in zip(prepared, new_rows):
        if not len(idx):
            continue
        rec = prep.norm.records.iloc[idx].copy()
        rec["import_id"] = import_id
        rec_parts.append(rec.reindex(columns=columns))
        aligned_profiles(prep.norm.profiles[idx], prep.norm.compounds,
                         out=profiles[at:at + len(idx)])
        at += len(idx)
        attr_parts.append(aligned_attrs(prep.norm.attributes.iloc[idx].reset_index(drop=True), len(idx)))
    records = pd.concat(rec_parts, ignore_index=True)
    for name, kind in ((f.name, f.kind) for f in FIELDS):
        if kind == "count" and records[name].dtype != np.int64:
            records[name] = pd.to_numeric(records[name]).fillna(MISSING_COUNT).astype(np.int64)
    personal = sorted(set(lib.personal).union(*[p.norm.personal for p in prepared]))
    return LibraryData(records, profiles, list(compounds),
                       pd.concat(attr_parts, ignore_index=True), history=history,
                       personal=personal)


def write_quarantine(path: Path, rows: list[tuple[_Prepared, int, str]]) -> None:
    """Quarantine CSV: source, line, exhibit_id, reasons, then the row's raw cells, unchanged,
    under the union of the sources' headers (long rows' extra cells as extra_<n>)."""
    headers: list[str] = []
    for prep, _, _ in rows:
        for h in prep.table.headers:
            if h not in headers:
                headers.append(h)
    n_extra = max([p.table.extra.shape[1] if p.table.extra is not None else 0 for p, _, _ in rows],
                  default=0)
    extra_names = [f"extra_{k + 1}" for k in range(n_extra)]
    with private_open(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["source", "line", "exhibit_id", "reasons", *headers, *extra_names])
        for prep, i, reasons in rows:
            raw = dict(zip(prep.table.headers, prep.table.cells.iloc[i].tolist()))
            extra = (prep.table.extra.iloc[i].tolist() if prep.table.extra is not None else [])
            extra = extra + [""] * (n_extra - len(extra))
            writer.writerow([prep.report.source, int(prep.table.lines[i]),
                             prep.norm.records["exhibit_id"].iat[i], reasons,
                             *[raw.get(h, "") for h in headers], *extra])
