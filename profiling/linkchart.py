"""Link-chart exports that intelligence tools import: GraphML (Gephi, most graph tools) and the
entity/link CSV pair of i2 Analyst's Notebook's tabular import.

Everything from an export is escaped (XML) or neutralised (CSV cells a spreadsheet would run).
"""

from __future__ import annotations

import csv
import io
import os
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

from profiling.export import neutralise
from profiling.ingest.vocabulary import load_toml

NODE_FIELDS = ("class_id", "cutting_group", "distribution_group", "seizure_id", "area", "drug",
               "seized_on", "level")
EDGE_FIELDS = ("score", "log10_lr", "adulterant_similarity", "packaging_similarity", "same_cut",
               "same_distribution", "strength")


@cache
def _bands() -> tuple[float, float]:
    t = load_toml("link_strength.toml")
    return float(t["confirmed_min_log10_lr"]), float(t["tentative_min_log10_lr"])


def strength(log10_lr: np.ndarray) -> np.ndarray:
    """confirmed / tentative / unconfirmed, by log10 LR (bands in reference_data)."""
    confirmed, tentative = _bands()
    lr = np.asarray(log10_lr, dtype=float)
    return np.where(lr >= confirmed, "confirmed", np.where(lr >= tentative, "tentative",
                                                           "unconfirmed")).astype(object)


def _open(path: Path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    return str(v)


def write_graphml(path: Path, nodes: pd.DataFrame, links: pd.DataFrame) -> None:
    """``nodes`` indexed by exhibit_id with NODE_FIELDS; ``links`` with exhibit_a, exhibit_b and
    EDGE_FIELDS."""
    out = io.StringIO()
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
              '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">\n')
    for f in NODE_FIELDS:
        out.write(f'  <key id="n_{f}" for="node" attr.name="{f}" attr.type="string"/>\n')
    for f in EDGE_FIELDS:
        kind = "double" if f in ("score", "log10_lr", "adulterant_similarity",
                                 "packaging_similarity") else "string"
        out.write(f'  <key id="e_{f}" for="edge" attr.name="{f}" attr.type="{kind}"/>\n')
    out.write('  <graph id="links" edgedefault="undirected">\n')
    for exhibit, row in nodes.iterrows():
        out.write(f"    <node id={quoteattr(str(exhibit))}>")
        for f in NODE_FIELDS:
            if f in row and _text(row[f]) != "":
                out.write(f'<data key="n_{f}">{escape(_text(row[f]))}</data>')
        out.write("</node>\n")
    for k, row in enumerate(links.itertuples(index=False)):
        r = row._asdict()
        out.write(f'    <edge id="e{k}" source={quoteattr(str(r["exhibit_a"]))} '
                  f'target={quoteattr(str(r["exhibit_b"]))}>')
        for f in EDGE_FIELDS:
            if f in r and _text(r[f]) != "":
                out.write(f'<data key="e_{f}">{escape(_text(r[f]))}</data>')
        out.write("</edge>\n")
    out.write("  </graph>\n</graphml>\n")
    with _open(path) as fh:
        fh.write(out.getvalue())


def write_i2(entities_path: Path, links_path: Path, nodes: pd.DataFrame,
             links: pd.DataFrame) -> None:
    """i2 Analyst's Notebook tabular import: one entity row per exhibit, one link row per link
    (with the strength grade i2 draws as line style)."""
    with _open(entities_path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["Entity ID", "Entity Type", "Label", "Class", "Cutting Group",
                    "Distribution Group", "Seizure", "Area", "Drug", "Date Seized", "Level"])
        for exhibit, row in nodes.iterrows():
            w.writerow([neutralise(str(exhibit)), "Exhibit", neutralise(str(exhibit)),
                        *[neutralise(_text(row.get(f, ""))) for f in NODE_FIELDS]])
    with _open(links_path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["From Entity ID", "To Entity ID", "Link Type", "Strength", "Score",
                    "Log10 LR", "Same Cut", "Same Distribution"])
        for row in links.itertuples(index=False):
            r = row._asdict()
            kind = ("Same distribution" if r.get("same_distribution") is True else
                    "Same cut" if r.get("same_cut") is True else "Same chemical class")
            w.writerow([neutralise(str(r["exhibit_a"])), neutralise(str(r["exhibit_b"])), kind,
                        r.get("strength", "unconfirmed"), _text(r.get("score")),
                        _text(r.get("log10_lr")), _text(r.get("same_cut")),
                        _text(r.get("same_distribution"))])
