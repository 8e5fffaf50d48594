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


GRADES = ("confirmed", "tentative", "unconfirmed")


def strength(log10_lr: np.ndarray) -> pd.Categorical:
    """confirmed / tentative / unconfirmed, by log10 LR (bands in reference_data); one byte a
    link."""
    confirmed, tentative = _bands()
    lr = np.asarray(log10_lr, dtype=float)
    codes = np.full(len(lr), 2, dtype=np.int8)
    codes[lr >= tentative] = 1
    codes[lr >= confirmed] = 0
    return pd.Categorical.from_codes(codes, GRADES)


def end_codes(links: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes of exhibit_a, codes of exhibit_b, the exhibit ids they index). Categorical ends
    (as ``profiling.link.link_table`` makes them) are used as they are; text ends are
    factorised together."""
    a, b = links["exhibit_a"], links["exhibit_b"]
    if isinstance(a.dtype, pd.CategoricalDtype) and a.dtype == b.dtype:
        return (a.cat.codes.to_numpy(), b.cat.codes.to_numpy(),
                np.asarray(a.cat.categories, dtype=object))
    codes, uniques = pd.factorize(pd.Index(np.concatenate([a.to_numpy(dtype=object),
                                                           b.to_numpy(dtype=object)])))
    return codes[:len(a)], codes[len(a):], np.asarray(uniques, dtype=object)


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
    code_a, code_b, uniques = end_codes(links)
    ref = _xml(_texts(uniques)).to_numpy()
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
                    + ref[code_a[a:b]] + '" target="' + ref[code_b[a:b]] + '">'
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
    same_cut = links["same_cut"].to_numpy(dtype=bool)
    same_dist = links["same_distribution"].to_numpy(dtype=bool)
    kind = np.full(len(links), 2, dtype=np.int8)
    kind[same_cut] = 1
    kind[same_dist] = 0
    if grades is None:
        grades = links["strength"] if "strength" in links else strength(np.full(len(links), -np.inf))
    code_a, code_b, uniques = end_codes(links)
    ends = pd.Index(uniques, dtype=object)
    link_rows = pd.DataFrame({
        "From Entity ID": pd.Categorical.from_codes(code_a, categories=ends, validate=False),
        "To Entity ID": pd.Categorical.from_codes(code_b, categories=ends, validate=False),
        "Link Type": pd.Categorical.from_codes(kind, ["Same distribution", "Same cut",
                                                      "Same chemical class"]),
        "Strength": pd.Categorical(grades),
        "Score": links["score"].to_numpy(dtype=float), "Log10 LR": links["log10_lr"].to_numpy(dtype=float),
        "Same Cut": same_cut, "Same Distribution": same_dist,
    }, copy=False)
    write_csv(entities_path, entities)
    write_csv(links_path, link_rows)
