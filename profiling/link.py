"""Linking: calibrate the chemical comparison, link exhibits, and say inside each link whether
the exhibits also share the cut (same lot) and the packaging (same dealer).

The three layers answer different questions and are calibrated separately; adulterants and
packaging never enter the chemical score (:func:`folded_comparison` measures why):

- **chemical** — distance between pretreated impurity profiles (``profiling.similarity``);
  linked population = pairs of one seizure, unlinked = pairs of different seizures
  (:mod:`profiling.calibrate`); the threshold is set at a false-positive rate;
- **cutting** — distance between cuts: Jaccard distance of the adulterant sets, mean absolute
  difference of the adulterant amounts present in either, and the relative purity difference;
- **distribution** — Jaccard distance of the packaging tokens (material, colour, closure).

The deeper layers are calibrated on the same-seizure pairs against pairs of *different chemical
origin* (different seizures, chemical distance above the threshold): their false-positive rate
is the rate at which unrelated material shares a cut or a packaging by coincidence.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiling import similarity as sim
from profiling.calibrate import (
    LRModel,
    Population,
    PopulationRule,
    Threshold,
    auc,
    build_population,
    cllr,
    cllr_min,
    fit_lr,
    threshold_at_fpr,
)
from profiling.errors import InputError
from profiling.library import LibraryData

PROFILE_METRICS = ("pearson", "cosine", "squared_cosine", "euclidean", "manhattan", "canberra")
PRETREATMENTS = ("none", "sum", "sum_sqrt", "sum_4root", "sum_log", "sum_std")
#: the literature's choice when nothing is calibrated (Lociciro et al. 2008: N+S then cosine)
DEFAULT_PRETREATMENT, DEFAULT_METRIC = "sum_std", "cosine"
NEUTRAL = 0.5   # in the folded score, a layer that cannot be compared counts half


# --- what is compared ---------------------------------------------------------------------


@dataclass
class Profiles:
    """The exhibits that can be linked: rows of the library with a measured profile."""

    rows: np.ndarray           # positions in the library's records
    X: np.ndarray              # raw profile matrix [len(rows), d], NaN = not measured
    compounds: list[str]


def linkable(data: LibraryData) -> Profiles:
    X = data.profiles.reshape(data.n, len(data.compounds))
    measured = np.isfinite(X) & (np.nan_to_num(X) > 0)
    rows = np.flatnonzero(measured.sum(axis=1) >= 2)
    cols = np.flatnonzero(np.isfinite(X[rows]).any(axis=0)) if len(rows) else np.zeros(0, int)
    return Profiles(rows, np.ascontiguousarray(X[np.ix_(rows, cols)]),
                    [data.compounds[c] for c in cols])


def _split(values) -> list[list[str]]:
    return [v.split(";") if v else [] for v in values]


@dataclass
class Layers:
    """Packed sets and amounts for the cut and packaging comparisons of linkable rows."""

    adulterants: np.ndarray     # uint64 bit-packed sets
    fractions: np.ndarray       # [n, vocabulary] amounts (NaN = not given)
    purity: np.ndarray
    packaging: np.ndarray       # uint64 bit-packed sets
    has_packaging: np.ndarray   # bool

    @classmethod
    def of(cls, records: pd.DataFrame) -> Layers:
        adul = _split(records["adulterants"].tolist())
        packed, vocab = sim.pack_sets(adul)
        position = {t: k for k, t in enumerate(vocab)}
        fractions = np.full((len(records), max(1, len(vocab))), np.nan)
        for r, text in enumerate(records["adulterant_fractions"].tolist()):
            for item in filter(None, text.split(";")):
                name, value = item.split("=")
                fractions[r, position[name]] = float(value)
        pack = _split(records["packaging"].tolist())
        return cls(packed, fractions, records["purity"].to_numpy(dtype=float),
                   sim.pack_sets(pack)[0], np.array([bool(p) for p in pack]))

    def adulterant_distance(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        d = sim.score_pairs(self.adulterants, i, j, "jaccard")
        return d                 # NaN when neither has an adulterant

    def cut_distance(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Mean of the components both exhibits allow: adulterant-set Jaccard distance, amount
        difference (x10, capped at 1: 10 points of adulterant apart is a different cut), relative
        purity difference. NaN when nothing can be compared."""
        sets = self.adulterant_distance(i, j)
        fa, fb = self.fractions[i], self.fractions[j]
        both = np.isfinite(fa) & np.isfinite(fb)
        n_both = both.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            amount = np.where(n_both > 0, np.where(both, np.abs(fa - fb), 0).sum(axis=1)
                              / np.maximum(n_both, 1) * 10, np.nan)
            pa, pb = self.purity[i], self.purity[j]
            purity = np.abs(pa - pb) / np.maximum(pa, pb)
        parts = np.vstack([sets, np.minimum(amount, 1.0), np.where(np.isfinite(purity), purity, np.nan)])
        known = np.isfinite(parts)
        count = known.sum(axis=0)
        total = np.where(known, parts, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):     # nanmean's arithmetic, silent
            return np.where(count > 0, total / count, np.nan)

    def packaging_distance(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        d = sim.score_pairs(self.packaging, i, j, "jaccard")
        return np.where(self.has_packaging[i] & self.has_packaging[j], d, np.nan)


# --- calibration ----------------------------------------------------------------------------


@dataclass
class Calibration:
    """What `profile calibrate` finds and `profile link` reuses (SPEC: calibration.json)."""

    population: dict
    combinations: list[dict]
    chosen: dict
    layers: dict
    lr: dict
    reference_std: list[float] | None
    compounds: list[str]
    folded: dict = field(default_factory=dict)
    created: str = ""

    def as_json(self) -> dict:
        return {"population": self.population, "combinations": self.combinations,
                "chosen": self.chosen, "layers": self.layers, "lr": self.lr,
                "reference_std": self.reference_std, "compounds": self.compounds,
                "folded": self.folded, "created": self.created}

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        return cls(**{k: data.get(k) for k in ("population", "combinations", "chosen", "layers",
                                                "lr", "reference_std", "compounds", "folded",
                                                "created")})

    @property
    def lr_model(self) -> LRModel:
        return LRModel(self.lr["kind"], {k: v for k, v in self.lr.items() if k != "kind"})


def _pretreated(p: Profiles, name: str, reference_std=None) -> np.ndarray:
    return sim.pretreat(p.X, name, reference_std=None if reference_std is None
                        else np.asarray(reference_std, dtype=float))


def _reference_std(p: Profiles, name: str) -> list[float] | None:
    if name != "sum_std":
        return None
    return sim.PRETREATMENTS[name].fit(p.X).tolist()


def calibrate(data: LibraryData, rule: PopulationRule = PopulationRule(), fpr: float = 0.01,
              pretreatments=PRETREATMENTS, metrics=PROFILE_METRICS, lr_kind: str = "logistic",
              threads: int | None = None) -> Calibration:
    """Every pretreatment x metric on the population, the best by AUC, its threshold at ``fpr``,
    its LR model, and the calibration of the cutting and distribution layers."""
    p = linkable(data)
    records = data.records.iloc[p.rows].reset_index(drop=True)
    pop = build_population(records, rule)
    if pop.n_linked < 2 or pop.n_unlinked_used < 2:
        raise InputError(
            f"calibration needs linked and unlinked pairs: the population has {pop.n_linked} "
            f"linked and {pop.n_unlinked} unlinked pairs ({len(p.rows)} exhibits with profiles). "
            "Give a --threshold instead, or calibrate on a library with multi-exhibit seizures.")
    combos, best = [], None
    for pre in pretreatments:
        Xp = _pretreated(p, pre)
        for metric in metrics:
            dl = sim.score_pairs(Xp, pop.linked_i, pop.linked_j, metric, threads=threads)
            du = sim.score_pairs(Xp, pop.unlinked_i, pop.unlinked_j, metric, threads=threads)
            a = auc(dl, du)
            combos.append({"pretreatment": pre, "metric": metric, "auc": a,
                           "n_linked": pop.n_linked, "n_unlinked": pop.n_unlinked})
            if best is None or a > best[0]:
                best = (a, pre, metric, dl, du)
    a, pre, metric, dl, du = best
    for c in combos:
        c["best"] = c["pretreatment"] == pre and c["metric"] == metric
    thr = threshold_at_fpr(dl, du, fpr)
    model = fit_lr(dl, du, lr_kind)
    lr_l, lr_u = model.log10_lr(dl), model.log10_lr(du)
    chosen = {"pretreatment": pre, "metric": metric, "threshold": thr.distance, "fpr": thr.fpr,
              "fnr": thr.fnr, "target_fpr": fpr, "auc": a, "cllr": cllr(lr_l, lr_u),
              "cllr_min": cllr_min(dl, du)}
    cal = Calibration(
        population={**rule.describe(), "n_linked": pop.n_linked, "n_unlinked": pop.n_unlinked,
                    "n_unlinked_used": pop.n_unlinked_used, "sampled": pop.sampled,
                    "n_exhibits": int(len(p.rows))},
        combinations=combos, chosen=chosen, layers={}, lr=model.as_json(),
        reference_std=_reference_std(p, pre), compounds=p.compounds,
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat())
    cal.layers = _calibrate_layers(data, p, pop, cal, fpr, threads, dl, du)
    cal.folded = folded_comparison(data, p, pop, cal, fpr, threads, dl, du)
    cal.lr["distances_linked"] = _quantiles(dl)
    cal.lr["distances_unlinked"] = _quantiles(du)
    return cal


def _quantiles(d: np.ndarray) -> list[float]:
    d = d[np.isfinite(d)]
    return np.quantile(d, np.linspace(0, 1, 101)).tolist() if len(d) else []


def _unrelated(pop: Population, du: np.ndarray, threshold: float):
    """Different-seizure pairs of different chemical origin (not chemically linked)."""
    far = ~(du <= threshold)
    return pop.unlinked_i[far], pop.unlinked_j[far]


def _calibrate_layers(data, p, pop, cal, fpr, threads, dl, du) -> dict:
    records = data.records.iloc[p.rows].reset_index(drop=True)
    layers = Layers.of(records)
    t = cal.chosen["threshold"]
    out = {"chemical": {"auc": cal.chosen["auc"], "threshold": t}}
    ui, uj = _unrelated(pop, du, t)
    for name, fn in (("cutting", layers.cut_distance), ("distribution", layers.packaging_distance)):
        dl_layer = fn(pop.linked_i, pop.linked_j)
        du_layer = fn(ui, uj)
        lk, uk = dl_layer[np.isfinite(dl_layer)], du_layer[np.isfinite(du_layer)]
        if len(lk) < 2 or len(uk) < 2:
            out[name] = {"auc": None, "threshold": None, "n_linked": int(len(lk)),
                         "n_unlinked": int(len(uk))}
            continue
        thr = threshold_at_fpr(lk, uk, fpr)
        rule = "false-positive rate"
        if thr.distance < 0:
            # a discrete comparison (identical packaging, identical cut) that unrelated material
            # shares more often than the target rate: identity is the only usable cut, and its
            # coincidence rate is reported as it is
            thr = Threshold(0.0, float(np.mean(uk <= 0)), float(np.mean(lk > 0)), fpr)
            rule = "identity (coincidence rate above the target)"
        out[name] = {"auc": auc(lk, uk), "threshold": thr.distance, "fpr": thr.fpr,
                     "fnr": thr.fnr, "n_linked": int(len(lk)), "n_unlinked": int(len(uk)),
                     "rule": rule}
    return out


def folded_comparison(data, p, pop, cal, fpr, threads, dl, du) -> dict:
    """Why the layers stay apart: a score that adds the cut and packaging distances to the
    chemical one, calibrated the same way on same-seizure pairs, separates seizures better but
    links far fewer chemically linked pairs of *different* seizures (different dealers of one
    batch) than the profile alone at the same false-positive rate."""
    records = data.records.iloc[p.rows].reset_index(drop=True)
    layers = Layers.of(records)
    scale = np.nanmedian(du) or 1.0

    def folded(i, j, d):
        cut = np.nan_to_num(layers.cut_distance(i, j), nan=NEUTRAL)
        pack = np.nan_to_num(layers.packaging_distance(i, j), nan=NEUTRAL)
        return d / scale + cut + pack

    fl, fu = folded(pop.linked_i, pop.linked_j, dl), folded(pop.unlinked_i, pop.unlinked_j, du)
    t_chem = cal.chosen["threshold"]
    t_fold = threshold_at_fpr(fl, fu, fpr).distance
    # chemically linked pairs of different seizures: the links an analyst most wants
    cross = du <= t_chem
    kept_by_fold = float(np.mean(fu[cross] <= t_fold)) if cross.any() else float("nan")
    return {"auc_profile": cal.chosen["auc"], "auc_folded": auc(fl, fu),
            "cross_seizure_links_profile": int(cross.sum()),
            "share_kept_by_folded": kept_by_fold}


# --- linking --------------------------------------------------------------------------------


@dataclass
class LinkResult:
    links: pd.DataFrame              # SPEC links.csv columns
    classes: pd.DataFrame            # SPEC classes.csv columns (+ context columns)
    events: pd.DataFrame             # class events of this run
    summary: dict
    scores_linked: np.ndarray        # calibration distances for the report
    scores_unlinked: np.ndarray


LAYER_CHUNK = 1_000_000     # links whose layers are compared at a time (bounds memory)


def link_profiles(data: LibraryData, settings: dict, *, new: np.ndarray | None = None,
                  stored_edges: tuple | None = None, previous: dict[str, str] | None = None,
                  next_id: int = 1, calibration: Calibration | None = None,
                  threads: int | None = None, date: str | None = None,
                  progress=None, engine=None) -> tuple[LinkResult, tuple, int]:
    """Link the library's exhibits. ``new`` (bool over records) marks exhibits to compare with
    everything; the rest are taken from ``stored_edges`` ((exhibit ids, a, b, score) as
    :func:`profiling.library.read_edges` returns them) computed with the same settings.
    ``engine`` computes the new edges elsewhere (``profiling.scale``); by default they are
    computed in this process. Returns (result, all edges for storage as (exhibit ids, a, b,
    score), next class id).

    Memory stays O(exhibits + links): links are held as position arrays, and the deeper layers
    (cut, packaging) are compared, in chunks, only for the links that need them: those inside a
    chemical class (for the cutting and distribution groups) and those reported (touching a new
    exhibit)."""
    from profiling.classes import assign_ids, group_links, subgroups

    t0 = time.perf_counter()
    advance = progress or (lambda n: None)
    p = linkable(data)
    records = data.records.iloc[p.rows].reset_index(drop=True)
    ids = records["exhibit_id"].to_numpy(dtype=object)
    pre, metric, threshold = settings["pretreatment"], settings["metric"], settings["threshold"]
    ref_std = calibration.reference_std if (calibration and calibration.chosen["pretreatment"] == pre) else None
    Xp = np.ascontiguousarray(_pretreated(p, pre, ref_std))
    is_new = np.ones(len(p.rows), dtype=bool) if new is None else new[p.rows]
    old = np.flatnonzero(~is_new)
    fresh = np.flatnonzero(is_new)
    if engine is None:
        parts = [local_edges(Xp, fresh, old, metric, threshold, threads)]
    else:
        parts = [engine(p, fresh, old, pre, ref_std if ref_std is not None else
                        _reference_std(p, pre), metric, threshold, advance)]
    advance(1)
    if stored_edges is not None and len(stored_edges[1]) and len(old):
        parts.append(_carried_edges(stored_edges, ids, is_new))
    i, j, d = sim.sort_edges(parts, len(p.rows))
    del parts
    t_edges = time.perf_counter()

    labels = group_links(len(p.rows), i, j, d, threshold,
                         distances=lambda m: _condensed(Xp, m, metric, threads))
    advance(1)
    t_classes = time.perf_counter()
    date = date or dt.date.today().isoformat()
    class_ids, events, next_id = assign_ids(ids.tolist(), labels, previous or {}, next_id, date)

    # the deeper layers, for the links inside a class (only their same-cut / same-distribution
    # verdicts are kept) and the links reported (touching a new exhibit; kept in full)
    layers = Layers.of(records)
    t_cut = settings.get("cutting_threshold")
    t_pack = settings.get("distribution_threshold")
    kept: dict[str, list] = {k: [] for k in ("rep", "adul", "pack", "cut_same", "dist_same",
                                             "cut_i", "cut_j", "dist_i", "dist_j")}
    all_reported = bool(is_new.all())      # a whole-library link: every link is reported
    for a in range(0, len(i), LAYER_CHUNK):
        ci, cj = i[a:a + LAYER_CHUNK], j[a:a + LAYER_CHUNK]
        reported = is_new[ci] | is_new[cj]
        within = labels[ci] == labels[cj]
        need = np.flatnonzero(reported | within)
        ni, nj = ci[need], cj[need]
        adulterant_d, cut_d, pack_d = (layers.adulterant_distance(ni, nj),
                                       layers.cut_distance(ni, nj), layers.packaging_distance(ni, nj))
        same_cut = (cut_d <= t_cut) if t_cut is not None else np.zeros(len(ni), bool)
        same_dist = same_cut & ((pack_d <= t_pack) if t_pack is not None else np.zeros(len(ni), bool))
        rep = reported[need]
        if not all_reported:
            kept["rep"].append(a + need[rep])
        kept["adul"].append(adulterant_d[rep])
        kept["pack"].append(pack_d[rep])
        kept["cut_same"].append(same_cut[rep])
        kept["dist_same"].append(same_dist[rep])
        inside = within[need]
        for name, flag in (("cut", same_cut), ("dist", same_dist)):
            keep = flag & inside
            kept[f"{name}_i"].append(ni[keep])
            kept[f"{name}_j"].append(nj[keep])
    cat = {}
    for k in list(kept):          # one at a time: its chunks are freed as it is joined
        parts = kept.pop(k)
        cat[k] = np.concatenate(parts) if parts else np.zeros(0)
        del parts
    cut_group = subgroups(labels, cat["cut_i"].astype(np.int64), cat["cut_j"].astype(np.int64),
                          np.ones(len(cat["cut_i"]), bool))
    dist_group = subgroups(labels * 100_000 + cut_group, cat["dist_i"].astype(np.int64),
                           cat["dist_j"].astype(np.int64), np.ones(len(cat["dist_i"]), bool))

    # the officer's question is about the new exhibits: report the links that touch them (the
    # library keeps every link, and classes.csv covers every exhibit)
    if all_reported:                       # the edges themselves, not copies
        ri, rj, rd = i, j, d
    else:
        rep = cat.pop("rep").astype(np.int64)
        ri, rj, rd = i[rep], j[rep], d[rep]
        del rep
    lr = calibration.lr_model.log10_lr(rd) if calibration is not None and \
        calibration.chosen["metric"] == metric and calibration.chosen["pretreatment"] == pre \
        else np.full(len(rd), np.nan)
    links = link_table(ids, ri, rj, rd, metric, pre, lr, cat.pop("adul"), cat.pop("pack"),
                       cat.pop("cut_same"), cat.pop("dist_same"))
    del ri, rj, rd, lr
    cls = np.array(class_ids, dtype=object)
    classes = pd.DataFrame({
        "exhibit_id": ids, "class_id": cls,
        "cutting_group": [f"{c}.{g}" for c, g in zip(cls, cut_group)],
        "distribution_group": [f"{c}.{g}.{h}" for c, g, h in zip(cls, cut_group, dist_group)],
        "seizure_id": records["seizure_id"].to_numpy(), "area": records["area"].to_numpy(),
        "force": records["force"].to_numpy(), "drug": records["drug"].to_numpy(),
        "seized_on": pd.to_datetime(records["seized_on"]).dt.strftime("%Y-%m-%d").fillna("").to_numpy(),
        "seizure_type": records["seizure_type"].to_numpy(), "flags": records["flags"].to_numpy(),
    })
    events_frame = pd.DataFrame([e.as_row() for e in events],
                                columns=["date", "event", "class_id", "related"])
    sizes = classes["class_id"].value_counts()
    summary = {
        "exhibits_considered": int(len(p.rows)), "exhibits_new": int(len(fresh)),
        "exhibits_without_profile": int(data.n - len(p.rows)), "links": int(len(links)),
        "links_in_library": int(len(i)),
        "classes": int(len(sizes)), "classes_with_links": int((sizes > 1).sum()),
        "largest_class": int(sizes.max()) if len(sizes) else 0,
        "same_cut_links": int(links["same_cut"].sum()),
        "same_distribution_links": int(links["same_distribution"].sum()),
        "class_events": {k: int(v) for k, v in events_frame["event"].value_counts().sort_index().items()},
        "settings": {k: v for k, v in settings.items()},
        "calibration": (calibration.chosen | {"population": calibration.population,
                                              "layers": calibration.layers})
        if calibration else None,
        "timings_s": {"edges": round(t_edges - t0, 3), "classes": round(t_classes - t_edges, 3),
                      "link": round(time.perf_counter() - t0, 3)},
    }
    dl = np.asarray(calibration.lr.get("distances_linked", [])) if calibration else np.zeros(0)
    du = np.asarray(calibration.lr.get("distances_unlinked", [])) if calibration else np.zeros(0)
    return LinkResult(links, classes, events_frame, summary, dl, du), (ids, i, j, d), next_id


def link_table(ids: np.ndarray, a: np.ndarray, b: np.ndarray, score: np.ndarray, metric: str,
               pretreatment: str, log10_lr: np.ndarray, adulterant_d: np.ndarray,
               packaging_d: np.ndarray, same_cut: np.ndarray,
               same_distribution: np.ndarray) -> pd.DataFrame:
    """links.csv as a table that stays small at 10^8 links: exhibit_a/exhibit_b are categoricals
    whose categories are the exhibit ids (``a``, ``b`` are positions in ``ids``, 4 bytes a
    link), metric and pretreatment one-byte categoricals, the rest numpy columns not copied
    into a block. Similarities are 1 - the layers' distances (NaN: nothing to compare); float64
    ``adulterant_d`` and ``packaging_d`` are turned into them in place (the caller hands them
    over: no second copy of a column at 10^8 links)."""
    categories = pd.Index(ids, dtype=object)
    code = np.int32 if len(ids) < 2**31 else np.int64
    n = len(score)

    def ends(pos):
        return pd.Categorical.from_codes(np.asarray(pos).astype(code, copy=False),
                                         categories=categories, validate=False)

    adulterant = np.asarray(adulterant_d, dtype=float)
    np.subtract(1.0, adulterant, out=adulterant)
    packaging = np.asarray(packaging_d, dtype=float)
    np.subtract(1.0, packaging, out=packaging)
    return pd.DataFrame({
        "exhibit_a": ends(a), "exhibit_b": ends(b), "score": score,
        "metric": pd.Categorical.from_codes(np.zeros(n, np.int8), [metric]),
        "pretreatment": pd.Categorical.from_codes(np.zeros(n, np.int8), [pretreatment]),
        "log10_lr": log10_lr, "adulterant_similarity": adulterant,
        "packaging_similarity": packaging,
        "same_cut": np.asarray(same_cut, dtype=bool),
        "same_distribution": np.asarray(same_distribution, dtype=bool),
    }, copy=False)


def _carried_edges(stored: tuple, ids: np.ndarray, is_new: np.ndarray):
    """Stored links between exhibits that are still in the library and not new, as positions."""
    stored_ids, a, b, score = stored
    index = np.int32 if len(ids) < 2**31 else np.int64
    pos = pd.Index(ids).get_indexer(stored_ids).astype(index)     # -1: no longer linkable
    out_i, out_j, out_s = [], [], []
    for s in range(0, len(a), LAYER_CHUNK):          # chunks: no per-link int64 temporaries
        x, y = pos[a[s:s + LAYER_CHUNK]], pos[b[s:s + LAYER_CHUNK]]
        ok = (x >= 0) & (y >= 0)
        ok[ok] = ~is_new[x[ok]] & ~is_new[y[ok]]
        x, y = x[ok], y[ok]
        out_i.append(np.minimum(x, y))
        out_j.append(np.maximum(x, y))
        out_s.append(score[s:s + LAYER_CHUNK][ok])
    if not out_i:
        return np.zeros(0, index), np.zeros(0, index), np.zeros(0, np.float64)
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)


LOCAL_BLOCK = 16_384     # new exhibits compared per kernel call: bounds the kernels' scratch


def local_edges(Xp: np.ndarray, fresh: np.ndarray, old: np.ndarray, metric: str,
                threshold: float, threads) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (i < j, positions in Xp) among ``fresh`` rows and between ``fresh`` and ``old``,
    computed LOCAL_BLOCK fresh rows at a time (each call's scratch is proportional to its own
    edges) and kept as int32 positions, sorted by (i, j)."""
    index = np.int32 if len(Xp) < 2**31 else np.int64
    parts = []
    for s in range(0, len(fresh), LOCAL_BLOCK):
        block = fresh[s:s + LOCAL_BLOCK]
        if len(block) >= 2:
            e = sim.pairs_within(Xp[block], metric, threshold, threads=threads)
            parts.append((block[e.i].astype(index), block[e.j].astype(index), e.score))
        others = np.concatenate([fresh[s + LOCAL_BLOCK:], old])
        if len(others):
            e = sim.pairs_between(Xp[block], Xp[others], metric, threshold, threads=threads)
            x, y = block[e.i], others[e.j]
            parts.append((np.minimum(x, y).astype(index), np.maximum(x, y).astype(index), e.score))
            del e, x, y
    return sim.sort_edges(parts, len(Xp))


def _condensed(Xp: np.ndarray, members: np.ndarray, metric: str, threads) -> np.ndarray:
    a, b = np.triu_indices(len(members), k=1)
    return sim.score_pairs(Xp, members[a], members[b], metric, threads=threads)


def calibration_to_json(cal: Calibration) -> str:
    return json.dumps(cal.as_json(), sort_keys=True)


# --- runs: what `profile calibrate` and `profile link` do ------------------------------------

CALIBRATION_GROUP, LINKS_GROUP, CLASSES_GROUP, EVENTS_GROUP = (
    "calibration", "links", "classes", "class_events")


def load_calibration(library: Path) -> Calibration | None:
    from profiling.library import read_attr

    text = read_attr(library, CALIBRATION_GROUP, "json")
    return Calibration.from_json(json.loads(text)) if text else None


def store_calibration(library: Path, cal: Calibration) -> None:
    from profiling.library import replace_groups, write_lock

    def fill(group):
        group.attrs["json"] = calibration_to_json(cal)

    c = cal.chosen
    with write_lock(library):
        replace_groups(library, {CALIBRATION_GROUP: fill},
                       change=f"calibration: {c['pretreatment']} + {c['metric']}, threshold "
                              f"{c['threshold']:.6g} at false positives {c['fpr']:.4f}")


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
    from profiling.link_report import write_calibration_report

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


def _public_calibration(cal: Calibration) -> dict:
    """SPEC's calibration.json: population, combinations, chosen, layers (+ lr, folded)."""
    lr = {k: v for k, v in cal.lr.items() if k not in ("linked_sample", "unlinked_sample")}
    return {"population": cal.population, "combinations": cal.combinations, "chosen": cal.chosen,
            "layers": cal.layers, "lr": lr, "folded": cal.folded, "compounds": cal.compounds}


def _write_json(path: Path, payload) -> None:
    from profiling.files import private_open

    with private_open(path) as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=_jsonable)
        fh.write("\n")


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


@dataclass
class _Stored:
    """What a library already holds for linking: calibration, edges, classes, events."""

    calibration: Calibration | None = None
    edges: tuple | None = None           # (exhibit ids, a, b, score), see read_edges
    edge_settings: dict = field(default_factory=dict)
    classes: dict[str, str] | None = None
    next_id: int = 1
    events: pd.DataFrame | None = None

    @classmethod
    def read(cls, library: Path) -> _Stored:
        from profiling.library import edges_problem, read_attr, read_edges, read_frame

        stored = cls(calibration=load_calibration(library))
        stored.edges = read_edges(library, LINKS_GROUP)
        problem = edges_problem(stored.edges) if stored.edges is not None else None
        if problem:
            from profiling.errors import LibraryCorruptError

            raise LibraryCorruptError(
                f"library {library}: its stored {problem[:-1]}, so they cannot be carried "
                "forward; nothing was changed. Run `profile verify` on it and restore it from "
                "a backup.")
        stored.edge_settings = {k: read_attr(library, LINKS_GROUP, k)
                                for k in ("metric", "pretreatment", "threshold")}
        prev = read_frame(library, CLASSES_GROUP)
        if prev is not None:
            stored.classes = dict(zip(prev["exhibit_id"], prev["class_id"]))
            stored.next_id = int(read_attr(library, CLASSES_GROUP, "next_id") or 1)
        stored.events = read_frame(library, EVENTS_GROUP)
        return stored


def _link_core(data: LibraryData, new: np.ndarray, stored: _Stored, engine_file: Path | None,
               *, metric, pretreatment, threshold, fpr, threads, date, progress, scheduler,
               block_rows):
    """Calibrate if needed, link, and say what to store: (result, calibration, group writers,
    audit sentence)."""
    from profiling.library import write_edges, write_frame

    writers = {}
    calibration = stored.calibration
    if threshold is None and (calibration is None or fpr is not None or
                              (metric and metric != calibration.chosen["metric"]) or
                              (pretreatment and pretreatment != calibration.chosen["pretreatment"])):
        calibration = calibrate(data, PopulationRule(), fpr if fpr is not None else 0.01,
                                (pretreatment,) if pretreatment else PRETREATMENTS,
                                (metric,) if metric else PROFILE_METRICS, threads=threads)
        fresh_calibration = calibration
        writers[CALIBRATION_GROUP] = lambda g: g.attrs.__setitem__(
            "json", calibration_to_json(fresh_calibration))
    chosen = calibration.chosen if calibration else {}
    settings = {
        "metric": metric or chosen.get("metric", DEFAULT_METRIC),
        "pretreatment": pretreatment or chosen.get("pretreatment", DEFAULT_PRETREATMENT),
        "threshold": float(threshold) if threshold is not None else float(chosen["threshold"]),
        "threshold_source": "given" if threshold is not None else "calibration",
    }
    if calibration is not None:
        settings["cutting_threshold"] = calibration.layers.get("cutting", {}).get("threshold")
        settings["distribution_threshold"] = calibration.layers.get("distribution", {}).get("threshold")
    edges_in = stored.edges
    if edges_in is None or any(stored.edge_settings.get(k) != settings[k]
                               for k in ("metric", "pretreatment", "threshold")):
        edges_in, new = None, np.ones(data.n, dtype=bool)     # settings changed: link everything
    engine = None
    if scheduler is not None:
        from profiling.scale import dask_engine

        engine = dask_engine(scheduler, engine_file, data, block_rows)
    try:
        result, edges, next_id = link_profiles(
            data, settings, new=new, stored_edges=edges_in, previous=stored.classes,
            next_id=stored.next_id, calibration=calibration, threads=threads, date=date,
            progress=progress, engine=engine)
    finally:
        if engine is not None:
            engine.close()
    events = pd.concat([stored.events, result.events], ignore_index=True) \
        if stored.events is not None else result.events

    def fill_links(g):
        write_edges(g, *edges)
        for k in ("metric", "pretreatment", "threshold"):
            g.attrs[k] = settings[k]

    def fill_classes(g):
        cols = ["exhibit_id", "class_id", "cutting_group", "distribution_group"]
        write_frame(g, result.classes[cols], dict.fromkeys(cols, "text"))
        g.attrs["next_id"] = next_id

    def fill_events(g):
        write_frame(g, events.astype(str), dict.fromkeys(events.columns, "text"))

    writers.update({LINKS_GROUP: fill_links, CLASSES_GROUP: fill_classes, EVENTS_GROUP: fill_events})
    s = result.summary
    change = (f"link: {s['links']} links, {s['classes']} classes, events {s['class_events']}"
              + ("; calibration stored" if CALIBRATION_GROUP in writers else ""))
    return result, calibration, writers, change


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


def run_link(exports: list[Path], library: Path | None, out: Path, *, mapping=None,
             metric: str | None = None, pretreatment: str | None = None,
             threshold: float | None = None, fpr: float | None = None, threads=None,
             as_of=None, date: str | None = None, progress=None,
             scheduler: str | None = None, block_rows: int | None = None,
             redactor=None) -> LinkResult:
    """`profile link`: ingest the exports (into the library when given), link new exhibits with
    each other and with the library, update classes, write the outputs into ``out``.

    With a library, the import, the calibration (when made now), the links, the classes and
    their events are committed in one atomic write under the library's lock."""
    import contextlib
    import tempfile

    from profiling.gis import link_maps
    from profiling.ingest import ingest
    from profiling.library import read_library, replace_groups, write_lock
    from profiling.link_report import write_link_outputs

    t0 = time.perf_counter()
    options = dict(metric=metric, pretreatment=pretreatment, threshold=threshold, fpr=fpr,
                   threads=threads, date=date, progress=progress, scheduler=scheduler,
                   block_rows=block_rows)
    done: dict = {}
    report = None
    if library is None:
        if not exports:
            raise InputError("give export files, a --library, or both.")
        with tempfile.TemporaryDirectory(prefix="profile-link-") as tmp:
            path = Path(tmp) / "exports.h5"
            report = ingest(exports, path, mapping=mapping, quarantine=Path(tmp) / "q.csv",
                            as_of=as_of, progress=progress)
            data = read_library(path)
            result, calibration, _, _ = _link_core(data, np.ones(data.n, dtype=bool), _Stored(),
                                                   path, **options)
    else:
        library = Path(library)
        if exports:
            def then(new_lib, rep):
                side = _profiles_side_file(library, new_lib) if scheduler else None
                try:
                    new = new_lib.records["import_id"].to_numpy() == rep.import_id
                    stored = _Stored.read(library) if library.exists() else _Stored()
                    res, cal, writers, change = _link_core(new_lib, new, stored, side, **options)
                finally:
                    if side is not None:
                        with contextlib.suppress(OSError):
                            side.unlink()
                done.update(result=res, calibration=cal, data=new_lib)
                return writers, change

            report = ingest(exports, library, mapping=mapping, as_of=as_of, progress=progress,
                            then=then)
            result, calibration, data = done["result"], done["calibration"], done["data"]
        else:
            with write_lock(library):
                data = read_library(library)
                result, calibration, writers, change = _link_core(
                    data, np.ones(data.n, dtype=bool), _Stored.read(library), library, **options)
                replace_groups(library, writers, change=change)
    result.summary["ingest"] = report.as_json() if report is not None else None
    result.summary["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    out.mkdir(parents=True, exist_ok=True)
    shared = redact_result(result, redactor) if redactor is not None else result
    shared.summary["gis"] = result.summary["gis"] = link_maps(out, result, data, redactor)
    write_link_outputs(out, shared, data, calibration)
    if redactor is not None:
        redactor.write_manifest(out, sorted(p.name for p in out.iterdir()))
    return result


def run_query(library: Path, target: str, top: int = 10, *, mapping=None, threads=None,
              as_of=None, scheduler: str | None = None,
              block_rows: int | None = None) -> pd.DataFrame:
    """The ``top`` most similar library exhibits for an exhibit id of the library, or for every
    exhibit of an export file (which is not added to the library). With ``scheduler``, the
    library's blocks are searched on Dask workers (``profiling.scale``), same result."""
    from profiling.library import read_frame, read_library

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
    classes = read_frame(library, CLASSES_GROUP)
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
                         "linked": bool(cal is not None and d <= cal.chosen["threshold"]),
                         "class_id": class_of.get(ids[li], ""),
                         "seizure_id": rec["seizure_id"].iat[li], "area": rec["area"].iat[li]})
    return pd.DataFrame(rows, columns=["query", "rank", "exhibit_id", "score", "log10_lr",
                                       "linked", "class_id", "seizure_id", "area"])


def redact_result(result: LinkResult, redactor) -> LinkResult:
    """A copy of ``result`` fit to share: references pseudonymised, areas coarsened, source
    file names and paths gone from the summary."""
    import copy

    links = redactor.frame(result.links)
    classes = redactor.frame(result.classes)
    summary = copy.deepcopy(result.summary)
    if summary.get("ingest"):
        summary["ingest"].pop("files", None)
        summary["ingest"].pop("quarantine_file", None)
        redactor.removed.add("summary: source file names")
    return LinkResult(links, classes, result.events, summary, result.scores_linked,
                      result.scores_unlinked)
