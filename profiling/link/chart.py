"""The link chart of a run: a class–seizure network with dates, for GraphML (Gephi, most graph
tools) and the entity/link CSV pair of i2 Analyst's Notebook's tabular import.

Nodes are chemical classes and seizures; an edge joins a class to each seizure holding exhibits
of it, dated by the first of those exhibits' seizure dates (ISO ``YYYY-MM-DD``), so a chart of a
force's year opens on Gephi's timeline or i2's date fields as it is.

What is drawn stays proportional to the run, not to the library (:func:`class_network`):

- the classes the new exhibits touched, ranked by new exhibits, then size, then id; a class of a
  single exhibit links nothing and is not drawn; beyond ``max_classes`` the rest are counted;
- per class, its seizures with new exhibits, and at most ``context_seizures`` others (the most
  recent); within ``max_seizures`` edges in all, shared out so that small classes keep every
  seizure and the largest are trimmed first (their newest seizures kept).

Every writer returns what it left out, for the notes beside the chart. Text from an export is
XML-escaped (:mod:`profiling.linkchart`) or neutralised as a CSV cell
(:func:`profiling.export.write_csv`); files are owner-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.export import write_csv
from profiling.files import private_open
from profiling.linkchart import _texts, _xml, end_codes

MAX_CLASSES = 200          # classes in the exported chart
MAX_SEIZURES = 20_000      # class–seizure edges in the exported chart (a whole-library run)
CONTEXT_SEIZURES = 1       # per class, seizures without a new exhibit: where it was last seen

CLASS_PREFIX, SEIZURE_PREFIX = "class:", "seizure:"

# (attribute, GraphML type, meaning) of each kind of element, in the order written; ``date``
# is the first seizure date, the one field Gephi's timeline and i2's date fields need
CLASS_FIELDS = (
    ("kind", "string", "class or seizure"), ("label", "string", "class id or seizure id"),
    ("status", "string", "class this run: new, grew, merged or kept"),
    ("exhibits", "int", "exhibits (of a seizure: those in the classes shown)"),
    ("new_exhibits", "int", "exhibits new in this run"), ("seizures", "int", "seizures"),
    ("seizures_not_shown", "int", "seizures of the class not in the chart"),
    ("date", "string", "a class's first seizure date, a seizure's date: YYYY-MM-DD"),
    ("last_seized", "string", "last seizure date, YYYY-MM-DD"),
    ("areas", "string", "areas, '; '-joined"), ("forces", "string", "forces, '; '-joined"),
    ("levels", "string", "supply levels, '; '-joined"), ("drugs", "string", "drugs, '; '-joined"))
SEIZURE_FIELDS = (
    ("kind", "string", ""), ("label", "string", ""), ("area", "string", "area"),
    ("force", "string", "force"), ("drug", "string", "drug"),
    ("seizure_type", "string", "seizure type"), ("date", "string", ""),
    ("level", "string", "supply level"), ("exhibits", "int", ""), ("new_exhibits", "int", ""),
    ("new", "boolean", "the seizure holds exhibits new in this run"))
EDGE_FIELDS = (
    ("exhibits", "int", "exhibits of the class in the seizure"),
    ("new_exhibits", "int", "of those, new in this run"),
    ("date", "string", "first seizure date of those exhibits, YYYY-MM-DD"),
    ("last_seized", "string", "last seizure date of those exhibits, YYYY-MM-DD"),
    ("cutting_groups", "string", "cutting groups (same lot) of those exhibits"),
    ("distribution_groups", "string", "distribution groups (same dealer) of those exhibits"),
    ("same_cut_links", "int", "reported links from those exhibits that share the cut"),
    ("same_distribution_links", "int",
     "reported links from those exhibits that share the packaging"))


@dataclass
class ClassNetwork:
    """The class–seizure network drawn for a run, and what was left out of it.

    ``classes``: one row per class shown (``class_id`` and CLASS_FIELDS' columns); ``seizures``:
    one row per seizure shown (``seizure_id`` and SEIZURE_FIELDS' columns; ``exhibits`` counts
    its exhibits in the classes shown); ``edges``: one row per class–seizure pair shown."""

    classes: pd.DataFrame
    seizures: pd.DataFrame
    edges: pd.DataFrame
    basis: str                       # "touched" | "all" (no exhibit of the run is new)
    touched: int                     # classes the basis covers
    single_exhibit: int              # of those, classes of one exhibit (not drawn)
    beyond_cap: int                  # classes of 2+ exhibits left out by max_classes
    beyond_cap_exhibits: int
    seizures_not_shown: int          # class–seizure pairs of shown classes not drawn
    limits: dict = field(default_factory=dict)

    def left_out(self) -> dict:
        return {"basis": self.basis, "classes_touched": self.touched,
                "classes_shown": len(self.classes), "classes_single_exhibit": self.single_exhibit,
                "classes_omitted": self.beyond_cap, "exhibits_omitted": self.beyond_cap_exhibits,
                "seizures_shown": len(self.seizures), "edges": len(self.edges),
                "seizures_not_shown": self.seizures_not_shown, **self.limits}

    def note(self) -> str:
        """Plain sentences: what the network shows, what it leaves out and why."""
        n = len(self.classes)
        if self.basis == "all":
            parts = [(f"No exhibit of this run is new, so the network shows the largest "
                      f"classes: {n:,} of {_count(self.touched - self.single_exhibit, 'class')} "
                      f"of two or more exhibits.")]
        else:
            parts = [(f"The network shows {n:,} of the {_count(self.touched, 'class')} the new "
                      f"exhibits touched, with {_count(len(self.seizures), 'seizure')}.")]
        if self.beyond_cap:
            parts.append(f"{_count(self.beyond_cap, 'class')} "
                         f"({_count(self.beyond_cap_exhibits, 'exhibit')}) "
                         f"{_be(self.beyond_cap)} left out: only "
                         f"{self.limits['max_classes']:,} are drawn, those with the most new "
                         f"exhibits, then the largest.")
        if self.single_exhibit:
            parts.append(f"{_count(self.single_exhibit, 'class')} of a single exhibit "
                         f"{_be(self.single_exhibit)} not drawn (an exhibit that links to "
                         f"nothing; each is in the class table).")
        if self.seizures_not_shown:
            parts.append(f"{_count(self.seizures_not_shown, 'seizure')} of the classes shown "
                         f"{_be(self.seizures_not_shown)} not drawn: a class shows its seizures "
                         f"with new exhibits and at most {self.limits['context_seizures']:,} "
                         f"others (the most recent), and the network at most "
                         f"{self.limits['max_seizures']:,} seizures, the largest classes trimmed "
                         f"first.")
        return " ".join(parts)


def _count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{n:,} {noun if n == 1 else plural}"


def _be(n: int) -> str:
    return "is" if n == 1 else "are"


def _present(values: pd.Series) -> pd.Series:
    """Text with '' read as missing."""
    s = values.astype(object).where(values.notna(), "").astype(str)
    return s.where(s != "")


def _joined(frame: pd.DataFrame, by, column: str) -> pd.Series:
    """'; '-joined sorted distinct non-empty values of ``column`` per ``by`` group."""
    v = frame[by if isinstance(by, list) else [by]].assign(_v=_present(frame[column]))
    v = v.dropna(subset=["_v"]).drop_duplicates().sort_values([*v.columns[:-1], "_v"])
    return v.groupby(by, sort=True)["_v"].agg("; ".join)


def _rows(result) -> pd.DataFrame:
    """The exhibits of the touched classes with text ids, dates as text ('' missing); made
    once per result."""
    memo = result.__dict__.get("_chart_rows")
    if memo is not None:
        return memo
    result.__dict__["_chart_rows"] = out = _make_rows(result.classes)
    return out


def _make_rows(c: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({k: c[k].astype(str).to_numpy() for k in
                        ("exhibit_id", "class_id", "cutting_group", "distribution_group",
                         "seizure_id")})
    for k in ("area", "force", "drug", "seized_on", "seizure_type", "level"):
        out[k] = _present(c[k]).to_numpy() if k in c else np.nan
    out["new"] = c["new"].to_numpy(dtype=bool)
    return out


def ranked_classes(result) -> tuple[pd.DataFrame, str, int]:
    """Classes of 2+ exhibits the new exhibits touched, in drawing order (most new exhibits,
    then largest, then id), with their ``exhibits`` and ``new_exhibits``; the basis ("touched",
    or "all" when no exhibit is new) and the number of single-exhibit classes left out."""
    rows = result.classes
    per = pd.DataFrame({"class_id": rows["class_id"].astype(str).to_numpy(),
                        "new": rows["new"].to_numpy(dtype=bool)})
    per = per.groupby("class_id", sort=True)["new"].agg(exhibits="size", new_exhibits="sum")
    per = per.reset_index()
    basis = "touched" if (per["new_exhibits"] > 0).any() else "all"
    if basis == "touched":
        per = per[per["new_exhibits"] > 0]
    single = int((per["exhibits"] < 2).sum())
    per = per[per["exhibits"] >= 2].sort_values(["new_exhibits", "exhibits", "class_id"],
                                                ascending=[False, False, True])
    return per.reset_index(drop=True), basis, single


def waterfill(counts: np.ndarray, budget: int) -> int:
    """The largest per-class cap c with sum(min(counts, c)) <= budget (at least 1): small classes
    keep everything, the largest share what is left."""
    counts = np.asarray(counts, dtype=np.int64)
    if not len(counts) or counts.sum() <= budget:
        return int(counts.max()) if len(counts) else 0
    lo, hi = 1, int(counts.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(counts, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _days(dates: pd.Series) -> pd.Series:
    """ISO dates as days since 1970 (float, NaN where missing): numbers group fast."""
    d = pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce")
    return (d - pd.Timestamp("1970-01-01")).dt.days.astype(float)


def _iso(days: pd.Series) -> pd.Series:
    d = pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D")
    return pd.Series(d.dt.strftime("%Y-%m-%d").to_numpy(dtype=object), index=days.index)


def _edges(rows: pd.DataFrame, context: int, budget: int) -> tuple[pd.DataFrame, int]:
    """One row per (class, seizure) drawn: exhibits, new ones, first/last date, groups; and
    the number of pairs there were. The pairs are ranked and trimmed on numbers first, so the
    text of a library-sized class is never built."""
    e = _pairs(rows)
    pairs = len(e)
    e = _trim(e, context, budget).reset_index(drop=True)
    e["new_exhibits"] = e["new_exhibits"].astype(np.int64)
    e["date"], e["last_seized"] = _iso(e.pop("_first")), _iso(e.pop("_last"))
    kept = rows.merge(e[["class_id", "seizure_id"]], on=["class_id", "seizure_id"])
    at = pd.MultiIndex.from_frame(e[["class_id", "seizure_id"]])
    for column, source in (("cutting_groups", "cutting_group"),
                           ("distribution_groups", "distribution_group")):
        e[column] = _joined(kept, ["class_id", "seizure_id"], source).reindex(at).to_numpy()
    return e, pairs


def _pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """Every (class, seizure) pair of ``rows`` with its exhibits, new ones and first and last
    day; grouped on integer codes (a day's run at 10^6 has half a million rows)."""
    c_code, c_names = pd.factorize(rows["class_id"], sort=True)
    s_code, s_names = pd.factorize(rows["seizure_id"], sort=True)
    key = c_code.astype(np.int64) * max(len(s_names), 1) + s_code
    g = pd.DataFrame({"key": key, "new": rows["new"].to_numpy(dtype=bool),
                      "_day": rows["_day"].to_numpy()}).groupby("key", sort=True)
    e = g.agg(exhibits=("new", "size"), new_exhibits=("new", "sum"),
              _first=("_day", "min"), _last=("_day", "max"))
    k = e.index.to_numpy()
    e.insert(0, "seizure_id", np.asarray(s_names, dtype=object)[k % max(len(s_names), 1)])
    e.insert(0, "class_id", np.asarray(c_names, dtype=object)[k // max(len(s_names), 1)])
    return e.reset_index(drop=True)


def _trim(edges: pd.DataFrame, context: int, budget: int) -> pd.DataFrame:
    """Per class: seizures with new exhibits, then at most ``context`` others (most recent);
    then the budget shared out (:func:`waterfill`), newest-first within a class."""
    e = edges.assign(_has_new=edges["new_exhibits"] > 0)
    e = e.sort_values(["class_id", "_has_new", "_last", "exhibits", "seizure_id"],
                      ascending=[True, False, False, False, True], kind="stable",
                      na_position="last")
    old_rank = e.groupby(["class_id", "_has_new"]).cumcount()
    e = e[e["_has_new"] | (old_rank < context)]
    cap = waterfill(e.groupby("class_id").size().to_numpy(), budget)
    e = e[e.groupby("class_id").cumcount() < cap]
    return e.drop(columns=["_has_new"])


def _link_counts(result, rows: pd.DataFrame, edges: pd.DataFrame) -> None:
    """same_cut_links / same_distribution_links of each edge: reported links with an end among
    the edge's exhibits and that layer shared (a link counted once per edge). In place."""
    links = result.links
    edges["same_cut_links"] = 0
    edges["same_distribution_links"] = 0
    if not len(links) or not len(edges):
        return
    code_a, code_b, uniques = end_codes(links)
    # only the exhibits at an end of a link (a few thousand, not the classes' every member)
    rows = rows[rows["exhibit_id"].isin(pd.Index(uniques).astype(str))]
    edge_of = pd.Series(np.arange(len(edges)),
                        index=pd.MultiIndex.from_frame(edges[["class_id", "seizure_id"]]))
    where = edge_of.reindex(pd.MultiIndex.from_frame(rows[["class_id", "seizure_id"]]))
    exhibit_edge = pd.Series(where.fillna(-1).to_numpy(dtype=np.int64),
                             index=rows["exhibit_id"].to_numpy())
    exhibit_edge = exhibit_edge[~exhibit_edge.index.duplicated()]
    per_end = exhibit_edge.reindex(pd.Index(uniques).astype(str)).fillna(-1).to_numpy(np.int64)
    ea, eb = per_end[code_a], per_end[code_b]
    for layer, column in (("same_cut", "same_cut_links"),
                          ("same_distribution", "same_distribution_links")):
        on = links[layer].to_numpy(dtype=bool)
        ends = np.r_[ea[on & (ea >= 0)], eb[on & (eb >= 0) & (eb != ea)]]
        edges[column] = np.bincount(ends, minlength=len(edges)).astype(np.int64)


def class_network(result, max_classes: int = MAX_CLASSES, max_seizures: int = MAX_SEIZURES,
                  context_seizures: int = CONTEXT_SEIZURES) -> ClassNetwork:
    """The class–seizure network of ``result`` within the limits (see the module's text);
    computed once per result and limits (GraphML, i2 and the page ask for it)."""
    key = (max_classes, max_seizures, context_seizures)
    memo = result.__dict__.setdefault("_class_networks", {})
    if key not in memo:
        memo[key] = _class_network(result, max_classes, max_seizures, context_seizures)
    return memo[key]


def _class_network(result, max_classes: int, max_seizures: int,
                   context_seizures: int) -> ClassNetwork:
    ranked, basis, single = ranked_classes(result)
    shown = ranked.head(max_classes)
    beyond = ranked.iloc[max_classes:]
    rows = _rows(result)
    rows = rows[rows["class_id"].isin(set(shown["class_id"]))]
    rows = rows.assign(_day=_days(rows["seized_on"]))
    edges, pairs = _edges(rows, context_seizures, max_seizures)
    _link_counts(result, rows, edges)

    cls = rows.groupby("class_id", sort=True).agg(
        exhibits=("exhibit_id", "size"), new_exhibits=("new", "sum"),
        seizures=("seizure_id", "nunique"), _first=("_day", "min"), _last=("_day", "max"))
    cls["first_seized"], cls["last_seized"] = _iso(cls.pop("_first")), _iso(cls.pop("_last"))
    for column, source in (("areas", "area"), ("forces", "force"), ("levels", "level"),
                           ("drugs", "drug")):
        cls[column] = _joined(rows, "class_id", source)
    cls["seizures_not_shown"] = cls["seizures"] - edges.groupby("class_id").size().reindex(
        cls.index, fill_value=0)
    table = getattr(result, "class_table", None)
    status = (table.assign(class_id=table["class_id"].astype(str)).set_index("class_id")["status"]
              if table is not None and "status" in table else pd.Series(dtype=object))
    cls["status"] = status.reindex(cls.index)
    cls = cls.reset_index()
    cls["new_exhibits"] = cls["new_exhibits"].astype(np.int64)
    cls["kind"], cls["label"], cls["date"] = "class", cls["class_id"], cls["first_seized"]

    kept = rows.merge(edges[["class_id", "seizure_id"]], on=["class_id", "seizure_id"])
    first = kept.sort_values("exhibit_id").groupby("seizure_id", sort=True)
    sz = first[["area", "force", "drug", "seizure_type", "seized_on", "level"]].first()
    sz = sz.rename(columns={"seized_on": "date"})
    sz["exhibits"] = first.size()
    sz["new_exhibits"] = first["new"].sum().astype(np.int64)
    sz["new"] = sz["new_exhibits"] > 0
    sz = sz.reset_index()
    sz["kind"], sz["label"] = "seizure", sz["seizure_id"]
    return ClassNetwork(
        classes=cls, seizures=sz, edges=edges, basis=basis, touched=len(ranked) + single,
        single_exhibit=single, beyond_cap=len(beyond),
        beyond_cap_exhibits=int(beyond["exhibits"].sum()),
        seizures_not_shown=pairs - len(edges),
        limits={"max_classes": max_classes, "max_seizures": max_seizures,
                "context_seizures": context_seizures})


# --- GraphML ------------------------------------------------------------------------------


def _graphml_keys() -> tuple[list[str], dict, dict]:
    """The <key> declarations (short ids, the names as attr.name, the meaning as desc) and the
    id of each node and edge attribute."""
    lines, node_keys, edge_keys = [], {}, {}
    for fields, keys, target, prefix in ((CLASS_FIELDS + SEIZURE_FIELDS, node_keys, "node", "n"),
                                         (EDGE_FIELDS, edge_keys, "edge", "e")):
        for name, kind, meaning in fields:
            if name in keys:
                continue
            keys[name] = f"{prefix}{len(keys)}"
            desc = f"<desc>{meaning}</desc>" if meaning else ""
            lines.append(f'  <key id="{keys[name]}" for="{target}" attr.name="{name}" '
                         f'attr.type="{kind}">{desc}</key>')
    return lines, node_keys, edge_keys


def _graphml_data(frame: pd.DataFrame, fields, keys: dict) -> np.ndarray:
    """The <data> elements of each row (none for a missing value); text XML-escaped."""
    out = np.full(len(frame), "", dtype=object)
    for name, kind, _ in fields:
        if kind == "boolean":
            text = pd.Series(np.where(frame[name].to_numpy(dtype=bool), "true", "false"))
        else:
            text = _texts(frame[name].to_numpy())
            text = _xml(text) if kind == "string" else text
        text = text.to_numpy(dtype=object)
        out = out + np.where(text != "", f'<data key="{keys[name]}">' + text + "</data>", "")
    return out


def write_class_graphml(path: str | Path, result, max_classes: int = MAX_CLASSES,
                        max_seizures: int = MAX_SEIZURES,
                        context_seizures: int = CONTEXT_SEIZURES) -> dict:
    """The class–seizure network as GraphML (undirected; node ids ``class:<id>`` and
    ``seizure:<id>``; ``kind`` and ``label`` attributes; every node and edge carries ``date``,
    its first seizure date). Returns :meth:`ClassNetwork.left_out` with ``note``."""
    net = class_network(result, max_classes, max_seizures, context_seizures)
    declared, node_keys, edge_keys = _graphml_keys()
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">', *declared,
             '  <graph id="classes" edgedefault="undirected">']
    for frame, prefix, id_column, fields in (
            (net.classes, CLASS_PREFIX, "class_id", CLASS_FIELDS),
            (net.seizures, SEIZURE_PREFIX, "seizure_id", SEIZURE_FIELDS)):
        ids = _xml(_texts((prefix + frame[id_column]).to_numpy())).to_numpy(dtype=object)
        lines += ('    <node id="' + ids + '">' + _graphml_data(frame, fields, node_keys)
                  + "</node>").tolist()
    e = net.edges
    source = _xml(_texts((CLASS_PREFIX + e["class_id"]).to_numpy())).to_numpy(dtype=object)
    target = _xml(_texts((SEIZURE_PREFIX + e["seizure_id"]).to_numpy())).to_numpy(dtype=object)
    ids = np.array([f"e{k}" for k in range(len(e))], dtype=object)
    lines += ('    <edge id="' + ids + '" source="' + source + '" target="' + target + '">'
              + _graphml_data(e, EDGE_FIELDS, edge_keys) + "</edge>").tolist()
    with private_open(path) as fh:
        fh.write("\n".join(lines) + "\n  </graph>\n</graphml>\n")
    return {"path": str(path), **net.left_out(), "note": net.note()}


# --- i2 Analyst's Notebook ---------------------------------------------------------------

I2_ENTITY_COLUMNS = ("Entity ID", "Entity Type", "Label", "Date", "First Seized", "Last Seized",
                     "Status", "Exhibits", "New Exhibits", "Seizures", "Seizures Not Shown",
                     "Area", "Force", "Drug", "Seizure Type", "Level", "New")


def _counts(values) -> np.ndarray:
    """Whole numbers as text ('' where missing), so one column can mix entity types."""
    return np.array(["" if pd.isna(x) else str(int(x)) for x in pd.Series(values).tolist()],
                    dtype=object)


def write_class_i2(entities_path: str | Path, links_path: str | Path, result,
                   max_classes: int = MAX_CLASSES, max_seizures: int = MAX_SEIZURES,
                   context_seizures: int = CONTEXT_SEIZURES) -> dict:
    """i2 Analyst's Notebook tabular import of the class–seizure network: an entity file
    (types "Chemical class" and "Seizure", a ``Date`` column in ISO form) and a link file (one
    "Exhibits seized" link per class–seizure pair, dated by its first exhibit). Cells are
    neutralised by :func:`profiling.export.write_csv`. Returns what :func:`write_class_graphml`
    returns."""
    net = class_network(result, max_classes, max_seizures, context_seizures)
    c, s, e = net.classes, net.seizures, net.edges
    blank_c, blank_s = [""] * len(c), [""] * len(s)
    classes = pd.DataFrame({
        "Entity ID": CLASS_PREFIX + c["class_id"], "Entity Type": "Chemical class",
        "Label": c["class_id"], "Date": c["first_seized"].fillna(""),
        "First Seized": c["first_seized"].fillna(""), "Last Seized": c["last_seized"].fillna(""),
        "Status": c["status"].fillna("").astype(str), "Exhibits": _counts(c["exhibits"]),
        "New Exhibits": _counts(c["new_exhibits"]), "Seizures": _counts(c["seizures"]),
        "Seizures Not Shown": _counts(c["seizures_not_shown"]), "Area": c["areas"].fillna(""),
        "Force": c["forces"].fillna(""), "Drug": c["drugs"].fillna(""), "Seizure Type": blank_c,
        "Level": c["levels"].fillna(""), "New": blank_c})
    seizures = pd.DataFrame({
        "Entity ID": SEIZURE_PREFIX + s["seizure_id"], "Entity Type": "Seizure",
        "Label": s["seizure_id"], "Date": s["date"].fillna(""), "First Seized": blank_s,
        "Last Seized": blank_s, "Status": blank_s, "Exhibits": _counts(s["exhibits"]),
        "New Exhibits": _counts(s["new_exhibits"]), "Seizures": blank_s,
        "Seizures Not Shown": blank_s, "Area": s["area"].fillna(""),
        "Force": s["force"].fillna(""), "Drug": s["drug"].fillna(""),
        "Seizure Type": s["seizure_type"].fillna(""), "Level": s["level"].fillna(""),
        "New": np.where(s["new"].to_numpy(dtype=bool), "true", "false")})
    entities = pd.concat([classes, seizures], ignore_index=True)[list(I2_ENTITY_COLUMNS)]
    links = pd.DataFrame({
        "From Entity ID": CLASS_PREFIX + e["class_id"],
        "To Entity ID": SEIZURE_PREFIX + e["seizure_id"], "Link Type": "Exhibits seized",
        "Date": e["date"].fillna(""), "First Seized": e["date"].fillna(""),
        "Last Seized": e["last_seized"].fillna(""), "Exhibits": e["exhibits"].to_numpy(),
        "New Exhibits": e["new_exhibits"].to_numpy(),
        "Cutting Groups": e["cutting_groups"].fillna(""),
        "Distribution Groups": e["distribution_groups"].fillna(""),
        "Same Cut Links": e["same_cut_links"].to_numpy(),
        "Same Distribution Links": e["same_distribution_links"].to_numpy()})
    write_csv(entities_path, entities)
    write_csv(links_path, links)
    return {"paths": [str(entities_path), str(links_path)], **net.left_out(), "note": net.note()}
