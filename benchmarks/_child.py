"""Run one benchmark phase in a fresh process, so that its peak resident memory is its own."""

from __future__ import annotations


def in_child(target, *args) -> dict:
    """``target(*args, queue)`` in a spawned process; returns what it put on the queue."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out
