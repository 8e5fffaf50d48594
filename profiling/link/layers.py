"""What is compared: the linkable exhibits and their profiles, and the deeper layers of a link.

- **chemical** — the impurity profile. Compounds that drift within a batch (hydrolysis
  products, ``drifting`` in ``reference_data/compounds.toml``) are left out, and an exhibit needs
  at least ``MIN_COMPOUNDS`` of the others detected to be linked;
- **cutting** — distance between cuts: Jaccard distance of the adulterant sets, mean absolute
  difference of the adulterant amounts present in either, and the relative purity difference;
- **distribution** — Jaccard distance of the packaging tokens (material, colour, closure).

Adulterants and packaging never enter the chemical score.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from profiling import similarity as sim
from profiling.library import LibraryData

MIN_COMPOUNDS = 3     # detected compounds (not drifting) a profile needs to be linked
NEUTRAL = 0.5         # in the folded score, a layer that cannot be compared counts half


@cache
def drifting_compounds() -> frozenset[str]:
    from profiling.ingest.vocabulary import load_toml

    data = load_toml("compounds.toml")
    return frozenset(c for section in data.values() if isinstance(section, dict)
                     for c in section.get("drifting", []))


@dataclass
class Profiles:
    """The exhibits that can be linked: rows of the library with a measured profile."""

    rows: np.ndarray           # positions in the library's records
    X: np.ndarray              # raw profile matrix [len(rows), d], NaN = not measured
    compounds: list[str]


def linkable(data: LibraryData, keep_drifting: bool = False) -> Profiles:
    """Rows with at least MIN_COMPOUNDS detected compounds, over the compounds measured in any
    of them (drifting compounds left out unless ``keep_drifting``)."""
    X = data.profiles.reshape(data.n, len(data.compounds))
    drift = set() if keep_drifting else drifting_compounds()
    use = np.array([c not in drift for c in data.compounds], dtype=bool)
    X = X[:, use]
    names = [c for c, u in zip(data.compounds, use) if u]
    measured = np.isfinite(X) & (np.nan_to_num(X) > 0)
    rows = np.flatnonzero(measured.sum(axis=1) >= MIN_COMPOUNDS)
    cols = np.flatnonzero(np.isfinite(X[rows]).any(axis=0)) if len(rows) else np.zeros(0, int)
    return Profiles(rows, np.ascontiguousarray(X[np.ix_(rows, cols)]), [names[c] for c in cols])


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
                   sim.pack_sets(pack)[0], np.array([bool(p) for p in pack], dtype=bool))

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


# --- verdicts and groups ---------------------------------------------------------------------


def layer_verdicts(layers: Layers, i, j, t_cut, t_pack):
    """(same cut, same distribution, adulterant distance, packaging distance) of links i-j; same
    distribution implies same cut."""
    adul = layers.adulterant_distance(i, j)
    cut_d = layers.cut_distance(i, j)
    pack_d = layers.packaging_distance(i, j)
    same_cut = (cut_d <= t_cut) if t_cut is not None else np.zeros(len(i), bool)
    same_dist = same_cut & ((pack_d <= t_pack) if t_pack is not None else np.zeros(len(i), bool))
    return same_cut, same_dist, adul, pack_d


def groups_for_new(label, cut_no, dist_no, is_new, li, lj, ld, same_cut, same_dist):
    """A new exhibit joins the cutting (distribution) group of its strongest same-cut
    (same-packaging) link inside its class, or starts one."""
    cut_no, dist_no = cut_no.copy(), dist_no.copy()
    fresh = np.flatnonzero(is_new)
    if not len(fresh):
        return cut_no, dist_no
    cut_no[fresh] = 0
    dist_no[fresh] = 0
    inside = label[li] == label[lj]
    order = np.argsort(ld, kind="stable")
    partners: dict[int, list[tuple[int, bool, bool]]] = {}
    for e in order.tolist():
        if not inside[e] or not same_cut[e]:
            continue
        a, b = int(li[e]), int(lj[e])
        partners.setdefault(a, []).append((b, True, bool(same_dist[e])))
        partners.setdefault(b, []).append((a, True, bool(same_dist[e])))
    # the highest group numbers in use, in the classes new exhibits are in (one groupby)
    members = np.flatnonzero(np.isin(label, np.unique(label[fresh])))
    groups = pd.DataFrame({"c": label[members], "g": cut_no[members], "h": dist_no[members]})
    top_cut: dict[int, int] = groups.groupby("c")["g"].max().to_dict()
    top_dist: dict[tuple[int, int], int] = groups.groupby(["c", "g"])["h"].max().to_dict()
    for _ in range(2):                      # a second pass for partners that were new too
        for k in fresh.tolist():
            if cut_no[k]:
                continue
            for other, _, same_d in partners.get(k, []):
                if cut_no[other]:
                    cut_no[k] = cut_no[other]
                    if same_d and dist_no[other]:
                        dist_no[k] = dist_no[other]
                    break
    for k in fresh.tolist():
        c = int(label[k])
        if not cut_no[k]:
            top_cut[c] = top_cut.get(c, 0) + 1
            cut_no[k] = top_cut[c]
        if not dist_no[k]:
            key = (c, int(cut_no[k]))
            top_dist[key] = top_dist.get(key, 0) + 1
            dist_no[k] = top_dist[key]
    return cut_no, dist_no


def subgroups(labels: np.ndarray, i: np.ndarray, j: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Inside each class, connected components of the links where ``same`` holds. Returns
    numbers per class from 1, in order of each group's first member."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(labels)
    keep = np.asarray(same, bool) & (labels[i] == labels[j])
    graph = coo_matrix((np.ones(int(keep.sum())), (i[keep], j[keep])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # number components within each class by first member
    first = np.full(comp.max() + 1 if n else 0, n, np.int64)
    np.minimum.at(first, comp, np.arange(n))
    order = np.lexsort((first[comp], labels))
    out = np.zeros(n, np.int64)
    lab_o, comp_o = labels[order], comp[order]
    new_class = np.r_[True, lab_o[1:] != lab_o[:-1]]
    new_comp = new_class | np.r_[True, comp_o[1:] != comp_o[:-1]]
    counter = np.cumsum(new_comp)
    base = np.maximum.accumulate(np.where(new_class, counter - 1, 0))
    out[order] = counter - base
    return out
