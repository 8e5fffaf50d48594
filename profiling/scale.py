"""National scale: the library searched block by block on Dask distributed.

``profile link … --scheduler tcp://HOST:PORT`` (an existing Dask scheduler) or
``--scheduler local:N`` (a LocalCluster of N single-threaded worker processes, here), and the
same for ``profile query``.

What runs on the workers is the search of the new exhibits against the library: each task reads
one row block of ``/profiles/matrix``, pretreats it exactly as the in-process run does (per-row
operations plus the shared reference standard deviations) and returns the block's top-k of every
query; the client merges them by (distance, position), the in-process kernel's order, so the
result is the same. The client holds the exhibits' profiles and the classes (their sums), never
pairs: memory grows with exhibits and classes. Layout a cluster needs: every worker opens the
profile library itself (a shared filesystem path readable from every worker, e.g. NFS or a
mounted object store); the scheduler ships block descriptions and the queries. Memory per task:
BLOCK_ROWS x d x 8 bytes of profiles plus k results per query.

A worker that dies is replaced by its nanny and Dask reruns its tasks (``allowed-failures``);
the tasks are pure functions of the file and the block, so the result is unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from profiling.errors import InputError

BLOCK_ROWS = 20_000


def parse_scheduler(text: str) -> tuple[str, object]:
    m = re.fullmatch(r"local:(\d+)", text.strip())
    if m:
        n = int(m.group(1))
        if n < 1:
            raise InputError("--scheduler local:N needs N >= 1 workers.")
        return "local", n
    if re.fullmatch(r"(tcp|tls|ucx|inproc)://.+", text.strip()):
        return "address", text.strip()
    raise InputError(f"--scheduler {text!r} is neither local:N nor a scheduler address "
                     "such as tcp://host:8786.")


def _read_block(path: str, rows: np.ndarray, cols: np.ndarray, pretreatment: str,
                reference_std) -> np.ndarray:
    import h5py

    from profiling import similarity as sim

    with h5py.File(path, "r") as f:
        m = f["profiles"]["matrix"]
        lo, hi = int(rows.min()), int(rows.max()) + 1
        X = m[lo:hi][rows - lo][:, cols]
    ref = None if reference_std is None else np.asarray(reference_std, dtype=float)
    return np.ascontiguousarray(sim.pretreat(np.ascontiguousarray(X), pretreatment,
                                             reference_std=ref))


def block_topk_task(path, rows, pos, cols, pretreatment, reference_std, metric, Q, k):
    from profiling import similarity as sim

    L = _read_block(path, rows, cols, pretreatment, reference_std)
    idx, scores = sim.topk(Q, L, metric, min(k, len(L)), threads=1)
    return np.where(idx >= 0, pos[np.maximum(idx, 0)], -1), scores


def merge_topk(parts, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-block (positions, scores) [nq, kb] into the k best per query, by (distance,
    position); padding (-1, NaN) where fewer than k exist."""
    idx = np.concatenate([p[0] for p in parts], axis=1)
    sc = np.concatenate([p[1] for p in parts], axis=1).astype(float)
    key = np.where(idx < 0, np.inf, np.nan_to_num(sc, nan=np.inf))
    big = np.where(idx < 0, np.iinfo(np.int64).max, idx)
    order = np.lexsort((big, key), axis=1)[:, :k]
    out_i = np.take_along_axis(idx, order, axis=1)
    out_s = np.take_along_axis(sc, order, axis=1)
    pad = np.take_along_axis(key, order, axis=1) == np.inf
    out_i[pad], out_s[pad] = -1, np.nan
    if out_i.shape[1] < k:
        extra = k - out_i.shape[1]
        out_i = np.hstack([out_i, np.full((len(out_i), extra), -1)])
        out_s = np.hstack([out_s, np.full((len(out_s), extra), np.nan)])
    return out_i, out_s


@dataclass
class DaskEngine:
    """Searches the library's row blocks on Dask workers."""

    client: object
    cluster: object | None
    path: str
    columns: np.ndarray          # compound columns of the library matrix used by Profiles
    block_rows: int = BLOCK_ROWS

    def _blocks(self, positions: np.ndarray, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for s in range(0, len(positions), self.block_rows):
            pos = positions[s:s + self.block_rows]
            out.append((rows[pos], pos))
        return out

    def topk(self, profiles, pretreatment, reference_std, metric, Q, k, advance=lambda n: None):
        """The ``k`` nearest library exhibits (positions in ``profiles``) for each pretreated
        query row of ``Q``: every library block's top-k on a worker, merged here by (distance,
        position), the order the in-process kernel uses. Returns (positions, scores) like
        :func:`profiling.similarity.topk`."""
        from distributed import as_completed

        ref = None if reference_std is None else list(reference_std)
        q = self.client.scatter(np.ascontiguousarray(Q), broadcast=True)
        positions = np.arange(len(profiles.rows))
        futures = [self.client.submit(block_topk_task, self.path, rows, pos, self.columns,
                                      pretreatment, ref, metric, q, k, pure=False)
                   for rows, pos in self._blocks(positions, profiles.rows)]
        parts = []
        for future in as_completed(futures):
            parts.append(future.result())
            advance(1)
        return merge_topk(parts, k)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def connect(scheduler: str):
    """(client, cluster or None) for ``local:N`` or a scheduler address."""
    from distributed import Client, LocalCluster

    kind, value = parse_scheduler(scheduler)
    if kind == "local":
        cluster = LocalCluster(n_workers=value, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=50)
        return Client(cluster), cluster
    try:
        return Client(value, timeout=30), None
    except OSError as err:
        raise InputError(f"cannot reach the Dask scheduler at {value}: {err}.") from None


def dask_engine(scheduler: str, library: Path, data, block_rows: int | None = None) -> DaskEngine:
    from profiling.link import linkable

    p = linkable(data)
    columns = np.array([data.compounds.index(c) for c in p.compounds], dtype=np.int64)
    if block_rows is not None and block_rows < 2:
        raise InputError("--block-rows must be at least 2.")
    client, cluster = connect(scheduler)
    return DaskEngine(client, cluster, str(Path(library).resolve()), columns,
                      block_rows or BLOCK_ROWS)
