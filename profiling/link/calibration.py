"""Calibration of the chemical comparison and of the deeper layers (what `profile calibrate`
finds and `profile link` reuses).

Chemical: linked population = pairs of one seizure, unlinked = pairs of different seizures
(:mod:`profiling.calibrate`); every pretreatment x metric is scored by AUC, the best is kept with
its per-pair threshold at a false-positive rate and its LR model. A search against a library of
N exhibits makes N comparisons, so the figure that matters is FPR x N, the adventitious links a
searched exhibit expects: the calibration says it for the library it was made on, and the link
stage sets its own threshold from it (:mod:`profiling.link.search`).

The deeper layers are calibrated on the same-seizure pairs against pairs of *different chemical
origin* (different seizures, chemical distance above the threshold): their false-positive rate
is the rate at which unrelated material shares a cut or a packaging by coincidence.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
from profiling.link.layers import NEUTRAL, Layers, Profiles, linkable

PROFILE_METRICS = ("pearson", "cosine", "squared_cosine", "euclidean", "manhattan", "canberra")
PRETREATMENTS = ("none", "sum", "sum_sqrt", "sum_4root", "sum_log", "sum_std")
#: the literature's choice when nothing is calibrated (Lociciro et al. 2008: N+S then cosine)
DEFAULT_PRETREATMENT, DEFAULT_METRIC = "sum_std", "cosine"
CALIBRATION_GROUP = "calibration"


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


def calibrate(data: LibraryData, rule: PopulationRule | None = None, fpr: float = 0.01,
              pretreatments=PRETREATMENTS, metrics=PROFILE_METRICS, lr_kind: str = "logistic",
              threads: int | None = None, profiles: Profiles | None = None) -> Calibration:
    """Every pretreatment x metric on the population, the best by AUC, its threshold at ``fpr``,
    its LR model, and the calibration of the cutting and distribution layers (``rule``: R1
    with no attribute rules unless given)."""
    rule = rule if rule is not None else PopulationRule()
    p = profiles if profiles is not None else linkable(data)
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
              "cllr_min": cllr_min(dl, du),
              # a search against this library makes n - 1 comparisons (module search)
              "library_exhibits": len(p.rows),
              "adventitious_per_search": float(thr.fpr * max(len(p.rows) - 1, 0))}
    cal = Calibration(
        population={**rule.describe(), "n_linked": pop.n_linked, "n_unlinked": pop.n_unlinked,
                    "n_unlinked_used": pop.n_unlinked_used, "sampled": pop.sampled,
                    "n_exhibits": len(p.rows)},
        combinations=combos, chosen=chosen, layers={}, lr=model.as_json(),
        reference_std=_reference_std(p, pre), compounds=p.compounds,
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat())
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
            out[name] = {"auc": None, "threshold": None, "n_linked": len(lk),
                         "n_unlinked": len(uk)}
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
                     "fnr": thr.fnr, "n_linked": len(lk), "n_unlinked": len(uk),
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


def calibration_to_json(cal: Calibration) -> str:
    return json.dumps(cal.as_json(), sort_keys=True)


# --- runs: what `profile calibrate` and `profile link` do ------------------------------------



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
