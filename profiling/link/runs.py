"""What the commands run: `profile link`, `profile calibrate`, `profile query`.

``run_link`` ingests the exports (into the library when one is given), calibrates when the
library has no calibration for its compounds, runs the link stage (:mod:`profiling.link.engine`)
and commits the import, the calibration and the classes in one atomic write under the library's
lock, then writes the outputs (:mod:`profiling.link.outputs`). A library that still keeps links
pair by pair (before classes were library entities) is refused with one sentence until it is
relinked with ``--rebuild``; it is never rewritten silently.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from profiling import similarity as sim
from profiling.calibrate import PopulationRule
from profiling.errors import InputError
from profiling.library import LibraryData
from profiling.link.calibration import (
    CALIBRATION_GROUP,
    DEFAULT_METRIC,
    DEFAULT_PRETREATMENT,
    PRETREATMENTS,
    PROFILE_METRICS,
    Calibration,
    Profiles,
    _pretreated,
    _reference_std,
    calibrate,
    calibration_to_json,
)
from profiling.link.engine import (
    LINKS_GROUP,
    MODEL_GROUP,
    TOP,
    LinkResult,
    Settings,
    Stored,
    link_library,
    read_classes,
    read_classes_state,
    state_writers,
)
from profiling.link.layers import linkable
from profiling.link.outputs import joined
from profiling.link.search import ADVENTITIOUS


def _settings(calibration: Calibration | None, metric, pretreatment, threshold, per_search,
              class_cut, top, all_pairs_, rebuild) -> Settings:
    chosen = calibration.chosen if calibration else {}
    s = Settings(metric=metric or chosen.get("metric", DEFAULT_METRIC),
                 pretreatment=pretreatment or chosen.get("pretreatment", DEFAULT_PRETREATMENT),
                 threshold=float(threshold) if threshold is not None else None,
                 per_search=ADVENTITIOUS if per_search is None else float(per_search),
                 class_cut=class_cut, top=top, all_pairs=all_pairs_, rebuild=rebuild)
    if calibration is not None:
        s.cutting_threshold = calibration.layers.get("cutting", {}).get("threshold")
        s.distribution_threshold = calibration.layers.get("distribution", {}).get("threshold")
    return s


def _link_core(data: LibraryData, new: np.ndarray, stored: Stored, library: Path | None, *,
               metric=None, pretreatment=None, threshold=None, fpr=None, per_search=None,
               class_cut=None, top=TOP, all_pairs_=False, rebuild=False, threads=None,
               date=None, progress=None, levels=None, scheduler=None, block_rows=None,
               engine_file: Path | None = None):
    """Calibrate if needed, link, and say what to store: (result, calibration, group writers,
    audit sentence, groups to drop)."""
    if stored.old_links and not rebuild:
        raise InputError(
            f"library {library} keeps links pair by pair, as profile did before classes were "
            f"library entities; nothing was changed. Relink it once with `profile link --library "
            f"{library} --rebuild --out DIR`, which builds its classes and drops the stored pairs.")
    writers = {}
    calibration = stored.calibration
    profiles = linkable(data)
    if calibration is not None and calibration.compounds != profiles.compounds \
            and threshold is None and fpr is None and not metric and not pretreatment:
        calibration = None                 # made on other compounds (drifting ones in): redo
    if threshold is None and (calibration is None or fpr is not None or
                              (metric and metric != calibration.chosen["metric"]) or
                              (pretreatment and pretreatment != calibration.chosen["pretreatment"])):
        calibration = calibrate(data, PopulationRule(), fpr if fpr is not None else 0.01,
                                (pretreatment,) if pretreatment else PRETREATMENTS,
                                (metric,) if metric else PROFILE_METRICS, threads=threads,
                                profiles=profiles)
        fresh = calibration
        writers[CALIBRATION_GROUP] = lambda g: g.attrs.__setitem__(
            "json", calibration_to_json(fresh))
    settings = _settings(calibration, metric, pretreatment, threshold, per_search, class_cut,
                         top, all_pairs_, rebuild)
    engine = None
    if scheduler is not None and not bool(np.asarray(new).all()):
        from profiling.scale import dask_engine

        engine = dask_engine(scheduler, engine_file or library, data, block_rows)
    try:
        result, state = link_library(data, new, stored, settings, calibration, threads=threads,
                                     date=date, progress=progress, levels=levels, engine=engine,
                                     profiles=profiles)
    finally:
        if engine is not None:
            engine.close()
    events = pd.concat([stored.events, result.events], ignore_index=True) \
        if stored.events is not None and len(stored.events) else result.events
    writers.update(state_writers(state, events))
    s = result.summary
    change = (f"link: {s['exhibits_new']} new exhibits, {s['classes']} classes "
              f"({s['class_mode']}), events {s['class_events']}"
              + ("; calibration stored" if CALIBRATION_GROUP in writers else "")
              + ("; per-pair links of an earlier version dropped" if stored.old_links else ""))
    return result, calibration, writers, change, (LINKS_GROUP,) if stored.old_links else ()


def _check_options(metric, pretreatment, threshold, per_search, class_cut, top) -> None:
    """Options that make no sense are one sentence before anything is read or written."""
    import math

    if metric is not None and metric not in PROFILE_METRICS:
        raise InputError(f"--metric {metric!r} is not one of {', '.join(PROFILE_METRICS)}.")
    if pretreatment is not None and pretreatment not in PRETREATMENTS:
        raise InputError(f"--pretreatment {pretreatment!r} is not one of "
                         f"{', '.join(PRETREATMENTS)}.")
    if threshold is not None:
        m = sim.METRICS[metric or DEFAULT_METRIC]
        if not (math.isfinite(threshold) and 0 <= threshold <= m.max_distance):
            raise InputError(f"--threshold {threshold:g} is outside the range of {m.name} "
                             f"distances, [0, {m.max_distance:g}].")
    if per_search is not None and not (math.isfinite(per_search) and per_search > 0):
        raise InputError(f"--per-search {per_search:g} must be a positive number of "
                         "adventitious links per searched exhibit (default 0.01).")
    if class_cut is not None and not (math.isfinite(class_cut) and class_cut > 0):
        raise InputError(f"--class-cut {class_cut:g} must be a positive merge cost (Ward's; two "
                         "exhibits cost their cosine distance).")
    if top < 1:
        raise InputError(f"--top {top} must be at least 1.")


def _profiles_side_file(library: Path, data: LibraryData) -> Path:
    """The merged profile matrix in a file beside the library, for Dask workers to read before
    the import is committed (removed afterwards)."""
    import os

    import h5py

    path = library.with_name(f".{library.name}.profiles-{os.getpid()}.h5")
    with h5py.File(path, "w") as f:
        f.create_group("profiles").create_dataset(
            "matrix", data=data.profiles.reshape(data.n, len(data.compounds)))
    return path


def _levels(library: Path | None) -> pd.DataFrame | None:
    if library is None or not Path(library).exists():
        return None
    from profiling.library import read_frame

    frame = read_frame(library, "levels")
    if frame is None or "seizure_id" not in frame or "level" not in frame:
        return None
    return frame[["seizure_id", "level"]]


def run_link(exports: list[Path], library: Path | None, out: Path, *, mapping=None,
             metric: str | None = None, pretreatment: str | None = None,
             threshold: float | None = None, fpr: float | None = None,
             per_search: float | None = None, class_cut: float | None = None, top: int = TOP,
             all_pairs: bool = False, rebuild: bool = False, threads=None, as_of=None,
             date: str | None = None, progress=None, scheduler: str | None = None,
             block_rows: int | None = None, redactor=None) -> LinkResult:
    """`profile link`: ingest the exports (into the library when given), classify and link the
    new exhibits, write the outputs into ``out``. With a library, the import, the calibration
    (when made now) and the classes are committed in one atomic write under its lock."""

    from profiling.ingest import ingest
    from profiling.library import read_library, replace_groups, write_lock
    from profiling.link.outputs import write_link_outputs

    if scheduler is not None:
        from profiling.scale import parse_scheduler

        parse_scheduler(scheduler)          # a nonsense address is one sentence, not a crash
    _check_options(metric, pretreatment, threshold, per_search, class_cut, top)
    t0 = time.perf_counter()
    options = {"metric": metric, "pretreatment": pretreatment, "threshold": threshold,
               "fpr": fpr, "per_search": per_search, "class_cut": class_cut, "top": top,
               "all_pairs_": all_pairs, "rebuild": rebuild, "threads": threads, "date": date,
               "progress": progress, "scheduler": scheduler, "block_rows": block_rows}
    done: dict = {}
    report = None
    if library is None:
        data, _, new, report, tmp = _open_data(exports, None, mapping, as_of, progress)
        try:
            result, calibration, _, _, _ = _link_core(data, new, Stored(), None, **options)
        finally:
            tmp.cleanup()
    else:
        library = Path(library)
        levels = _levels(library)
        if exports:
            def then(new_lib, rep):
                import contextlib

                new = new_lib.records["import_id"].to_numpy() == rep.import_id
                stored = Stored.read(library) if library.exists() else Stored()
                side = _profiles_side_file(library, new_lib) if scheduler else None
                try:
                    res, cal, writers, change, drop = _link_core(
                        new_lib, new, stored, library, levels=levels, engine_file=side,
                        **options)
                finally:
                    if side is not None:
                        with contextlib.suppress(OSError):
                            side.unlink()
                done.update(result=res, calibration=cal, data=new_lib)
                for g in drop:              # an empty group: the per-pair links are gone
                    writers[g] = lambda group: None
                return writers, change

            report = ingest(exports, library, mapping=mapping, as_of=as_of, progress=progress,
                            then=then)
            result, calibration, data = done["result"], done["calibration"], done["data"]
        else:
            with write_lock(library):
                data = read_library(library)
                stored = Stored.read(library)
                new = np.ones(data.n, dtype=bool)
                if stored.classes is not None and not rebuild:
                    new = ~data.records["exhibit_id"].isin(stored.classes.frame["exhibit_id"]).to_numpy()
                    if not new.any():
                        new = np.ones(data.n, dtype=bool)     # nothing new: report the library
                result, calibration, writers, change, drop = _link_core(
                    data, new, stored, library, levels=levels, **options)
                replace_groups(library, writers, change=change, drop=drop)
    result.summary["ingest"] = report.as_json() if report is not None else None
    result.summary["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    out.mkdir(parents=True, exist_ok=True)
    shared = redact_result(result, redactor) if redactor is not None else result
    write_link_outputs(out, shared, data, calibration, result, redactor)
    if redactor is not None:
        redactor.write_manifest(out, sorted(p.name for p in out.iterdir()))
    return result


def _open_data(exports, library, mapping, as_of, progress):
    """(LibraryData, library path or None, new-exhibit mask, ingest report, temp dir)."""
    import tempfile

    from profiling.ingest import ingest
    from profiling.library import read_library

    report, tmp = None, None
    if library is None:
        if not exports:
            raise InputError("give export files, a --library, or both.")
        tmp = tempfile.TemporaryDirectory(prefix="profile-link-")
        path = Path(tmp.name) / "exports.h5"
        report = ingest(exports, path, mapping=mapping, quarantine=Path(tmp.name) / "q.csv",
                        as_of=as_of, progress=progress)
        data = read_library(path)
        return data, None, np.ones(data.n, dtype=bool), report, tmp
    library = Path(library)
    if exports:
        report = ingest(exports, library, mapping=mapping, as_of=as_of, progress=progress)
    data = read_library(library)
    if exports:
        new = data.records["import_id"].to_numpy() == report.import_id
    else:
        new = np.ones(data.n, dtype=bool)
    return data, library, new, report, tmp


def run_calibrate(source: Path, out: Path, rule: PopulationRule, fpr: float = 0.01,
                  lr_kind: str = "logistic", mapping=None, threads=None,
                  as_of=None, progress=None) -> Calibration:
    """Calibrate on a library (stored in it) or on an export (in memory); write
    calibration.json and calibration.html into ``out``."""
    from profiling.link.calibration import _public_calibration, _write_json, store_calibration
    from profiling.link.report import write_calibration_report

    is_library = Path(source).suffix.lower() in (".h5", ".hdf5")
    data, library, _, _, tmp = _open_data([] if is_library else [source],
                                          source if is_library else None, mapping, as_of, progress)
    try:
        cal = calibrate(data, rule, fpr, lr_kind=lr_kind, threads=threads)
    finally:
        if tmp:
            tmp.cleanup()
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "calibration.json", _public_calibration(cal))
    write_calibration_report(out / "calibration.html", cal)
    if library is not None:
        store_calibration(library, cal)
    return cal


def run_query(library: Path, target: str, top: int = 10, *, mapping=None, threads=None,
              as_of=None, scheduler: str | None = None,
              block_rows: int | None = None) -> pd.DataFrame:
    """The ``top`` most similar library exhibits for an exhibit id of the library, or for every
    exhibit of an export file (which is not added to the library). With ``scheduler``, the
    library's blocks are searched on Dask workers (``profiling.scale``), same result."""
    from profiling.library import read_library
    from profiling.link.calibration import load_calibration

    lib = read_library(library)
    cal = load_calibration(library)
    pre = cal.chosen["pretreatment"] if cal else DEFAULT_PRETREATMENT
    metric = cal.chosen["metric"] if cal else DEFAULT_METRIC
    p = linkable(lib)
    ref_std = cal.reference_std if cal and cal.chosen["pretreatment"] == pre else None
    if ref_std is None and pre == "sum_std":
        ref_std = sim.PRETREATMENTS[pre].fit(p.X).tolist()
    L = np.ascontiguousarray(_pretreated(p, pre, ref_std))
    ids = lib.records["exhibit_id"].to_numpy(dtype=object)[p.rows]
    if Path(target).is_file():
        data, _, _, _, tmp = _open_data([Path(target)], None, mapping, as_of, None)
        try:
            q = linkable(data)
        finally:
            tmp.cleanup()
        Q = np.full((len(q.rows), len(p.compounds)), np.nan)
        for k, c in enumerate(q.compounds):
            if c in p.compounds:
                Q[:, p.compounds.index(c)] = q.X[:, k]
        Q = np.ascontiguousarray(_pretreated(Profiles(q.rows, Q, p.compounds), pre, ref_std))
        q_ids = data.records["exhibit_id"].to_numpy(dtype=object)[q.rows]
        exclude_self = None
    else:
        where = np.flatnonzero(ids == target)
        if not len(where):
            raise InputError(f"exhibit {target!r} is not in the library with a profile, and no "
                             "file has that name.")
        Q, q_ids, exclude_self = L[where], np.array([target], dtype=object), int(where[0])
    k = min(top + (1 if exclude_self is not None else 0), len(L))
    state = read_classes_state(library) if _has_model(library) else None
    search = (state.settings.get("search") or {}) if state else {}
    linked_below = float(search.get("threshold", cal.chosen["threshold"] if cal else -1.0))
    if scheduler is None:
        idx, scores = sim.topk(Q, L, metric, k, threads=threads)
    else:
        from profiling.scale import dask_engine

        engine = dask_engine(scheduler, library, lib, block_rows)
        try:
            idx, scores = engine.topk(p, pre, ref_std if ref_std is not None else
                                      _reference_std(p, pre), metric, Q, k)
        finally:
            engine.close()
    classes = read_classes(library)
    class_of = dict(zip(classes["exhibit_id"], classes["class_id"])) if classes is not None else {}
    rec = lib.records.iloc[p.rows].reset_index(drop=True)
    rows = []
    for qi, qid in enumerate(q_ids):
        rank = 0
        for col in range(idx.shape[1]):
            li = int(idx[qi, col])
            if li < 0 or (exclude_self is not None and li == exclude_self) or rank >= top:
                continue
            rank += 1
            d = float(scores[qi, col])
            rows.append({"query": qid, "rank": rank, "exhibit_id": ids[li], "score": d,
                         "log10_lr": float(cal.lr_model.log10_lr(np.array([d]))[0])
                         if cal and cal.chosen["metric"] == metric else float("nan"),
                         "linked": bool(d <= linked_below),
                         "class_id": class_of.get(ids[li], ""),
                         "seizure_id": rec["seizure_id"].iat[li], "area": rec["area"].iat[li]})
    return pd.DataFrame(rows, columns=["query", "rank", "exhibit_id", "score", "log10_lr",
                                       "linked", "class_id", "seizure_id", "area"])


def _has_model(library: Path) -> bool:
    import h5py

    with h5py.File(library, "r") as f:
        return MODEL_GROUP in f


def redact_result(result: LinkResult, redactor) -> LinkResult:
    """A copy of ``result`` fit to share: references pseudonymised, areas coarsened, source
    file names and paths gone from the summary; the class table made again from the redacted
    rows."""
    import copy

    links = redactor.frame(result.links)
    classes = redactor.frame(result.classes)
    summary = copy.deepcopy(result.summary)
    if summary.get("ingest"):
        summary["ingest"].pop("files", None)
        summary["ingest"].pop("quarantine_file", None)
        redactor.removed.add("summary: source file names")
    table = result.class_table
    if redactor.coarsens and len(classes):
        areas = classes.groupby("class_id")["area"].agg(joined)
        table = table.assign(areas=table["class_id"].map(areas).fillna("(not listed)"))
        redactor.removed.add("class table: areas of classes no new exhibit touched")
    return LinkResult(links, classes, table, result.timeline, result.events, summary,
                      result.scores_linked, result.scores_unlinked, None)
