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
    i, j, d = i[keep], j[keep], d[keep]
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
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
                edge_index = _edges_by_component(comp, i, j, d)
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


def _edges_by_component(comp: np.ndarray, i, j, d) -> dict[int, tuple]:
    order = np.argsort(comp[i], kind="stable")
    c = comp[i][order]
    bounds = np.flatnonzero(np.r_[True, c[1:] != c[:-1], True])
    return {int(c[a]): (i[order][a:b], j[order][a:b], d[order][a:b])
            for a, b in zip(bounds[:-1], bounds[1:])}


def sparse_average_linkage(members: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray,
                           threshold: float) -> np.ndarray:
    """Average linkage cut at ``threshold`` on a sparse graph, memory O(edges).

    The distance of two groups is the mean over all their member pairs, a pair without an edge
    counting ``2 * threshold`` (it is only known to be above the threshold), exactly as the dense
    path does when it lacks a distance. Merges go smallest average first (ties: smallest group
    ids), and stop when no pair of adjacent groups is within the threshold. Returns labels
    1..k for ``members``."""
    import heapq

    missing = 2 * threshold + 1e-12
    local = {int(m): k for k, m in enumerate(members.tolist())}
    size = {k: 1 for k in range(len(members))}
    adj: dict[int, dict[int, list[float]]] = {k: {} for k in range(len(members))}
    for a, b, w in zip(i.tolist(), j.tolist(), d.tolist()):
        a, b = local[a], local[b]
        if a == b or w != w:
            continue
        entry = adj[a].setdefault(b, [0.0, 0])
        entry[0] += w
        entry[1] += 1
        adj[b][a] = entry

    def average(a: int, b: int) -> float:
        total, count = adj[a][b]
        pairs = size[a] * size[b]
        return (total + (pairs - count) * missing) / pairs

    heap = [(average(a, b), a, b) for a in adj for b in adj[a] if a < b]
    heapq.heapify(heap)
    parent = list(range(len(members)))
    alive = set(size)
    next_id = len(members)
    while heap:
        avg, a, b = heapq.heappop(heap)
        if avg > threshold:
            break
        if a not in alive or b not in alive or b not in adj[a] or average(a, b) != avg:
            continue
        c = next_id
        next_id += 1
        size[c] = size[a] + size[b]
        merged: dict[int, list[float]] = {}
        for old in (a, b):
            for nb, (total, count) in adj[old].items():
                if nb in (a, b):
                    continue
                entry = merged.setdefault(nb, [0.0, 0])
                entry[0] += total
                entry[1] += count
                del adj[nb][old]
        adj[c] = merged
        for nb, entry in merged.items():
            adj[nb][c] = entry
        del adj[a], adj[b]
        alive -= {a, b}
        alive.add(c)
        parent.extend([c])
        parent[a] = parent[b] = c
        for nb in merged:
            heapq.heappush(heap, (average(c, nb), min(c, nb), max(c, nb)))

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    roots = [root(k) for k in range(len(members))]
    first: dict[int, int] = {}
    return np.array([first.setdefault(r, len(first) + 1) for r in roots], dtype=np.int64)


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
