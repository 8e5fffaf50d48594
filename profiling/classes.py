"""Chemical classes: groups of linked exhibits that keep their identity as the library grows.

Grouping: the link graph (edges with distance <= threshold) is split into connected components;
inside each component, average-linkage clustering is cut at the threshold, so a class never
chains through a single weak link (every merge needs the *average* distance between the two
groups to be within the threshold). Distances inside a component come from ``distances`` (exact,
for components up to ``EXACT_COMPONENT`` exhibits); in larger components a pair without an edge
counts as twice the threshold (it is known only to be above it).

Identity (:func:`assign_ids`): a new grouping is matched against the previous assignment by
shared members. A group whose members all come from one previous class, and that holds the
largest part of it, keeps that class's id. A group gathering several previous classes is a
merge: it keeps the id of the class contributing the most members (ties: the lowest id) and the
event is recorded. A previous class whose members end up in several groups is a split: its
largest part keeps the id, the other parts get new ids, and the event is recorded. Groups of
exhibits never seen before get new ids. Singletons are classes of their own.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

EXACT_COMPONENT = 3000
ID_FORMAT = "C{:06d}"


def group_links(n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray, threshold: float,
                distances: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Labels 0..k-1 for n exhibits, numbered by each group's smallest member (deterministic).

    ``i, j, d``: edges (distance <= threshold). ``distances(members)`` returns the condensed
    distance vector among ``members`` (as scipy's pdist), used for exact average linkage."""
    keep = d <= threshold
    if not keep.all():
        i, j, d = i[keep], j[keep], d[keep]
    del keep
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    del graph
    labels = np.full(n, -1, dtype=np.int64)
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.r_[True, comp[order][1:] != comp[order][:-1], True])
    edge_index = None
    next_label = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        members = np.sort(order[a:b])
        if len(members) <= 2:
            labels[members] = next_label
            next_label += 1
            continue
        if distances is not None and len(members) <= EXACT_COMPONENT:
            condensed = np.asarray(distances(members), dtype=float)
            condensed = np.where(np.isnan(condensed), 2 * threshold + 1e-12, condensed)
            sub = fcluster(linkage(condensed, method="average"), t=threshold, criterion="distance")
        else:
            if edge_index is None:
                edge_index = _ComponentEdges(comp, i, j, d)
            sub = sparse_average_linkage(members, *edge_index[int(comp[members[0]])], threshold)
        for s in np.unique(sub):
            labels[members[sub == s]] = next_label
            next_label += 1
    # renumber by smallest member so labels do not depend on component order
    first = {}
    for idx, lab in enumerate(labels.tolist()):
        first.setdefault(lab, idx)
    rank = {lab: r for r, lab in enumerate(sorted(first, key=first.get))}
    return np.array([rank[lab] for lab in labels.tolist()], dtype=np.int64)


class _ComponentEdges:
    """The edges of each connected component, gathered when asked for: an order over the edges
    (int32 when they are fewer than 2^31) instead of a sorted copy of i, j, d."""

    def __init__(self, comp: np.ndarray, i, j, d):
        c = comp[i]
        order = np.argsort(c, kind="stable")
        self.order = order.astype(np.int32) if len(order) < 2**31 else order
        del order
        c = c[self.order]
        bounds = np.flatnonzero(np.r_[True, c[1:] != c[:-1], True])
        self.span = {int(c[a]): (a, b) for a, b in zip(bounds[:-1], bounds[1:])}
        self.i, self.j, self.d = i, j, d

    def __getitem__(self, component: int) -> tuple:
        a, b = self.span[component]
        at = self.order[a:b]
        return self.i[at], self.j[at], self.d[at]


def sparse_average_linkage(members: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray,
                           threshold: float) -> np.ndarray:
    """Average linkage cut at ``threshold`` on a sparse graph, memory O(edges).

    The distance of two groups is the mean over all their member pairs, a pair without an edge
    counting ``2 * threshold`` (it is only known to be above the threshold), exactly as the dense
    path does when it lacks a distance. Merges stop when no two groups are within the threshold.
    Computed by the compiled nearest-neighbour chain (``ext/linkage.pyx``), which finds the same
    merges as "closest pair first" because average linkage is reducible. Edges with a NaN
    distance are ignored. Returns labels 1..k for ``members`` (``members`` sorted; ``i, j`` are
    members)."""
    from profiling._native.linkage import average_linkage_cut

    members = np.asarray(members)
    d = np.asarray(d, dtype=np.float64)
    a = np.searchsorted(members, i).astype(np.int32)
    b = np.searchsorted(members, j).astype(np.int32)
    labels = average_linkage_cut(len(members), a, b, np.ascontiguousarray(d), float(threshold),
                                 2 * threshold + 1e-12)
    _release_heap()
    return labels


@cache
def _libc():
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def _release_heap() -> None:
    """Give the link lists' freed heap back to the system (glibc keeps it otherwise, and the
    layers and outputs that follow would count it twice)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@dataclass
class ClassEvent:
    date: str
    event: str            # new | merge | split
    class_id: str
    related: tuple[str, ...]   # merged-in ids, or the id split from

    def as_row(self) -> dict:
        return {"date": self.date, "event": self.event, "class_id": self.class_id,
                "related": ";".join(self.related)}


def assign_ids(exhibit_ids: list[str], labels: np.ndarray, previous: dict[str, str],
               next_id: int, date: str) -> tuple[list[str], list[ClassEvent], int]:
    """Stable class ids for ``labels`` given the ``previous`` exhibit -> class id assignment.

    Returns (class id per exhibit, events, next free id number)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for idx, lab in enumerate(labels.tolist()):
        groups[lab].append(idx)
    # how each group draws on previous classes
    draws: dict[int, Counter] = {lab: Counter(previous[exhibit_ids[k]] for k in members
                                              if exhibit_ids[k] in previous)
                                 for lab, members in groups.items()}
    # for each previous class, the group holding its largest part (ties: lowest label)
    holder: dict[str, int] = {}
    for lab in sorted(groups):
        for cid, count in draws[lab].items():
            best = holder.get(cid)
            if best is None or count > draws[best][cid]:
                holder[cid] = lab
    events: list[ClassEvent] = []
    ids: dict[int, str] = {}
    for lab in sorted(groups):
        owned = [cid for cid in draws[lab] if holder[cid] == lab]
        if owned:
            keep = sorted(owned, key=lambda c: (-draws[lab][c], c))[0]
            ids[lab] = keep
            if len(owned) > 1:
                events.append(ClassEvent(date, "merge", keep, tuple(sorted(set(owned) - {keep}))))
        else:
            ids[lab] = ID_FORMAT.format(next_id)
            next_id += 1
            split_from = sorted(draws[lab])
            if split_from:
                events.append(ClassEvent(date, "split", ids[lab], tuple(split_from)))
            else:
                events.append(ClassEvent(date, "new", ids[lab], ()))
    return [ids[lab] for lab in labels.tolist()], events, next_id


def subgroups(labels: np.ndarray, i: np.ndarray, j: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Inside each class, connected components of the links where ``same`` holds (shared cut, or
    shared packaging). Returns labels numbered per class from 1 by smallest member."""
    n = len(labels)
    keep = same & (labels[i] == labels[j])
    graph = coo_matrix((np.ones(int(keep.sum())), (i[keep], j[keep])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    out = np.zeros(n, dtype=np.int64)
    counters: dict[int, int] = defaultdict(int)
    seen: dict[int, int] = {}
    for idx in range(n):
        c = int(comp[idx])
        if c not in seen:
            counters[int(labels[idx])] += 1
            seen[c] = counters[int(labels[idx])]
        out[idx] = seen[c]
    return out
