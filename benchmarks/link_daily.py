"""A day's export against the whole library, as a forensic liaison officer runs it (issue 14).

    python benchmarks/link_daily.py [--exhibits 100000,1000000] [--out /work/bench] [--tmp DIR]

For each size N, ``library_scale.make_files`` gives the library (N exhibits of the simulator,
seed 1, ingested through ``profiling.ingest``), the held-back day's export (the last 300 rows)
and the truth (batch, lot, dealer per exhibit); they are made once and reused. Then, each as the
command a user types, in its own process (wall time and peak RSS, VmHWM, of that process:
Python's start and imports included):

1. ``profile link --library COPY --out A``: the library's first link (calibration, classes built,
   every output), on a copy of the library;
2. ``profile link DAY --library COPY --out B``: the day's export ingested, assigned to the
   classes, linked, every output written.

Printed for each: wall s, peak RSS MB, output bytes (all files; per new exhibit; classes.csv
apart), and against the truth: classes (ARI, pairwise precision and recall against the batch);
links.csv rows judged chemically (share of the same batch), same_cut (same lot), same
distribution (same dealer); the new exhibits' class (share whose class is mostly of their
batch); the share of library exhibits that changed class.

Beside them, in the same run, what a user would otherwise run for the day's export: scipy
``cdist(day, library, "canberra")`` on the N+S profiles and a threshold (``ratio`` = its wall
time / the link stage's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from library_scale import AS_OF, make_files


def run_measured(args: list) -> dict:
    """One command in its own process: wall s, its own peak RSS MB, exit code, stdout, stderr.

    The peak is the child's VmHWM read from /proc while it runs (every 20 ms), not wait4's
    ru_maxrss: Linux carries the forking parent's high-water mark into that figure across exec,
    so a benchmark that has read a large truth file would report its own size for every child."""
    import threading

    t0 = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    chunks = {"out": b"", "err": b""}
    peak = [0.0]

    def drain(stream, key):
        chunks[key] = stream.read()

    def watch():
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) / 1024)
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    threads = [threading.Thread(target=drain, args=(proc.stdout, "out")),
               threading.Thread(target=drain, args=(proc.stderr, "err")),
               threading.Thread(target=watch)]
    for t in threads:
        t.start()
    proc.wait()
    wall = time.perf_counter() - t0
    for t in threads:
        t.join()
    return {"wall_s": wall, "peak_mb": peak[0], "code": proc.returncode,
            "stdout": chunks["out"].decode(), "stderr": chunks["err"].decode()}


def machine() -> str:
    """The header line every benchmark prints: machine, cores, Python, load."""
    return (f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"load {os.getloadavg()[0]:.2f}")


def command(args: list) -> dict:
    """:func:`run_measured`, stopping the benchmark with the command's own message if it
    failed."""
    r = run_measured(args)
    if r["code"]:
        raise SystemExit(r["stderr"])
    return r


def out_bytes(d: Path) -> dict:
    sizes = {p.name: p.stat().st_size for p in d.iterdir() if p.is_file()}
    return {"total": sum(sizes.values()), "classes_csv": sizes.get("classes.csv", 0),
            "files": sizes}


def judge(out: Path, truth: pd.DataFrame, new_ids: set | None) -> dict:
    from profiling.simulate.scoring import class_score, layer_precision

    t = truth.set_index("exhibit_id")
    classes = pd.read_csv(out / "classes.csv", dtype={"exhibit_id": str, "class_id": str})
    links = pd.read_csv(out / "links.csv", dtype={"exhibit_a": str, "exhibit_b": str})
    batch = t["batch"].reindex(classes["exhibit_id"]).to_numpy()
    res = {"classes": class_score(batch, pd.factorize(classes["class_id"])[0]).row()}
    a = t["batch"].reindex(links["exhibit_a"]).to_numpy()
    b = t["batch"].reindex(links["exhibit_b"]).to_numpy()
    res["links_same_batch"] = float(np.mean(a == b)) if len(links) else float("nan")
    res["layers"] = layer_precision(links, truth)
    if new_ids:
        classes["batch"] = batch
        old = classes[~classes["exhibit_id"].isin(new_ids)]
        majority = old.groupby("class_id")["batch"].agg(lambda s: s.mode().iloc[0])
        new = classes[classes["exhibit_id"].isin(new_ids)]
        known = new["class_id"].isin(majority.index)
        res["new_in_their_batch_class"] = float(np.mean(
            new.loc[known, "batch"].to_numpy() == majority.reindex(new.loc[known, "class_id"])
            .to_numpy())) if known.any() else float("nan")
        res["new_in_new_classes"] = int((~known).sum())
    return res


def scipy_day(lib: Path, day: Path, tmp: Path) -> float:
    """What a user would otherwise run: cdist(day, library) Canberra on N+S profiles and a
    threshold. Wall time of the distance computation and the threshold."""
    code = f"""
import time, numpy as np
from scipy.spatial.distance import cdist
from profiling.library import read_library
from profiling.ingest import ingest
from profiling import similarity as sim
from pathlib import Path
lib = read_library({str(lib)!r})
ingest([Path({str(day)!r})], Path({str(tmp / 'dayonly.h5')!r}), quarantine=Path({str(tmp / 'q.csv')!r}))
d = read_library({str(tmp / 'dayonly.h5')!r})
cols = [c for c in d.compounds if c in lib.compounds]
L = np.nan_to_num(lib.profiles.reshape(lib.n, -1)[:, [lib.compounds.index(c) for c in cols]])
Q = np.nan_to_num(d.profiles.reshape(d.n, -1)[:, [d.compounds.index(c) for c in cols]])
ref = sim.PRETREATMENTS["sum_std"].fit(L)
L, Q = sim.pretreat(L, "sum_std", reference_std=ref), sim.pretreat(Q, "sum_std", reference_std=ref)
t0 = time.perf_counter()
hits = 0
for a in range(0, len(Q), 50):
    D = cdist(Q[a:a+50], L, "canberra")
    hits += int((D <= 2.0).sum())
print(time.perf_counter() - t0)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exhibits", default="100000,1000000")
    ap.add_argument("--out", type=Path, default=Path("/work/bench"))
    ap.add_argument("--tmp", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    profile = Path(sys.executable).with_name("profile")
    print(machine(), flush=True)
    rows = []
    for n in map(int, args.exhibits.split(",")):
        with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
            scratch = Path(scratch)
            files = make_files(args.out, n, scratch)
            truth = pd.read_csv(files["truth"], dtype={"exhibit_id": str})
            lib = scratch / "lib.h5"
            shutil.copyfile(files["lib"], lib)
            whole = command([profile, "link", "--library", lib, "--out", scratch / "A", "--json"])
            sa = json.loads(whole["stdout"])
            row = {"exhibits": n, "whole": {k: whole[k] for k in ("wall_s", "peak_mb")},
                   "whole_out": out_bytes(scratch / "A"), "whole_judged": judge(
                       scratch / "A", truth, None), "whole_summary": {
                       k: sa[k] for k in ("classes", "classes_with_links", "largest_class",
                                          "links", "timings_s")}}
            print(f"  whole-library link at {n:,}: {whole['wall_s']:.1f} s, "
                  f"{whole['peak_mb']:,.0f} MB, outputs {row['whole_out']['total'] / 1e6:,.1f} MB; "
                  f"classes {row['whole_judged']['classes']}", flush=True)
            day_ids = set(pd.read_csv(files["day"], dtype=str)["exhibit_id"])
            daily = command([profile, "link", files["day"], "--library", lib, "--out",
                             scratch / "B", "--as-of", AS_OF.isoformat(), "--json"])
            sb = json.loads(daily["stdout"])
            ob = out_bytes(scratch / "B")
            new = sb["exhibits_new"]
            row.update({"daily": {k: daily[k] for k in ("wall_s", "peak_mb")}, "daily_out": ob,
                        "daily_judged": judge(scratch / "B", truth, day_ids),
                        "daily_summary": {k: sb[k] for k in (
                            "exhibits_new", "links", "classes_touched", "moved_exhibits",
                            "moved_share", "class_events", "timings_s")},
                        "per_new_bytes": ob["total"] / max(new, 1),
                        "per_new_bytes_without_classes_csv":
                            (ob["total"] - ob["classes_csv"]) / max(new, 1)})
            row["scipy_cdist_canberra_s"] = scipy_day(files["lib"], files["day"], scratch)
            row["load_end"] = os.getloadavg()[0]
            rows.append(row)
            print(f"  day's export ({new} new) at {n:,}: {daily['wall_s']:.1f} s, "
                  f"{daily['peak_mb']:,.0f} MB; outputs {ob['total'] / 1e3:,.0f} kB = "
                  f"{row['per_new_bytes']:,.0f} B per new exhibit "
                  f"({row['per_new_bytes_without_classes_csv']:,.0f} B without classes.csv); "
                  f"moved {sb['moved_exhibits']} ({sb['moved_share']:.3%}); "
                  f"judged {row['daily_judged']}; scipy cdist+threshold "
                  f"{row['scipy_cdist_canberra_s']:.1f} s; link stage "
                  f"{sb['timings_s']['link']:.1f} s; load {row['load_end']:.2f}", flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
