"""Link-chart exports that intelligence tools import: GraphML (Gephi, most graph tools) and the
entity/link CSV pair of i2 Analyst's Notebook's tabular import.

Everything from an export is escaped (XML) or neutralised (CSV cells a spreadsheet would run).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.export import CSV_CHUNK, write_csv
from profiling.files import private_open
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


def _texts(values) -> pd.Series:
    """Values as text: '' for missing, true/false for booleans, floats at 10 significant."""
    s = pd.Series(values)
    if s.dtype == bool:
        return s.map({True: "true", False: "false"})
    if s.dtype.kind == "f":
        return pd.Series(["" if v != v else f"{v:.10g}" for v in s.tolist()], dtype=object)
    return s.astype(object).where(s.notna(), "").astype(str)


def _xml(values: pd.Series) -> pd.Series:
    """XML-escape a column of text (quotes too: values may land in attributes)."""
    if not values.str.contains('[&<>"]', regex=True).any():
        return values
    return (values.str.replace("&", "&amp;", regex=False).str.replace("<", "&lt;", regex=False)
            .str.replace(">", "&gt;", regex=False).str.replace('"', "&quot;", regex=False))


def _data_elements(frame: pd.DataFrame, fields, prefix: str) -> pd.Series:
    out = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    for f in fields:
        if f not in frame:
            continue
        text = _texts(frame[f].to_numpy())
        text.index = frame.index
        if frame[f].dtype.kind not in "fb":       # numbers and booleans need no escaping
            text = _xml(text)
        out = out + np.where(text != "", f'<data key="{prefix}_{f}">' + text + "</data>", "")
    return out


def write_graphml(path: Path, nodes: pd.DataFrame, links: pd.DataFrame,
                  grades: np.ndarray | None = None, chunk: int = CSV_CHUNK) -> None:
    """``nodes`` indexed by exhibit_id with NODE_FIELDS; ``links`` with exhibit_a, exhibit_b and
    EDGE_FIELDS (``grades``: the strength column, when ``links`` lacks it). Written column-wise
    ``chunk`` links at a time, so millions of links take seconds and bounded memory."""
    head = ['<?xml version="1.0" encoding="UTF-8"?>',
            '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">']
    for f in NODE_FIELDS:
        head.append(f'  <key id="n_{f}" for="node" attr.name="{f}" attr.type="string"/>')
    for f in EDGE_FIELDS:
        kind = "double" if f in ("score", "log10_lr", "adulterant_similarity",
                                 "packaging_similarity") else "string"
        head.append(f'  <key id="e_{f}" for="edge" attr.name="{f}" attr.type="{kind}"/>')
    head.append('  <graph id="links" edgedefault="undirected">')
    node_ids = _xml(_texts(nodes.index.to_numpy()))
    node_rows = ('    <node id="' + node_ids.to_numpy() + '">'
                 + _data_elements(nodes.reset_index(drop=True), NODE_FIELDS, "n").to_numpy()
                 + "</node>")
    ends = pd.Index(np.concatenate([links["exhibit_a"].to_numpy(), links["exhibit_b"].to_numpy()]))
    codes, uniques = pd.factorize(ends)
    ref = _xml(_texts(np.asarray(uniques, dtype=object))).to_numpy()
    n = len(links)
    with private_open(path) as fh:
        fh.write("\n".join(head) + "\n")
        if len(node_rows):
            fh.write("\n".join(node_rows) + "\n")
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            part = links.iloc[a:b].reset_index(drop=True)
            if grades is not None:
                part = part.assign(strength=grades[a:b])
            rows = ('    <edge id="e' + np.arange(a, b).astype(str).astype(object) + '" source="'
                    + ref[codes[a:b]] + '" target="' + ref[codes[n + a:n + b]] + '">'
                    + _data_elements(part, EDGE_FIELDS, "e").to_numpy() + "</edge>")
            fh.write("\n".join(rows) + "\n")
        fh.write("  </graph>\n</graphml>\n")


def write_i2(entities_path: Path, links_path: Path, nodes: pd.DataFrame,
             links: pd.DataFrame, grades: np.ndarray | None = None) -> None:
    """i2 Analyst's Notebook tabular import: one entity row per exhibit, one link row per link
    (with the strength grade i2 draws as line style). Text is neutralised by the CSV writer."""
    ids = nodes.index.to_numpy(dtype=object)
    entities = pd.DataFrame({"Entity ID": ids, "Entity Type": "Exhibit", "Label": ids})
    for f, title in zip(NODE_FIELDS, ("Class", "Cutting Group", "Distribution Group", "Seizure",
                                      "Area", "Drug", "Date Seized", "Level")):
        entities[title] = _texts(nodes[f].to_numpy()).to_numpy() if f in nodes else ""
    kind = np.where(links["same_distribution"].to_numpy(dtype=bool), "Same distribution",
                    np.where(links["same_cut"].to_numpy(dtype=bool), "Same cut", "Same chemical class"))
    if grades is None:
        grades = links["strength"].to_numpy() if "strength" in links else np.full(len(links), "unconfirmed")
    link_rows = pd.DataFrame({
        "From Entity ID": links["exhibit_a"].to_numpy(dtype=object),
        "To Entity ID": links["exhibit_b"].to_numpy(dtype=object),
        "Link Type": kind.astype(object),
        "Strength": np.asarray(grades, dtype=object),
        "Score": links["score"].to_numpy(dtype=float), "Log10 LR": links["log10_lr"].to_numpy(dtype=float),
        "Same Cut": links["same_cut"].to_numpy(dtype=bool),
        "Same Distribution": links["same_distribution"].to_numpy(dtype=bool),
    })
    write_csv(entities_path, entities)
    write_csv(links_path, link_rows)
