# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Average linkage cut at a threshold on a sparse link graph, by nearest-neighbour chain.

The distance of two groups A and B is the mean over all |A|·|B| member pairs, a pair without an
edge counting ``missing`` (it is only known to be above the linkage threshold). This is the
average linkage of a complete dissimilarity, which is *reducible*, so the nearest-neighbour chain
algorithm finds exactly the merges that the "closest pair first" order finds (Murtagh 1983; the
dendrogram is unique when distances are distinct) and a group with no neighbour within the
threshold can never merge again: it is final, and its entries are dropped.

Memory is O(edges): every group keeps one list of (neighbour, edge count, distance sum) entries.
A merge concatenates the two lists; entries still naming a merged-away group are resolved through
a union-find when the list is next scanned, and the scan rewrites the list with one entry per
live neighbour. Time is the total length of the lists scanned, O(edges) per chain step in the
worst case and near O(edges · log) on link graphs made of dense classes plus sparse noise.
"""

from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

import numpy as np

ctypedef struct Entry:
    int nb
    int count
    double total


cdef inline int _find(int* parent, int x) noexcept nogil:
    cdef int root = x, nxt
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


def average_linkage_cut(int m, const int[:] a, const int[:] b, const double[:] d,
                        double threshold, double missing):
    """Labels 1..k (numbered by first member) of the groups of ``m`` items after average-linkage
    merges at distance <= ``threshold``; ``a, b, d``: edges (local indices 0..m-1, finite d)."""
    cdef Py_ssize_t n_edges = a.shape[0], e
    if b.shape[0] != n_edges or d.shape[0] != n_edges:
        raise ValueError("a, b and d must have the same length")
    for e in range(n_edges):
        if a[e] < 0 or a[e] >= m or b[e] < 0 or b[e] >= m:
            raise ValueError("edge index out of range")
    labels = np.zeros(m, dtype=np.int64)
    if m == 0:
        return labels
    cdef long long[::1] out = labels
    cdef Entry** lists = <Entry**> malloc(m * sizeof(Entry*))
    cdef int* length = <int*> malloc(m * sizeof(int))
    cdef int* parent = <int*> malloc(m * sizeof(int))
    cdef double* size = <double*> malloc(m * sizeof(double))
    cdef char* final = <char*> malloc(m * sizeof(char))
    cdef char* on_chain = <char*> malloc(m * sizeof(char))
    cdef long long* stamp = <long long*> malloc(m * sizeof(long long))
    cdef double* acc_total = <double*> malloc(m * sizeof(double))
    cdef int* acc_count = <int*> malloc(m * sizeof(int))
    cdef int* touched = <int*> malloc(m * sizeof(int))
    cdef int* chain = <int*> malloc(m * sizeof(int))
    cdef int* pending = <int*> malloc(m * sizeof(int))
    if (lists == NULL or length == NULL or parent == NULL or size == NULL or final == NULL or
            on_chain == NULL or stamp == NULL or acc_total == NULL or acc_count == NULL or
            touched == NULL or chain == NULL or pending == NULL):
        raise MemoryError()
    cdef int k, x, y, r, prev, best, top = 0, n_pending = 0, nt, q, keep, drop, start = 0
    cdef long long scan = 0
    cdef double best_d, d_prev, pairs, dist
    cdef bint failed = False
    cdef Entry* merged
    try:
        with nogil:
            for k in range(m):
                length[k] = 0
                parent[k] = k
                size[k] = 1.0
                final[k] = 0
                on_chain[k] = 0
                stamp[k] = -1
                lists[k] = NULL
            for e in range(n_edges):
                if a[e] != b[e] and d[e] == d[e]:
                    length[a[e]] += 1
                    length[b[e]] += 1
            for k in range(m):
                if length[k]:
                    lists[k] = <Entry*> malloc(length[k] * sizeof(Entry))
                    if lists[k] == NULL:
                        failed = True
                length[k] = 0
            if not failed:
                for e in range(n_edges):
                    if a[e] != b[e] and d[e] == d[e]:
                        x, y = a[e], b[e]
                        lists[x][length[x]].nb = y
                        lists[x][length[x]].count = 1
                        lists[x][length[x]].total = d[e]
                        length[x] += 1
                        lists[y][length[y]].nb = x
                        lists[y][length[y]].count = 1
                        lists[y][length[y]].total = d[e]
                        length[y] += 1
                while True:
                    if failed:
                        break
                    if top == 0:
                        # start a chain: a group made by a merge first, else the next item
                        x = -1
                        while n_pending:
                            n_pending -= 1
                            r = pending[n_pending]
                            if parent[r] == r and not final[r]:
                                x = r
                                break
                        if x < 0:
                            while start < m and (parent[start] != start or final[start]):
                                start += 1
                            if start == m:
                                break
                            x = start
                        chain[0] = x
                        on_chain[x] = 1
                        top = 1
                    x = chain[top - 1]
                    prev = chain[top - 2] if top >= 2 else -1
                    # scan x: resolve, aggregate and rewrite its list; find its nearest neighbour
                    scan += 1
                    nt = 0
                    for q in range(length[x]):
                        r = _find(parent, lists[x][q].nb)
                        if r == x or final[r]:
                            continue
                        if stamp[r] != scan:
                            stamp[r] = scan
                            acc_total[r] = 0
                            acc_count[r] = 0
                            touched[nt] = r
                            nt += 1
                        acc_total[r] += lists[x][q].total
                        acc_count[r] += lists[x][q].count
                    best = -1
                    best_d = 0
                    d_prev = 0
                    for q in range(nt):
                        r = touched[q]
                        lists[x][q].nb = r
                        lists[x][q].count = acc_count[r]
                        lists[x][q].total = acc_total[r]
                        pairs = size[x] * size[r]
                        dist = (acc_total[r] + (pairs - acc_count[r]) * missing) / pairs
                        if r == prev:
                            d_prev = dist
                        if best < 0 or dist < best_d or (dist == best_d and r < best):
                            best, best_d = r, dist
                    length[x] = nt
                    if prev < 0 and (best < 0 or best_d > threshold):
                        # nothing within the threshold: x is a final group
                        final[x] = 1
                        on_chain[x] = 0
                        free(lists[x])
                        lists[x] = NULL
                        length[x] = 0
                        top = 0
                        continue
                    if prev >= 0 and (best < 0 or d_prev <= best_d or best_d > threshold or on_chain[best]):
                        # x and prev are each other's nearest: merge them into the lower id
                        y = prev
                        keep = x if x < y else y
                        drop = y if x < y else x
                        merged = <Entry*> realloc(lists[keep],
                                                  (length[keep] + length[drop]) * sizeof(Entry) + 1)
                        if merged == NULL:
                            failed = True
                            break
                        if length[drop]:
                            memcpy(merged + length[keep], lists[drop], length[drop] * sizeof(Entry))
                        lists[keep] = merged
                        length[keep] += length[drop]
                        free(lists[drop])
                        lists[drop] = NULL
                        length[drop] = 0
                        parent[drop] = keep
                        size[keep] += size[drop]
                        on_chain[x] = 0
                        on_chain[y] = 0
                        top -= 2
                        pending[n_pending] = keep
                        n_pending += 1
                        continue
                    chain[top] = best
                    on_chain[best] = 1
                    top += 1
            if not failed:
                for k in range(m):
                    out[k] = _find(parent, k)
    finally:
        for k in range(m):
            if lists[k] != NULL:
                free(lists[k])
        free(lists); free(length); free(parent); free(size); free(final); free(on_chain)
        free(stamp); free(acc_total); free(acc_count); free(touched); free(chain); free(pending)
    if failed:
        raise MemoryError("average linkage: out of memory for the link lists")
    # number the groups 1..k by their first member
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(1, len(first) + 1)
    return rank[inverse]
