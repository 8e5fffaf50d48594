"""The link stage: classes first, then each new exhibit's strongest links, then the layers.

One run of ``profile link``:

1. the linkable exhibits in the link space (calibrated pretreatment; drifting compounds out) and
   in the class space (the same rows scaled to unit length, :mod:`profiling.link.classes`);
2. **classes**: built over the whole library when it has none (or with ``rebuild``, or when the
   settings changed), otherwise the new exhibits are assigned to the stored classes or start new
   ones; merges only where new members bring two classes within the class cut;
3. **the search threshold** for the library's size (:mod:`profiling.link.search`), on pairs of
   different classes;
4. **links**: for each new exhibit its ``top`` strongest chemical links, a chemical link being a
   pair in one class or within the search threshold; a whole-library run gives every exhibit its
   ``top`` nearest in its class. Every linked pair only with ``all_pairs``;
5. **layers**: cut and packaging compared on those links; cutting and distribution groups are
   the connected same-cut (same-packaging) links inside a class.

Memory and time grow with exhibits and classes, never with pairs.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from profiling import similarity as sim
from profiling.calibrate import PopulationRule, build_population
from profiling.errors import LibraryCorruptError
from profiling.library import LibraryData
from profiling.link import classes as cl
from profiling.link.calibration import (
    Calibration,
    _pretreated,
    _reference_std,
)
from profiling.link.layers import Layers, groups_for_new, layer_verdicts, linkable, subgroups
from profiling.link.outputs import class_rows, class_summary
from profiling.link.search import ADVENTITIOUS, nearest, search_threshold

LINKS_GROUP, CLASSES_GROUP, MODEL_GROUP, EVENTS_GROUP = (
    "links", "classes", "class_model", "class_events")
TOP = 10                 # strongest links listed per new exhibit (--top)
EVENT_COLUMNS = ["date", "event", "class_id", "related", "reason"]


@dataclass
class LinkResult:
    links: pd.DataFrame              # links.csv
    classes: pd.DataFrame            # classes.csv rows (+ context columns)
    class_table: pd.DataFrame        # one row per class
    timeline: pd.DataFrame           # class x quarter exhibit counts
    events: pd.DataFrame             # class events of this run
    summary: dict
    scores_linked: np.ndarray        # calibration distances for the report
    scores_unlinked: np.ndarray
    pairs: object = None             # all_pairs: a callable yielding link-table chunks


@dataclass
class StoredClasses:
    """What a library holds of its classes: per exhibit, and the model."""

    frame: pd.DataFrame       # exhibit_id, class_id, cut, dist: every classed exhibit
    model: cl.ClassModel
    settings: dict


@dataclass
class Stored:
    calibration: Calibration | None = None
    classes: StoredClasses | None = None
    events: pd.DataFrame | None = None
    old_links: bool = False          # the per-pair links group of earlier versions

    @classmethod
    def read(cls, library: Path) -> Stored:
        import h5py

        from profiling.library import read_frame
        from profiling.link.calibration import load_calibration

        stored = cls(calibration=load_calibration(library))
        with h5py.File(library, "r") as f:
            stored.old_links = LINKS_GROUP in f and "a" in f[LINKS_GROUP]
            has_model = MODEL_GROUP in f
        stored.events = read_frame(library, EVENTS_GROUP)
        if stored.events is not None and "reason" not in stored.events:
            stored.events["reason"] = ""
        if has_model:
            stored.classes = read_classes_state(library)
        return stored


def read_classes_state(library: Path) -> StoredClasses:
    import h5py

    from profiling.library import _read_column, read_frame

    frame = read_frame(library, CLASSES_GROUP)
    problem = None
    try:
        with h5py.File(library, "r") as f:
            g = f[MODEL_GROUP]
            settings = json.loads(_read_column(g["settings"])[0])
            ids = _read_column(g["class_id"]).tolist()
            n = _read_column(g["n"]).astype(np.int64)
            sums = _read_column(g["sums"]).astype(np.float64)
            cut, next_id = float(settings["class_cut"]), int(settings["next_id"])
    except (KeyError, IndexError, TypeError, ValueError) as err:    # a part missing or unreadable
        problem = f"its class model is incomplete ({type(err).__name__}: {err})"
        frame = None
    if problem is None and (frame is None or len(ids) != len(n) or sums.shape[0] != len(n)):
        problem = "class table and class model differ in size"
    elif problem is None:
        members = frame["class_id"].value_counts()
        counted = pd.Series(n, index=ids)
        if not members.index.isin(counted.index).all():
            problem = "exhibits are in classes the class model does not have"
        elif not (counted.reindex(members.index).to_numpy() == members.to_numpy()).all() \
                or not counted.drop(members.index).eq(0).all():
            problem = "the class model's member counts differ from its class table"
    if problem:
        raise LibraryCorruptError(
            f"library {library}: its stored classes cannot be used ({problem}); nothing was "
            f"changed. Run `profile verify` on it, restore it from a backup, or relink it with "
            f"`profile link --library {library} --rebuild --out DIR`.")
    model = cl.ClassModel(ids, n, sums.reshape(len(n), -1), cut, next_id)
    return StoredClasses(frame, model, settings)


def read_classes(library: Path) -> pd.DataFrame | None:
    """classes.csv's four columns for every classed exhibit of a library, or None."""
    from profiling.library import read_frame

    frame = read_frame(library, CLASSES_GROUP)
    if frame is None:
        return None
    if "cut" not in frame:                     # an earlier version's table
        return frame
    cid = frame["class_id"].astype(str)
    cut = frame["cut"].astype(str)
    return pd.DataFrame({"exhibit_id": frame["exhibit_id"], "class_id": cid,
                         "cutting_group": cid + "." + cut,
                         "distribution_group": cid + "." + cut + "." + frame["dist"].astype(str)})


@dataclass
class Settings:
    metric: str
    pretreatment: str
    threshold: float | None          # given per-pair threshold (else search-aware)
    per_search: float = ADVENTITIOUS
    class_cut: float | None = None   # given class cut (else from same-seizure pairs)
    top: int = TOP
    all_pairs: bool = False
    rebuild: bool = False
    cutting_threshold: float | None = None
    distribution_threshold: float | None = None
    extra: dict = field(default_factory=dict)

    def space(self) -> dict:
        """What must not change for stored classes to be kept."""
        return {"class_pretreatment": cl.CLASS_PRETREATMENT, "class_metric": cl.CLASS_METRIC,
                "class_criterion": cl.CLASS_CRITERION}


def _build_classes(records: pd.DataFrame, Z: np.ndarray, given: float | None, advance
                   ) -> tuple[np.ndarray, float, dict]:
    """The library's classes (:func:`classes.build`) at the given cut, or at the cut chosen
    above the same-seizure floor, with the share of same-seizure distances below it for the
    reader (two exhibits cost their cosine distance to merge)."""
    pop = build_population(records, PopulationRule(max_unlinked=1))
    d = 1.0 - np.einsum("ij,ij->i", Z[pop.linked_i], Z[pop.linked_j]) if pop.n_linked \
        else np.zeros(0)
    floor = float(np.quantile(d, cl.SEIZURE_FLOOR)) if len(d) else 0.0
    lab, cut, info = cl.build(Z, given, floor=floor, progress=advance)
    if len(d):
        info["same_seizure_within_cut"] = float(np.mean(d <= cut))
        info["class_cut_floor"] = floor
    return lab, cut, info


def link_library(data: LibraryData, new: np.ndarray, stored: Stored, settings: Settings,
                 calibration: Calibration | None, *, threads=None, date: str | None = None,
                 progress=None, levels: pd.DataFrame | None = None, engine=None,
                 profiles=None):
    """Link the new exhibits (``new``: bool over records) with the library. Returns
    (LinkResult, state writers for the library)."""
    t0 = time.perf_counter()
    advance = progress or (lambda n: None)
    date = date or dt.date.today().isoformat()
    p = profiles if profiles is not None else linkable(data)
    # the linkable rows' records, taken when needed (a copy of every record costs 0.5 GB at 10^6;
    # a whole-library run takes them all once)
    taken: dict = {}

    def records(at=None) -> pd.DataFrame:
        if at is None:
            if "all" not in taken:
                taken["all"] = data.records.iloc[p.rows].reset_index(drop=True)
            return taken["all"]
        return data.records.iloc[p.rows[at]].reset_index(drop=True)

    ids = data.records["exhibit_id"].to_numpy(dtype=object)[p.rows]
    n = len(ids)
    pre, metric = settings.pretreatment, settings.metric
    previous = stored.classes
    keep_state = (previous is not None and not settings.rebuild
                  and all(previous.settings.get(k) == v for k, v in settings.space().items())
                  and previous.settings.get("compounds") == p.compounds)
    if calibration is not None and calibration.chosen["pretreatment"] == pre \
            and calibration.compounds == p.compounds:
        ref_std = calibration.reference_std
    else:
        ref_std = _reference_std(p, pre)
    Xp = np.ascontiguousarray(_pretreated(p, pre, ref_std))
    # the class space: N+S then cosine whatever the link metric (module classes)
    class_std = previous.settings.get("reference_std") if keep_state else \
        (ref_std if pre == cl.CLASS_PRETREATMENT else _reference_std(p, cl.CLASS_PRETREATMENT))
    cmetric = cl.CLASS_METRIC
    same_space = pre == cl.CLASS_PRETREATMENT and class_std is not None and ref_std is not None \
        and np.array_equal(np.asarray(class_std), np.asarray(ref_std))
    Z = cl.unit_rows(Xp if same_space else _pretreated(p, cl.CLASS_PRETREATMENT, class_std),
                     cmetric)
    is_new = np.asarray(new, dtype=bool)[p.rows]
    advance(1)

    # --- classes
    events: list[dict] = []
    if keep_state:
        cut = previous.model.cut
        cut_info = {k: v for k, v in previous.settings.items() if k.startswith("class_cut_")
                    or k == "same_seizure_within_cut"}
        (label, cut_no, dist_no, moved, events, unclassed, reach) = _assign(
            ids, Z, is_new, previous, date, advance)
        cut_info["class_reach"] = reach if np.isfinite(reach) else None
        model = previous.model
        mode = "assign"
    else:
        lab, cut, cut_info = _build_classes(records(), Z, settings.class_cut, advance)
        prev_map = {} if previous is None else dict(zip(previous.frame["exhibit_id"].tolist(),
                                                        previous.frame["class_id"].tolist()))
        next_id = previous.model.next_id if previous is not None else 1
        class_ids, ev, next_id = stable_ids(ids.tolist(), lab, prev_map, next_id, date)
        reason = ("rebuild" if settings.rebuild else
                  "settings changed" if previous is not None else "first classes of the library")
        events = [{**e, "reason": reason} for e in ev]
        uniq = sorted(set(class_ids))
        pos = {c: k for k, c in enumerate(uniq)}
        label = np.fromiter((pos[c] for c in class_ids), dtype=np.int64, count=n)
        count, sums = cl.sums_of(Z, label, len(uniq))
        model = cl.ClassModel(uniq, count, sums, cut, next_id)
        cut_no = np.zeros(n, np.int64)
        dist_no = np.zeros(n, np.int64)
        moved = sum(1 for k, c in zip(ids.tolist(), class_ids) if k in prev_map and prev_map[k] != c)
        mode = "build"
    t_classes = time.perf_counter()
    advance(1)

    # --- the search threshold, on pairs of different classes
    search = search_threshold(Xp, label, metric, n, per_search=settings.per_search,
                              threads=threads)
    threshold = settings.threshold if settings.threshold is not None else search.threshold
    advance(1)

    # --- links
    whole = bool(is_new.all())
    search_fn = None
    if engine is not None:
        def search_fn(Q, k):
            return engine.topk(p, pre, list(ref_std) if ref_std is not None else None, metric, Q, k)
    li, lj, ld = _links(Xp, label, is_new, metric, threshold, settings.top, whole, threads,
                        search_fn)
    if mode == "build" or whole or settings.all_pairs:
        layers, at_i, at_j = Layers.of(records()), li, lj
    else:                           # a day's export: only the exhibits of its links
        need = np.unique(np.r_[li, lj])
        layers = Layers.of(records(need))
        at_i, at_j = np.searchsorted(need, li), np.searchsorted(need, lj)
    same_cut, same_dist, adul, pack = layer_verdicts(layers, at_i, at_j,
                                                      settings.cutting_threshold,
                                                      settings.distribution_threshold)
    if mode == "build":
        cut_no, dist_no = _groups_from_knn(Xp, label, layers, metric, settings, threads,
                                           (li, lj, same_cut, same_dist) if whole else None)
    else:
        cut_no, dist_no = groups_for_new(label, cut_no, dist_no, unclassed, li, lj, ld,
                                          same_cut, same_dist)
    t_links = time.perf_counter()
    advance(1)

    lr = (calibration.lr_model.log10_lr(ld) if calibration is not None
          and calibration.chosen["metric"] == metric and calibration.chosen["pretreatment"] == pre
          else np.full(len(ld), np.nan))
    same_class = label[li] == label[lj]
    links = link_table(ids, li, lj, ld, metric, pre, lr, adul, pack, same_cut, same_dist,
                       same_class)

    # --- what is reported: every exhibit of the classes a new exhibit touched
    touched = np.unique(label[is_new])
    in_touched = np.isin(label, touched)
    cid = np.asarray(model.ids, dtype=object)
    assignment = _assignment(Z, label, model, is_new, li, lj, lr, same_class)
    touched_records = records() if in_touched.all() else records(np.flatnonzero(in_touched))
    classes = class_rows(touched_records, cid, label, cut_no, dist_no, is_new, levels,
                         in_touched, assignment)
    # the class table: the classes new exhibits touched (a whole-library run: every class)
    class_table, timeline = class_summary(classes, model, touched_ids=set(cid[touched]),
                                          events=events)
    events_frame = pd.DataFrame(events, columns=EVENT_COLUMNS)
    sizes = np.bincount(label, minlength=len(cid))
    n_old = int((~is_new).sum())
    summary = {
        "exhibits_considered": int(n), "exhibits_new": int(is_new.sum()),
        "exhibits_without_profile": int(data.n - n), "links": len(links),
        "classes": len(cid), "classes_with_links": int((sizes >= 2).sum()),
        "classes_touched": len(touched), "largest_class": int(sizes.max()) if n else 0,
        "same_cut_links": int(links["same_cut"].sum()),
        "same_distribution_links": int(links["same_distribution"].sum()),
        "class_events": {k: int(v) for k, v in
                         events_frame["event"].value_counts().sort_index().items()},
        "class_mode": mode,
        "moved_exhibits": int(moved),
        "moved_share": float(moved / n_old) if n_old else 0.0,
        "settings": {"metric": metric, "pretreatment": pre, "threshold": float(threshold),
                     "threshold_source": "given" if settings.threshold is not None
                     else "search", "search": search.as_json(), "top": settings.top,
                     "class_cut": float(cut), "class_metric": cmetric, **cut_info,
                     "cutting_threshold": settings.cutting_threshold,
                     "distribution_threshold": settings.distribution_threshold,
                     "compounds": p.compounds},
        "calibration": (calibration.chosen | {"population": calibration.population,
                                              "layers": calibration.layers})
        if calibration else None,
        "timings_s": {"classes": round(t_classes - t0, 3), "links": round(t_links - t_classes, 3),
                      "link": round(time.perf_counter() - t0, 3)},
    }
    dl = np.asarray(calibration.lr.get("distances_linked", [])) if calibration else np.zeros(0)
    du = np.asarray(calibration.lr.get("distances_unlinked", [])) if calibration else np.zeros(0)
    pairs = (lambda: all_pairs(ids, Xp, label, is_new, metric, threshold, pre, calibration,
                               layers, settings, threads)) if settings.all_pairs else None
    result = LinkResult(links, classes, class_table, timeline, events_frame, summary, dl, du,
                        pairs)
    state = {"ids": ids, "label": label, "cut": cut_no, "dist": dist_no, "model": model,
             "settings": {**settings.space(), "class_metric": cmetric, "class_cut": float(cut),
                          **{k: v for k, v in cut_info.items() if k != "class_reach"},
                          "compounds": p.compounds,
                          "reference_std": list(map(float, class_std)) if class_std is not None
                          else None, "next_id": model.next_id,
                          "search": search.as_json()}}
    return result, state


# --- classes of a day's export --------------------------------------------------------------


def _assign(ids, Z, is_new, previous: StoredClasses, date, advance):
    """Stored classes kept; the new (and never classed) exhibits assigned or made into new
    classes; merges where the new members bring two classes within the cut."""
    model = previous.model
    n = len(ids)
    stored = previous.frame
    before = stored["exhibit_id"].to_numpy(dtype=object)
    if len(before) <= n and np.array_equal(before, ids[:len(before)]):
        # the usual day: the library as it was, then this import's rows (no hashing of 10^6 ids)
        at = np.r_[np.arange(len(before)), np.full(n - len(before), -1)].astype(np.int64)
    else:
        at = pd.Index(before).get_indexer(ids)                                  # -1: new
    known = at >= 0
    label = np.full(n, -1, np.int64)
    label[known] = pd.Index(np.asarray(model.ids, dtype=object)).get_indexer(
        stored["class_id"].to_numpy(dtype=object)[at[known]])
    cut_no = np.zeros(n, np.int64)
    dist_no = np.zeros(n, np.int64)
    cut_no[known] = stored["cut"].to_numpy(dtype=np.int64)[at[known]]
    dist_no[known] = stored["dist"].to_numpy(dtype=np.int64)[at[known]]
    todo = np.flatnonzero(label < 0)        # never classed: this import's exhibits
    n_sums, sums = model.n.copy(), model.sums.copy()
    ids_list = list(model.ids)
    next_id = model.next_id
    events = []
    known_rows = label >= 0
    factor = cl.reach(Z, label, model.n, model.sums) if known_rows.any() else float("inf")
    if len(todo):
        best = cl.cheapest_joinable(model, Z[todo], factor)
        take = best >= 0
        label[todo[take]] = best[take]
        rest = todo[~take]
        if len(rest):
            sub = cl.ward_labels(Z[rest], model.cut)
            k0 = len(ids_list)
            for s in range(int(sub.max()) + 1):
                cid = cl.ID_FORMAT.format(next_id)
                next_id += 1
                ids_list.append(cid)
                members = int((sub == s).sum())
                events.append({"date": date, "event": "new", "class_id": cid, "related": "",
                               "reason": f"{members} exhibit(s) within the reach of no "
                                         "existing class"})
            label[rest] = k0 + sub
            n_sums = np.r_[n_sums, np.zeros(len(ids_list) - k0, np.int64)]
            sums = np.vstack([sums, np.zeros((len(ids_list) - k0, sums.shape[1]))])
        np.add.at(sums, label[todo], Z[todo])
        n_sums += np.bincount(label[todo], minlength=len(ids_list))
    advance(0)
    touched = np.unique(label[todo]) if len(todo) else np.zeros(0, np.int64)
    # new evidence for a merge: a new exhibit that could join both classes
    near = cl.joinable(cl.ClassModel(ids_list, n_sums, sums, model.cut, next_id), Z[todo],
                       factor) if len(todo) else np.zeros((0, len(ids_list)), bool)

    def allowed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (near[:, a] & near[:, b]).any(axis=0)

    into, merges = cl.merge_close(n_sums, sums, model.cut, only=touched, allowed=allowed)
    moved = 0
    if merges:
        old = label >= 0
        old[todo] = False
        for kept, absorbed, d in merges:
            moved += int((old & (label == absorbed)).sum())
            offset = int(cut_no[label == kept].max(initial=0))
            cut_no[label == absorbed] += offset
            events.append({"date": date, "event": "merge", "class_id": ids_list[kept],
                           "related": ids_list[absorbed],
                           "reason": f"merge cost {d:.4g} within the class cut "
                                     f"{model.cut:.4g} after this import's exhibits, some of "
                                     "them within the cut of both"})
            label[label == absorbed] = kept
    # compact: drop absorbed classes
    alive = np.unique(into)
    final = np.searchsorted(alive, into)
    label = final[label]
    new_sums = np.zeros((len(alive), sums.shape[1]))
    np.add.at(new_sums, final, sums)
    new_n = np.bincount(final, weights=n_sums, minlength=len(alive)).astype(np.int64)
    previous.model = cl.ClassModel([ids_list[a] for a in alive], new_n, new_sums, model.cut,
                                   next_id)
    unclassed = np.zeros(n, bool)
    unclassed[todo] = True
    return label, cut_no, dist_no, moved, events, unclassed, factor


def stable_ids(exhibit_ids: list[str], labels: np.ndarray, previous: dict[str, str],
               next_id: int, date: str) -> tuple[list[str], list[dict], int]:
    """Class ids for a rebuilt grouping, kept from the ``previous`` assignment where a group
    holds the largest part of a previous class (ties: lowest label); a group gathering several
    previous classes is a merge (keeps the id contributing most), a previous class spread over
    several groups is a split (its largest part keeps the id). Returns (id per exhibit, events,
    next free id number)."""
    from collections import Counter, defaultdict

    groups: dict[int, list[int]] = defaultdict(list)
    for idx, lab in enumerate(labels.tolist()):
        groups[lab].append(idx)
    draws = {lab: Counter(previous[exhibit_ids[k]] for k in members
                          if exhibit_ids[k] in previous) for lab, members in groups.items()}
    holder: dict[str, int] = {}
    for lab in sorted(groups):
        for cid, count in draws[lab].items():
            best = holder.get(cid)
            if best is None or count > draws[best][cid]:
                holder[cid] = lab
    events: list[dict] = []
    ids: dict[int, str] = {}
    for lab in sorted(groups):
        owned = [cid for cid in draws[lab] if holder[cid] == lab]
        if owned:
            keep = min(owned, key=lambda c: (-draws[lab][c], c))
            ids[lab] = keep
            if len(owned) > 1:
                events.append({"date": date, "event": "merge", "class_id": keep,
                               "related": ";".join(sorted(set(owned) - {keep}))})
        else:
            ids[lab] = cl.ID_FORMAT.format(next_id)
            next_id += 1
            split_from = sorted(draws[lab])
            events.append({"date": date, "event": "split" if split_from else "new",
                           "class_id": ids[lab], "related": ";".join(split_from)})
    return [ids[lab] for lab in labels.tolist()], events, next_id


# --- links and layers -------------------------------------------------------------------------


def _groups_from_knn(Xp, label, layers, metric, settings, threads, given=None):
    """Cutting and distribution groups of a built library: connected same-cut (same-packaging)
    links among each exhibit's ``top`` nearest in its class."""
    if given is None:
        whole = np.ones(len(label), bool)
        i, j, _ = _links(Xp, label, whole, metric, 0.0, settings.top, True, threads)
        same_cut, same_dist, _, _ = layer_verdicts(layers, i, j, settings.cutting_threshold,
                                                   settings.distribution_threshold)
    else:
        i, j, same_cut, same_dist = given
    inside = label[i] == label[j]
    cut_no = subgroups(label, i, j, same_cut & inside)
    dist_no = subgroups(label * (int(cut_no.max(initial=0)) + 1) + cut_no, i, j,
                        same_dist & inside)
    return cut_no, dist_no


def _links(Xp, label, is_new, metric, threshold, top, whole, threads, search_fn=None):
    """(i, j, distance) with i < j: each new exhibit's ``top`` strongest chemical links (same
    class, or within the threshold); a whole-library run: each exhibit's ``top`` nearest in its
    class. ``search_fn(Q, k)`` searches the library elsewhere (Dask), same result."""
    parts = []
    if whole:
        order = np.argsort(label, kind="stable")
        bounds = np.flatnonzero(np.r_[True, label[order][1:] != label[order][:-1], True])
        for a, b in pairwise(bounds):
            if b - a < 2:
                continue
            m = order[a:b]
            idx, d = nearest(Xp[m], Xp[m], metric, min(top + 1, len(m)), threads)
            q = np.repeat(np.arange(len(m)), idx.shape[1])
            idx, d = idx.ravel(), d.ravel()
            ok = (idx >= 0) & (idx != q) & np.isfinite(d)
            parts.append((m[q[ok]], m[idx[ok]], d[ok]))
    else:
        fresh = np.flatnonzero(is_new)
        if len(fresh) and len(Xp) > 1:
            k = min(3 * top + 1, len(Xp))
            idx, d = nearest(Xp[fresh], Xp, metric, k, threads) if search_fn is None \
                else search_fn(Xp[fresh], k)
            q = np.repeat(fresh, idx.shape[1])
            idx, d = idx.ravel(), d.ravel()
            ok = (idx >= 0) & (idx != q) & np.isfinite(d)
            q, idx, d = q[ok], idx[ok], d[ok]
            linked = (label[q] == label[idx]) | (d <= threshold)
            q, idx, d = q[linked], idx[linked], d[linked]
            rank = _rank_within(q)
            keep = rank < top
            parts.append((q[keep], idx[keep], d[keep]))
    if not parts:
        z = np.zeros(0, np.int64)
        return z, z.copy(), np.zeros(0)
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    d = np.concatenate([p[2] for p in parts])
    a, b = np.minimum(i, j), np.maximum(i, j)
    key = a.astype(np.int64) * max(len(Xp), 1) + b
    _, first = np.unique(key, return_index=True)         # one row a pair, sorted by (a, b)
    return a[first], b[first], d[first]


def _rank_within(q: np.ndarray) -> np.ndarray:
    """Position of each entry within its run of equal ``q`` (runs are contiguous)."""
    start = np.r_[0, np.flatnonzero(q[1:] != q[:-1]) + 1]
    run = np.repeat(start, np.diff(np.r_[start, len(q)]))
    return np.arange(len(q)) - run


def link_table(ids, a, b, score, metric, pretreatment, log10_lr, adulterant_d, packaging_d,
               same_cut, same_distribution, same_class) -> pd.DataFrame:
    """links.csv: exhibit ends as categoricals over the exhibit ids; similarities are 1 - the
    layers' distances (NaN: nothing to compare)."""
    categories = pd.Index(ids, dtype=object)
    n = len(score)

    def ends(pos):
        return pd.Categorical.from_codes(np.asarray(pos).astype(np.int64), categories=categories,
                                         validate=False)

    return pd.DataFrame({
        "exhibit_a": ends(a), "exhibit_b": ends(b), "score": np.asarray(score, float),
        "metric": pd.Categorical.from_codes(np.zeros(n, np.int8), [metric]),
        "pretreatment": pd.Categorical.from_codes(np.zeros(n, np.int8), [pretreatment]),
        "log10_lr": np.asarray(log10_lr, float),
        "adulterant_similarity": 1.0 - np.asarray(adulterant_d, float),
        "packaging_similarity": 1.0 - np.asarray(packaging_d, float),
        "same_cut": np.asarray(same_cut, bool),
        "same_distribution": np.asarray(same_distribution, bool),
        "same_class": np.asarray(same_class, bool),
    })


def all_pairs(ids, Xp, label, is_new, metric, threshold, pre, calibration, layers, settings,
              threads, chunk: int = 1_000_000):
    """Every chemical link touching a new exhibit (a whole library: every link), as link-table
    chunks: the pairs inside each class, then the pairs of different classes within the
    threshold."""
    n = len(label)
    order = np.argsort(label, kind="stable")
    bounds = np.flatnonzero(np.r_[True, label[order][1:] != label[order][:-1], True])

    def table(i, j):
        d = sim.score_pairs(Xp, i, j, metric, threads=threads)
        lr = (calibration.lr_model.log10_lr(d) if calibration is not None
              and calibration.chosen["metric"] == metric
              and calibration.chosen["pretreatment"] == pre else np.full(len(d), np.nan))
        sc, sd, ad, pk = layer_verdicts(layers, i, j, settings.cutting_threshold,
                                         settings.distribution_threshold)
        return link_table(ids, i, j, d, metric, pre, lr, ad, pk, sc, sd, label[i] == label[j])

    for a, b in pairwise(bounds):
        m = order[a:b]
        if len(m) < 2 or not is_new[m].any():
            continue
        x, y = np.triu_indices(len(m), k=1)
        for s in range(0, len(x), chunk):
            i, j = m[x[s:s + chunk]], m[y[s:s + chunk]]
            keep = is_new[i] | is_new[j]
            i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
            if len(i):
                yield table(i, j)
    fresh = np.flatnonzero(is_new)
    if len(fresh) and n > 1:
        e = sim.pairs_between(Xp[fresh], Xp, metric, threshold, threads=threads)
        i, j = fresh[e.i], e.j
        keep = (i != j) & (label[i] != label[j]) & ~(is_new[j] & (j < i))
        i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
        for s in range(0, len(i), chunk):
            yield table(i[s:s + chunk], j[s:s + chunk])


# --- what is reported about classes -----------------------------------------------------------


def _assignment(Z, label, model, is_new, li, lj, lr, same_class):
    """For each new exhibit: the average distance to its class (without itself) and the LR of
    its strongest link into it."""
    fresh = np.flatnonzero(is_new)
    dist = np.full(len(label), np.nan)
    best_lr = np.full(len(label), np.nan)
    if len(fresh):
        lab = label[fresh]
        n_c = model.n[lab].astype(float)
        s_c = model.sums[lab] - Z[fresh]
        with np.errstate(invalid="ignore", divide="ignore"):
            dist[fresh] = np.where(n_c > 1, 1.0 - np.einsum("ij,ij->i", Z[fresh], s_c)
                                   / (n_c - 1), np.nan)
        for end, other in ((li, lj), (lj, li)):
            ok = same_class & is_new[end] & np.isfinite(lr)
            np.fmax.at(best_lr, end[ok], lr[ok])
    return dist, best_lr


# --- the library's state ----------------------------------------------------------------------


def state_writers(state: dict, events: pd.DataFrame) -> dict:
    from profiling.library import _create, _write_column, write_frame

    model: cl.ClassModel = state["model"]
    frame = pd.DataFrame({"exhibit_id": state["ids"],
                          "class_id": np.asarray(model.ids, dtype=object)[state["label"]],
                          "cut": state["cut"].astype(np.int64),
                          "dist": state["dist"].astype(np.int64)})

    def fill_classes(g):
        write_frame(g, frame, {"exhibit_id": "text", "class_id": "text", "cut": "count",
                               "dist": "count"})

    def fill_model(g):
        _write_column(g, "class_id", "text", list(model.ids))
        _create(g, "n", np.asarray(model.n, np.int64))
        _create(g, "sums", np.asarray(model.sums, np.float64).reshape(len(model.n), -1))
        _write_column(g, "settings", "text", [json.dumps({**state["settings"],
                                                          "next_id": model.next_id},
                                                         sort_keys=True)])

    def fill_events(g):
        ev = events.astype(str)
        write_frame(g, ev, dict.fromkeys(ev.columns, "text"))

    return {CLASSES_GROUP: fill_classes, MODEL_GROUP: fill_model, EVENTS_GROUP: fill_events}
