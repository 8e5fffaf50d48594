"""Library append and read at 10^5 and 10^6 exhibits (issue 14).

    python benchmarks/library_scale.py [--exhibits 100000,1000000] [--repeat 3]
                                       [--out /work/bench] [--tmp DIR] [--rebuild]

For each size N, the simulator (``profiling.simulate``, seed 1, canonical export) makes N + 300
exhibits and writes its export; the export's last 300 data rows are held back as the day's
export (``<out>/day<N>.csv``), the others are ingested through ``profiling.ingest.ingest`` into
``<out>/lib<N>.h5`` (every record column filled as a real import fills it). The simulation's
truth per exhibit (batch, lot, dealer, seizure) is saved as ``<out>/truth<N>.csv``. These files
are kept and reused by later runs (``--rebuild`` makes them again).

Then, each in a fresh child process (``_child.in_child``) so that its peak resident memory is its
own (VmHWM), ``--repeat`` times:

- ``read_library(LIB)``;
- ``ingest([DAY], COPY, then=...)`` into a copy of the library (the copy is made before the
  child starts and is not timed), with a ``then`` callback that does nothing, as
  ``profile link EXPORT --library LIB`` passes one: lock, read, duplicate and conflict checks,
  merge, atomic commit (temporary file, fsync, rename). The resident memory when ``then`` is
  called (what linking would start from) is shown in the notes.

Wall time is the phase alone (imports excluded; the child's resident memory after its imports is
shown as the baseline); peak RSS is the child's VmHWM. Prints a Markdown table (median
and best of the repeats).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _child import in_child

AS_OF = dt.date(2026, 4, 1)      # after the simulator's period: no future-date flags
DAY_ROWS = 300


def label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def make_files(out: Path, n: int, scratch: Path, seed: int = 1) -> dict:
    """lib<N>.h5, day<N>.csv and truth<N>.csv in ``out`` (reused when present)."""
    tag = label(n)
    lib, day, truth = out / f"lib{tag}.h5", out / f"day{tag}.csv", out / f"truth{tag}.csv"
    if lib.exists() and day.exists() and truth.exists():
        return {"lib": lib, "day": day, "truth": truth, "made": False}
    from profiling.ingest import ingest
    from profiling.simulate import simulate, write

    for p in (lib, day, truth):
        if p.exists():
            p.unlink()
    t0 = time.perf_counter()
    sim = simulate(n + DAY_ROWS, seed)
    sim.profiles()[["exhibit_id", "batch", "lot", "dealer", "seizure"]].to_csv(truth, index=False)
    work = scratch / f"sim{tag}"
    files = write(sim, work)
    t_sim = time.perf_counter() - t0
    del sim
    export = files["export"]
    with open(export, encoding="utf-8", newline="") as fh:
        lines = fh.readlines()
    header, body = lines[0], lines[1:]
    # the simulator writes no line breaks inside cells (canonical export): one line per row
    assert body and all(line.endswith("\n") for line in body)
    history = work / "history.csv"
    history.write_text(header + "".join(body[:-DAY_ROWS]), encoding="utf-8")
    day.write_text(header + "".join(body[-DAY_ROWS:]), encoding="utf-8")
    del lines, body
    t0 = time.perf_counter()
    report = ingest([history], lib, quarantine=work / "quarantine.csv", as_of=AS_OF)
    t_ingest = time.perf_counter() - t0
    assert report.reconciles
    shutil.rmtree(work)
    print(f"made {lib} ({report.accepted:,} exhibits accepted, {report.quarantined:,} "
          f"quarantined, {report.duplicates:,} duplicates; simulate + write {t_sim:.1f} s, "
          f"ingest {t_ingest:.1f} s, {lib.stat().st_size / 1e6:,.0f} MB)", flush=True)
    return {"lib": lib, "day": day, "truth": truth, "made": True}


def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, it does not inherit the
    resident size of the parent that forked before the exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _read(lib: str, queue) -> None:
    import profiling.ingest  # noqa: F401  (imports are not part of the phase)
    from profiling.library import read_library

    base = _rss_mb()
    t0 = time.perf_counter()
    data = read_library(lib)
    seconds = time.perf_counter() - t0
    queue.put({"seconds": seconds, "peak_mb": _peak_mb(), "base_mb": base, "n": data.n})


def _ingest(day: str, lib: str, queue) -> None:
    from profiling.ingest import ingest

    seen = {}

    def then(new_lib, report):
        seen["n"], seen["then_mb"] = new_lib.n, _rss_mb()   # what linking would start from
        return {}, "nothing linked (benchmark)"

    base = _rss_mb()
    t0 = time.perf_counter()
    report = ingest([day], lib, quarantine=str(Path(lib).with_suffix(".q.csv")), as_of=AS_OF,
                    then=then)
    seconds = time.perf_counter() - t0
    assert report.reconciles
    counts = {k: getattr(report, k) for k in ("read", "accepted", "quarantined", "duplicates",
                                              "conflicts")}
    queue.put({"seconds": seconds, "peak_mb": _peak_mb(), "base_mb": base, "n": seen["n"],
               "then_mb": seen["then_mb"], "report": counts})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exhibits", default="100000,1000000",
                    help="comma-separated library sizes (default 100000,1000000)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/work/bench"),
                    help="where the libraries, day exports and truth files are kept")
    ap.add_argument("--tmp", type=Path, default=None,
                    help="scratch directory for the simulation and the library copies "
                         "(default: a temporary directory under --out)")
    ap.add_argument("--rebuild", action="store_true", help="make the kept files again")
    ap.add_argument("--only", choices=("read", "ingest"), default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.exhibits.split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python "
          f"{platform.python_version()}; load average at the start {_loadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp or args.out, prefix="library_scale-") as tmp:
        scratch = Path(tmp)
        for n in sizes:
            if args.rebuild:
                for name in ("lib", "day", "truth"):
                    p = args.out / f"{name}{label(n)}{'.h5' if name == 'lib' else '.csv'}"
                    if p.exists():
                        p.unlink()
            files = make_files(args.out, n, scratch)
            lib, day = files["lib"], files["day"]
            size_mb = lib.stat().st_size / 1e6
            phases = {"read": [], "ingest": []}
            for _ in range(args.repeat):
                if args.only in (None, "read"):
                    phases["read"].append(in_child(_read, str(lib)))
                if args.only in (None, "ingest"):
                    copy = scratch / f"copy{label(n)}.h5"
                    shutil.copyfile(lib, copy)
                    os.sync()
                    phases["ingest"].append(in_child(_ingest, str(day), str(copy)))
                    copy.unlink()
            for name, runs in phases.items():
                if not runs:
                    continue
                secs = [r["seconds"] for r in runs]
                peaks = [r["peak_mb"] for r in runs]
                extra = ""
                if name == "ingest":
                    rep = runs[-1]["report"]
                    extra = (f"read {rep['read']}, accepted {rep['accepted']}, quarantined "
                             f"{rep['quarantined']}, duplicates {rep['duplicates']}; "
                             f"library after {runs[-1]['n']:,}; RSS when `then` is called "
                             f"{max(r['then_mb'] for r in runs):,.0f} MB")
                else:
                    extra = f"{runs[-1]['n']:,} exhibits, file {size_mb:,.0f} MB"
                rows.append((f"{n:,}", "read_library" if name == "read" else
                             f"ingest {DAY_ROWS} rows (then=no-op)",
                             statistics.median(secs), min(secs), max(peaks),
                             runs[-1]["base_mb"], extra))
                print(f"  {rows[-1][1]} at {n:,}: {', '.join(f'{s:.2f}' for s in secs)} s; "
                      f"peak {', '.join(f'{p:,.0f}' for p in peaks)} MB", flush=True)
    print(f"load average at the end {_loadavg()}\n")
    print("| exhibits | phase | wall s (median) | wall s (best) | peak RSS MB | RSS after "
          "imports MB | notes |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for n, phase, med, best, peak, base, extra in rows:
        print(f"| {n} | {phase} | {med:.2f} | {best:.2f} | {peak:,.0f} | {base:,.0f} | {extra} |")


def _loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
