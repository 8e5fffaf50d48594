"""Dask distributed: the same links and classes as in-process; a killed worker changes nothing."""

import os
import signal

import numpy as np
import pytest

from profiling.ingest import ingest
from profiling.library import read_library
from profiling.link import _pretreated, _reference_std, linkable
from profiling.scale import DaskEngine, connect, parse_scheduler

from .conftest import AS_OF, run_cli
from .test_link import make_export


def test_local_cluster_gives_the_same_files(tmp_path):
    """A day's export against a library, searched on Dask workers: the same files."""
    for name in ("a", "b"):
        ingest([make_export(tmp_path / "e.csv", batches=6)], tmp_path / f"{name}.h5", as_of=AS_OF)
        r = run_cli("link", "--library", tmp_path / f"{name}.h5", "--out", tmp_path / f"{name}0",
                    "--quiet")
        assert r.returncode == 0, r.stderr
    day = make_export(tmp_path / "day.csv", seed=5, batches=3, start=9000)
    a = run_cli("link", day, "--library", tmp_path / "a.h5", "--out", tmp_path / "a",
                "--as-of", "2026-01-01", "--quiet")
    b = run_cli("link", day, "--library", tmp_path / "b.h5", "--out", tmp_path / "b",
                "--as-of", "2026-01-01", "--quiet",
                "--scheduler", "local:2", "--block-rows", "37")
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    for name in ("links.csv", "classes.csv", "class_table.csv", "class_events.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert len((tmp_path / "a" / "links.csv").read_text().splitlines()) > 100


def test_a_killed_worker_is_retried_and_the_result_is_unchanged(tmp_path):
    from profiling import similarity as sim

    lib = tmp_path / "lib.h5"
    ingest([make_export(tmp_path / "e.csv", batches=10)], lib, as_of=AS_OF)
    data = read_library(lib)
    p = linkable(data)
    ref = _reference_std(p, "sum_std")
    Xp = _pretreated(p, "sum_std", ref)
    Q = Xp[::7]
    expected = sim.topk(Q, Xp, "cosine", 9, threads=2)
    client, cluster = connect("local:2")
    try:
        pids = list(client.run(os.getpid).values())
        columns = np.array([data.compounds.index(c) for c in p.compounds])
        engine = DaskEngine(client, None, str(lib), columns, block_rows=15)
        done = []

        def advance(n):
            done.append(n)
            if len(done) == 3:                 # mid-run: kill one worker process outright
                os.kill(pids[0], signal.SIGKILL)

        got = engine.topk(p, "sum_std", ref, "cosine", Q, 9, advance)
        assert len(done) > 3
        assert np.array_equal(got[0], expected[0])
        np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=1e-12)
        assert pids[0] not in client.run(os.getpid).values()   # the nanny started a new one
    finally:
        client.close()
        cluster.close()


def test_scheduler_strings():
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "localhost", "http://x"):
        with pytest.raises(ValueError):
            parse_scheduler(bad)


def test_query_on_a_local_cluster_equals_in_process(tmp_path):
    """Top-k of an export against the library, searched block by block on Dask workers, gives
    the same rows (exhibits, ranks, scores) as the in-process kernel."""
    lib = tmp_path / "lib.h5"
    ingest([make_export(tmp_path / "e.csv", batches=8)], lib, as_of=AS_OF)
    queries = make_export(tmp_path / "q.csv", seed=99, batches=3, start=5000)
    a = run_cli("query", queries, "--library", lib, "--top", "7", "--json")
    b = run_cli("query", queries, "--library", lib, "--top", "7", "--json",
                "--scheduler", "local:2", "--block-rows", "23")
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    import json

    rows_a, rows_b = json.loads(a.stdout), json.loads(b.stdout)
    assert len(rows_a) >= 7 * 20
    assert [(r["query"], r["rank"], r["exhibit_id"]) for r in rows_a] == \
        [(r["query"], r["rank"], r["exhibit_id"]) for r in rows_b]
    assert np.allclose([r["score"] for r in rows_a], [r["score"] for r in rows_b], rtol=0, atol=1e-12)
    assert len({r["query"] for r in rows_a}) >= 20


def test_merge_topk_orders_by_distance_then_position():
    from profiling.scale import merge_topk

    a = (np.array([[4, 9, -1]]), np.array([[0.1, 0.3, np.nan]]))
    b = (np.array([[2, 7, 8]]), np.array([[0.1, 0.2, 0.5]]))
    idx, sc = merge_topk([a, b], 4)
    assert idx.tolist() == [[2, 4, 7, 9]]
    assert np.allclose(sc, [[0.1, 0.1, 0.2, 0.3]])
    idx, sc = merge_topk([a], 4)
    assert idx.tolist() == [[4, 9, -1, -1]] and np.isnan(sc[0, 2:]).all()
