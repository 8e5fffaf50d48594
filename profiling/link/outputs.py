"""The files `profile link` writes (SPEC: Linking, 7; machine-readable names are fixed).

- ``links.csv``: each new exhibit's strongest chemical links (``--top``), one row a link; with
  ``--all-pairs`` every chemical link touching a new exhibit, streamed;
- ``classes.csv``: every exhibit of every class a new exhibit touched (a whole-library run: every
  exhibit): ``exhibit_id, class_id, cutting_group, distribution_group`` then ``new`` and, for new
  exhibits, the average distance to their class and the log10 LR of their strongest link into it;
- ``class_table.csv``: one row per class (every class of two exhibits or more, and every class
  touched): size, new exhibits, seizures, dates, areas, forces, drugs, levels, groups, spread,
  status; ``class_timeline.csv``: exhibits per class and quarter;
- ``class_events.csv``: this run's new classes, merges (and a rebuild's splits), with reasons;
- ``summary.json``; ``report.html``; the link chart, a class–seizure network with dates
  (``links.graphml``, ``i2_entities.csv``, ``i2_links.csv``); GeoJSON maps where exhibits can
  be placed.

Sizes grow with new exhibits and with the classes they touch, never with pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.export import write_csv
from profiling.files import private_open

LINK_COLUMNS = ["exhibit_a", "exhibit_b", "score", "metric", "pretreatment", "log10_lr",
                "adulterant_similarity", "packaging_similarity", "same_cut", "same_distribution",
                "same_class"]
CLASS_COLUMNS = ["exhibit_id", "class_id", "cutting_group", "distribution_group", "new",
                 "class_distance", "assignment_log10_lr"]


def write_all_pairs(path: Path, chunks, redactor=None) -> int:
    """Stream link-table chunks into one CSV (the header once); returns the rows written."""
    from profiling.export import _column_text, _csv_field, neutralise

    rows = 0
    with private_open(path) as fh:
        fh.write(",".join(_csv_field(neutralise(c)) for c in LINK_COLUMNS) + "\n")
        for frame in chunks:
            if redactor is not None:
                frame = redactor.frame(frame)
            frame = frame[LINK_COLUMNS]
            columns = [_column_text(frame[c], "%.10g") for c in LINK_COLUMNS]
            fields = [col(0, len(frame)) for col in columns]
            fh.write("\n".join(map(",".join, zip(*fields))) + "\n")
            rows += len(frame)
    return rows


def write_link_outputs(out: Path, shared, data, calibration, result=None, redactor=None) -> None:
    """Every output of a link run into ``out``; ``shared`` is what may be shown (redacted when a
    redactor is given), ``result`` the run itself (for the all-pairs stream and the maps)."""
    from profiling.gis import link_maps
    from profiling.link.chart import write_class_graphml, write_class_i2
    from profiling.link.report import link_report
    from profiling.report import write_page

    result = result if result is not None else shared
    notes = shared.summary.setdefault("notes", [])
    if result.pairs is not None:
        n = write_all_pairs(out / "links.csv", result.pairs(), redactor)
        shared.summary["links_all_pairs"] = n
        notes.append(f"--all-pairs: links.csv lists all {n:,} chemical links touching the new "
                     "exhibits; the report and link chart show the strongest only.")
    else:
        write_csv(out / "links.csv", shared.links[LINK_COLUMNS])
    write_csv(out / "classes.csv", shared.classes[CLASS_COLUMNS])
    write_csv(out / "class_table.csv", shared.class_table)
    write_csv(out / "class_timeline.csv", shared.timeline)
    write_csv(out / "class_events.csv", shared.events)
    chart = write_class_graphml(out / "links.graphml", shared)
    write_class_i2(out / "i2_entities.csv", out / "i2_links.csv", shared)
    if chart and chart.get("note"):
        notes.append(chart["note"])
    shared.summary["gis"] = result.summary["gis"] = link_maps(out, result, data, redactor)
    with private_open(out / "summary.json") as fh:
        json.dump(shared.summary, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    write_page(out / "report.html", link_report(shared, calibration))


# --- class rows, the class table and the timeline ----------------------------------------


def class_rows(records, cid, label, cut_no, dist_no, is_new, levels, rows, assignment):
    """classes.csv's rows (and their context) for the linkable exhibits where ``rows`` holds;
    ``records`` are those exhibits' records, in order."""
    at = np.flatnonzero(rows)
    c = cid[label[at]]
    cut = cut_no[at].astype(str)
    seizure = records["seizure_id"].to_numpy(dtype=object)
    level = np.full(len(at), "", dtype=object)
    if levels is not None and len(levels):
        lv = dict(zip(levels["seizure_id"].astype(str), levels["level"].astype(str)))
        level = np.array([lv.get(s, "") for s in seizure], dtype=object)
    frame = pd.DataFrame({
        "exhibit_id": records["exhibit_id"].to_numpy(dtype=object), "class_id": c,
        "cutting_group": c + "." + cut,
        "distribution_group": c + "." + cut + "." + dist_no[at].astype(str),
        "seizure_id": seizure, "area": records["area"].to_numpy(dtype=object),
        "force": records["force"].to_numpy(dtype=object), "drug": records["drug"].to_numpy(dtype=object),
        "seized_on": pd.to_datetime(records["seized_on"]).dt.strftime("%Y-%m-%d").fillna("")
        .to_numpy(dtype=object),
        "seizure_type": records["seizure_type"].to_numpy(dtype=object),
        "flags": records["flags"].to_numpy(dtype=object), "level": level,
        "new": is_new[at],
    })
    if assignment is not None:
        frame["class_distance"] = assignment[0][at]
        frame["assignment_log10_lr"] = assignment[1][at]
    return frame


def joined(values) -> str:
    return "; ".join(sorted(set(values) - {""}))


def _joined_by_class(frame: pd.DataFrame, column: str) -> pd.Series:
    """Per class, the distinct non-empty values of ``column``, sorted and '; '-joined (the link
    chart's joiner, over distinct pairs: a class of 4,000 exhibits in 12 areas joins 12)."""
    from profiling.link.chart import _joined

    classes = frame["class_id"].drop_duplicates().sort_values()
    return _joined(frame, "class_id", column).reindex(classes).fillna("")


def class_summary(frame: pd.DataFrame, model, touched_ids: set,
                  events: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per class of ``frame`` (class table) and its exhibits per quarter (timeline)."""
    if not len(frame):
        return (pd.DataFrame(columns=CLASS_TABLE_COLUMNS),
                pd.DataFrame(columns=["class_id", "quarter", "exhibits"]))
    index = {c: k for k, c in enumerate(model.ids)}
    status = {}
    for e in events:
        status.setdefault(e["class_id"], "merged" if e["event"] == "merge" else e["event"])
    g = frame.groupby("class_id", sort=True)
    dates = frame["seized_on"].where(frame["seized_on"] != "")
    table = pd.DataFrame({
        "exhibits": g.size(),
        "new_exhibits": g["new"].sum().astype(int),
        "seizures": g["seizure_id"].nunique(),
        "first_seized": dates.groupby(frame["class_id"]).min(),
        "last_seized": dates.groupby(frame["class_id"]).max(),
        **{name: _joined_by_class(frame, column) for name, column in
           (("areas", "area"), ("forces", "force"), ("drugs", "drug"), ("levels", "level"))},
        "cutting_groups": g["cutting_group"].nunique(),
        "distribution_groups": g["distribution_group"].nunique(),
    }).reset_index()
    k = np.array([index[c] for c in table["class_id"]])
    n_c = model.n[k].astype(float)
    sq = np.einsum("ij,ij->i", model.sums[k], model.sums[k])
    with np.errstate(invalid="ignore", divide="ignore"):
        table["spread"] = np.where(n_c > 1, 1.0 - (sq - n_c) / (n_c * (n_c - 1)), 0.0)
    table["status"] = [status.get(c, "grew" if c in touched_ids else "kept")
                       for c in table["class_id"]]
    table[["first_seized", "last_seized"]] = table[["first_seized", "last_seized"]].fillna("")
    table = table.sort_values(["new_exhibits", "exhibits", "class_id"],
                              ascending=[False, False, True])[CLASS_TABLE_COLUMNS]
    day = pd.to_datetime(frame["seized_on"], errors="coerce")
    quarter = day.dt.year.astype("Int64").astype(str) + "Q" + day.dt.quarter.astype("Int64").astype(str)
    tl = pd.DataFrame({"class_id": frame["class_id"], "quarter": quarter})[day.notna().to_numpy()]
    timeline = tl.groupby(["class_id", "quarter"]).size().rename("exhibits").reset_index()
    return table.reset_index(drop=True), timeline


CLASS_TABLE_COLUMNS = ["class_id", "exhibits", "new_exhibits", "seizures", "first_seized",
                       "last_seized", "areas", "forces", "drugs", "levels", "cutting_groups",
                       "distribution_groups", "spread", "status"]
