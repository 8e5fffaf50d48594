"""Run one benchmark phase in a fresh process, so that its peak resident memory is its own."""

from __future__ import annotations

import sys
import threading
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        import os

        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _trace(stop: threading.Event, every: float = 1.0, step_mb: float = 512) -> None:
    """Print the resident memory to stderr whenever it moved by ``step_mb`` (where a phase
    spends its memory)."""
    t0, last = time.perf_counter(), 0.0
    while not stop.wait(every):
        rss = _rss_mb()
        if abs(rss - last) >= step_mb:
            print(f"   [rss {rss:,.0f} MB at {time.perf_counter() - t0:.0f} s]", file=sys.stderr,
                  flush=True)
            last = rss


def _run(target, args, queue) -> None:
    stop = threading.Event()
    threading.Thread(target=_trace, args=(stop,), daemon=True).start()
    try:
        target(*args, queue)
    finally:
        stop.set()


def in_child(target, *args) -> dict:
    """``target(*args, queue)`` in a spawned process; returns what it put on the queue. A child
    that dies (out of memory) raises instead of leaving the parent waiting."""
    import multiprocessing as mp
    import queue as queues

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(target, args, queue))
    proc.start()
    while True:
        try:
            out = queue.get(timeout=5)
            break
        except queues.Empty:
            if not proc.is_alive():
                raise SystemExit(f"{getattr(target, '__name__', target)}: the child process "
                                 f"died (exit code {proc.exitcode}; -9 is the out-of-memory "
                                 "killer)") from None
    proc.join()
    return out
