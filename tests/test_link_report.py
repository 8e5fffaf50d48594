"""The link report and the class–seizure chart (profiling.link.report, profiling.link.chart):
GraphML that graph tools load, i2 files whose cells a spreadsheet cannot run, escaping of
export text, notes on what is left out, the quarterly turnover of classes against hand counts."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from profiling.link.chart import class_network, waterfill, write_class_graphml, write_class_i2
from profiling.link.report import link_report, quarterly_turnover

EVIL = '<script>alert("x")</script>'
FORMULA = "=HYPERLINK(\"http://x\",\"y\")"
GRAPHML = "{http://graphml.graphdrawing.org/xmlns}"
CLASS_COLUMNS = ["exhibit_id", "class_id", "cutting_group", "distribution_group", "seizure_id",
                 "area", "force", "drug", "seized_on", "seizure_type", "flags", "level", "new"]


def class_table(rows: pd.DataFrame, status: dict | None = None) -> pd.DataFrame:
    """The run's class table, computed from exhibit rows as the interface describes it."""
    out = []
    for cid, g in rows.groupby("class_id", sort=True):
        dates = g["seized_on"][g["seized_on"] != ""]

        def join(col, g=g):
            return "; ".join(sorted(set(g[col]) - {""}))

        out.append({"class_id": cid, "exhibits": len(g), "new_exhibits": int(g["new"].sum()),
                    "seizures": g["seizure_id"].nunique(),
                    "first_seized": dates.min() if len(dates) else "",
                    "last_seized": dates.max() if len(dates) else "",
                    "areas": join("area"), "forces": join("force"), "drugs": join("drug"),
                    "levels": join("level"), "cutting_groups": g["cutting_group"].nunique(),
                    "distribution_groups": g["distribution_group"].nunique(), "spread": 0.05,
                    "status": (status or {}).get(cid, "grew" if g["new"].any() else "kept")})
    return pd.DataFrame(out)


def timeline(rows: pd.DataFrame) -> pd.DataFrame:
    dated = rows[rows["seized_on"] != ""]
    q = pd.to_datetime(dated["seized_on"]).dt.to_period("Q").astype(str)
    return (dated.assign(quarter=q.to_numpy()).groupby(["class_id", "quarter"]).size()
            .rename("exhibits").reset_index())


def links_within(rows: pd.DataFrame, rng) -> pd.DataFrame:
    """Each new exhibit linked to up to three other members of its class."""
    out = []
    for cid, g in rows.groupby("class_id"):
        ids = g["exhibit_id"].tolist()
        for a in g.loc[g["new"], "exhibit_id"]:
            for b in [x for x in ids if x != a][:3]:
                out.append({"exhibit_a": a, "exhibit_b": b, "score": float(rng.uniform(0, 0.02)),
                            "metric": "cosine", "pretreatment": "sum_std",
                            "log10_lr": float(rng.uniform(0, 5)), "adulterant_similarity": 1.0,
                            "packaging_similarity": np.nan, "same_cut": bool(rng.random() < .5),
                            "same_distribution": bool(rng.random() < .2), "same_class": True})
    columns = ["exhibit_a", "exhibit_b", "score", "metric", "pretreatment", "log10_lr",
               "adulterant_similarity", "packaging_similarity", "same_cut", "same_distribution",
               "same_class"]
    return pd.DataFrame(out, columns=columns)


def result_of(rows: pd.DataFrame, library_rows: pd.DataFrame | None = None, links=None,
              events=None, status=None, library_exhibits: int = 1_000_000):
    """A LinkResult-like object: ``rows`` the exhibits of the touched classes, ``library_rows``
    (default ``rows``) every exhibit, for the class table and timeline."""
    lib = rows if library_rows is None else library_rows
    counts = lib["class_id"].value_counts()
    in_table = set(counts[counts >= 2].index) | set(rows["class_id"])
    table_rows = lib[lib["class_id"].isin(in_table)]
    links = links_within(rows, np.random.default_rng(1)) if links is None else links
    events = events if events is not None else pd.DataFrame(
        {"date": ["2025-09-30"], "event": ["new"], "class_id": [rows["class_id"].iloc[-1]],
         "related": [""], "reason": ["no class within the cut"]})
    summary = {"exhibits_considered": len(lib), "exhibits_new": int(rows["new"].sum()),
               "links": len(links), "classes": lib["class_id"].nunique(),
               "classes_touched": rows["class_id"].nunique(), "largest_class": int(counts.max()),
               "same_cut_links": int(links["same_cut"].sum()),
               "same_distribution_links": int(links["same_distribution"].sum()),
               "settings": {"metric": "cosine", "pretreatment": "sum_std", "threshold": 0.0123,
                            "search": {"threshold": 0.0123, "per_search": 0.01,
                                       "per_pair": 0.01 / (library_exhibits - 1),
                                       "library_exhibits": library_exhibits,
                                       "method": "tail extrapolation (exponent 3.10)"},
                            "class_cut": 0.05},
               "timings_s": {"search": 1.5, "classes": 0.4}}
    return SimpleNamespace(links=links, classes=rows.reset_index(drop=True),
                           class_table=class_table(table_rows, status),
                           timeline=timeline(table_rows), events=events, summary=summary)


def exhibit(eid, cid, sid, area="Hackney", date="2025-01-10", new=False, level="3", group=1):
    return {"exhibit_id": eid, "class_id": cid, "cutting_group": f"{cid}.{group}",
            "distribution_group": f"{cid}.{group}.1", "seizure_id": sid, "area": area,
            "force": "Met", "drug": "crack", "seized_on": date, "seizure_type": "TP", "flags": "",
            "level": level, "new": new}


@pytest.fixture
def small():
    """C1: S1 (E1, E2), S2 (E3 new); C2: S2 (E4), S3 (E5 new); C3: S4 (E6 new, alone).
    Drawn: classes C1, C2; seizures S1, S2, S3; edges C1-S1, C1-S2, C2-S2, C2-S3."""
    rows = pd.DataFrame([
        exhibit("E1", "C1", "S1", area=EVIL, date="2024-11-02"),
        exhibit("E2", "C1", "S1", area=EVIL, date="2024-11-02", group=2),
        exhibit("E3", "C1", "S2", date="2025-09-01", new=True),
        exhibit("E4", "C2", "S2", date="2025-09-01"),
        exhibit("E5", "C2", "S3", area=FORMULA, date="2025-09-20", new=True, level=""),
        exhibit("E6", "C3", "S4", date="2025-09-21", new=True)], columns=CLASS_COLUMNS)
    return result_of(rows, status={"C1": "grew", "C2": "grew", "C3": "new"})


def make_result(n_classes=120, n_new=300, seed=0, library_exhibits=1_000_000):
    """A daily run: ``n_new`` new exhibits, most joining existing classes (with histories since
    2022), some starting classes of their own."""
    rng = np.random.default_rng(seed)
    areas = [f"Area {k}" for k in range(24)]
    rows, n, s = [], 0, 0
    for c in range(n_classes):
        cid = f"C{c + 1:06d}"
        size = int(min(2 + rng.pareto(1.2) * 4, 400))
        home = rng.choice(len(areas), 3, replace=False)
        while size > 0:
            k = int(min(size, rng.integers(1, 4)))
            date = (pd.Timestamp("2022-01-01") + pd.Timedelta(days=int(rng.integers(0, 1360))))
            area = areas[int(rng.choice(home))] if rng.random() < .85 else \
                areas[int(rng.integers(len(areas)))]
            for _ in range(k):
                rows.append(exhibit(f"E{n}", cid, f"S{s}", area=area, date=date.strftime("%Y-%m-%d"),
                                    level=str(rng.choice(["1", "2", "3", ""])),
                                    group=int(rng.integers(1, 4))))
                n += 1
            s += 1
            size -= k
    lib = pd.DataFrame(rows, columns=CLASS_COLUMNS)
    sizes = lib["class_id"].value_counts()
    new_rows, fresh = [], 0
    while len(new_rows) < n_new:
        date = (pd.Timestamp("2025-09-16") + pd.Timedelta(days=int(rng.integers(0, 14))))
        if rng.random() < .25:
            cid = f"C{n_classes + 1 + fresh:06d}"
            fresh += 1
        else:
            cid = str(rng.choice(sizes.index, p=(sizes / sizes.sum()).to_numpy()))
        k = int(min(rng.integers(1, 4), n_new - len(new_rows)))
        area = areas[int(rng.integers(len(areas)))]
        for _ in range(k):
            new_rows.append(exhibit(f"N{len(new_rows)}", cid, f"S{s}", area=area,
                                    date=date.strftime("%Y-%m-%d"), new=True))
        s += 1
    lib = pd.concat([lib, pd.DataFrame(new_rows, columns=CLASS_COLUMNS)], ignore_index=True)
    touched = set(lib.loc[lib["new"], "class_id"])
    rows = lib[lib["class_id"].isin(touched)]
    status = {c: ("new" if c > f"C{n_classes:06d}" else "grew") for c in touched}
    return result_of(rows, lib, status=status, library_exhibits=library_exhibits)


# --- GraphML -----------------------------------------------------------------------------


def test_graphml_loads_in_networkx_with_the_expected_nodes_and_edges(small, tmp_path):
    nx = pytest.importorskip("networkx")
    info = write_class_graphml(tmp_path / "c.graphml", small)
    g = nx.read_graphml(tmp_path / "c.graphml")
    assert sorted(g.nodes) == ["class:C1", "class:C2", "seizure:S1", "seizure:S2", "seizure:S3"]
    assert {frozenset(e) for e in g.edges} == {
        frozenset(e) for e in [("class:C1", "seizure:S1"), ("class:C1", "seizure:S2"),
                               ("class:C2", "seizure:S2"), ("class:C2", "seizure:S3")]}
    c1 = g.nodes["class:C1"]
    assert (c1["kind"], c1["exhibits"], c1["new_exhibits"], c1["seizures"]) == ("class", 3, 1, 2)
    assert (c1["date"], c1["last_seized"], c1["status"]) == ("2024-11-02", "2025-09-01", "grew")
    s1 = g.nodes["seizure:S1"]
    assert (s1["kind"], s1["exhibits"], s1["new"], s1["date"]) == ("seizure", 2, False,
                                                                   "2024-11-02")
    assert g.nodes["seizure:S3"]["new"] is True
    edge = g.edges["class:C1", "seizure:S1"]
    assert (edge["exhibits"], edge["date"], edge["cutting_groups"]) == (2, "2024-11-02",
                                                                        "C1.1; C1.2")
    # one class of a single exhibit (C3) is counted, not drawn
    assert (info["classes_shown"], info["classes_single_exhibit"], info["edges"]) == (2, 1, 4)


def test_graphml_is_well_formed_without_networkx(small, tmp_path):
    write_class_graphml(tmp_path / "c.graphml", small)
    root = ET.parse(tmp_path / "c.graphml").getroot()
    graph = root.find(f"{GRAPHML}graph")
    assert len(graph.findall(f"{GRAPHML}node")) == 5
    assert len(graph.findall(f"{GRAPHML}edge")) == 4


def test_export_text_is_escaped_in_graphml(small, tmp_path):
    write_class_graphml(tmp_path / "c.graphml", small)
    text = (tmp_path / "c.graphml").read_text()
    assert EVIL not in text and "&lt;script&gt;" in text
    root = ET.parse(tmp_path / "c.graphml").getroot()
    keys = {k.get("id"): k.get("attr.name") for k in root.findall(f"{GRAPHML}key")}
    s1 = next(n for n in root.iter(f"{GRAPHML}node") if n.get("id") == "seizure:S1")
    values = {keys[d.get("key")]: d.text for d in s1.findall(f"{GRAPHML}data")}
    assert values["area"] == EVIL                       # the text itself survives the round trip


def test_graphml_is_deterministic_whatever_the_row_order(small, tmp_path):
    write_class_graphml(tmp_path / "a.graphml", small)
    shuffled = SimpleNamespace(**{**vars(small), "classes": small.classes.sample(
        frac=1, random_state=3).reset_index(drop=True)})
    write_class_graphml(tmp_path / "b.graphml", shuffled)
    assert (tmp_path / "a.graphml").read_bytes() == (tmp_path / "b.graphml").read_bytes()


# --- i2 ----------------------------------------------------------------------------------


def test_i2_files_neutralise_formula_cells_and_carry_dates(small, tmp_path):
    write_class_i2(tmp_path / "ent.csv", tmp_path / "lnk.csv", small)
    with open(tmp_path / "ent.csv", newline="") as fh:
        entities = list(csv.DictReader(fh))
    with open(tmp_path / "lnk.csv", newline="") as fh:
        links = list(csv.DictReader(fh))
    s3 = next(e for e in entities if e["Entity ID"] == "seizure:S3")
    assert s3["Area"] == "'" + FORMULA                   # a spreadsheet shows it, never runs it
    assert all(not v.startswith("=") for row in entities + links for v in row.values())
    assert {e["Entity Type"] for e in entities} == {"Chemical class", "Seizure"}
    assert len(entities) == 5 and len(links) == 4
    c1_s1 = next(row for row in links if (row["From Entity ID"], row["To Entity ID"])
                 == ("class:C1", "seizure:S1"))
    assert (c1_s1["Date"], c1_s1["Exhibits"]) == ("2024-11-02", "2")
    c1 = next(e for e in entities if e["Entity ID"] == "class:C1")
    assert (c1["Date"], c1["Last Seized"], c1["Exhibits"]) == ("2024-11-02", "2025-09-01", "3")


# --- what is left out --------------------------------------------------------------------


def test_classes_beyond_the_cap_are_counted_and_noted(tmp_path):
    result = make_result(n_classes=60, n_new=200, seed=2)
    ranked = class_network(result, max_classes=10_000)
    drawn = len(ranked.classes)
    info = write_class_graphml(tmp_path / "c.graphml", result, max_classes=10)
    assert info["classes_shown"] == 10
    assert info["classes_omitted"] == drawn - 10 > 0
    assert f"{drawn - 10:,} classes" in info["note"] and "left out" in info["note"]
    # the drawn ten are those with the most new exhibits
    shown = set(class_network(result, max_classes=10).classes["class_id"])
    everything = ranked.classes.set_index("class_id")["new_exhibits"]
    assert everything[list(shown)].min() >= everything.drop(list(shown)).max()


def test_page_notes_what_the_network_leaves_out():
    result = make_result(n_classes=150, n_new=300, seed=1)
    net = class_network(result, max_classes=10_000)
    assert len(net.classes) > 40                    # more touched classes than the figure draws
    html = link_report(result, None)
    assert f"{len(net.classes) - 40:,} classes" in html and "are left out" in html


def test_seizure_budget_keeps_small_classes_whole():
    assert waterfill(np.array([2, 3, 50]), 30) == 25
    assert waterfill(np.array([2, 3, 5]), 100) == 5
    result = make_result(n_classes=60, n_new=120, seed=4)
    net = class_network(result, max_classes=40, max_seizures=120, context_seizures=5)
    assert len(net.edges) <= 120 and net.seizures_not_shown > 0
    assert set(net.edges["class_id"]) == set(net.classes["class_id"])    # each keeps some


# --- the page ----------------------------------------------------------------------------


def test_page_escapes_export_text_and_is_self_contained(small):
    html = link_report(small, None)
    assert EVIL not in html and "&lt;script&gt;" in html
    assert 'src="http' not in html and "<link" not in html     # figures inline, no fetches

    class Parser(HTMLParser):
        def __init__(self):
            super().__init__()
            self.headings, self._h2, self.images = [], False, 0

        def handle_starttag(self, tag, attrs):
            self._h2 = tag == "h2"
            self.images += tag == "img"

        def handle_data(self, data):
            if self._h2:
                self.headings.append(data)
                self._h2 = False

    p = Parser()
    p.feed(html)
    assert p.headings[:5] == ["Summary", "Classes", "Timeline", "Classes by area", "Network"]
    assert p.images >= 2


def test_summary_states_the_search_threshold(small):
    html = link_report(small, None)
    assert ("threshold 0.0123 (cosine after sum_std): a search against 1,000,000 exhibits "
            "expects 0.01 adventitious links per searched exhibit") in html.lower()


def test_class_table_lists_touched_classes_first():
    result = make_result(n_classes=80, n_new=60, seed=3)
    html = link_report(result, None)
    ct = result.class_table
    touched = set(ct.loc[ct["new_exhibits"] > 0, "class_id"])
    section = html.split('<section id="classes">')[1].split("</section>")[0]
    first, second = section.split("</table>")[:2]

    def listed(text):
        return {c for c in ct["class_id"] if f">{c}</td>" in text}

    assert listed(first) == touched
    assert listed(second) and not listed(second) & touched


# --- the timeline ------------------------------------------------------------------------


def test_quarterly_turnover_matches_hand_counts():
    """A: Q1 Q2 Q4; B: Q2; C: Q1 Q3; D: Q3 Q4 (2025), and a zero row that does not count.
    gained: first quarter; kept: seen, and seen before and after; lost: the quarter after the
    last, within the data."""
    t = pd.DataFrame({"class_id": ["A", "A", "A", "B", "C", "C", "D", "D", "B"],
                      "quarter": ["2025Q1", "2025Q2", "2025Q4", "2025Q2", "2025Q1", "2025Q3",
                                  "2025Q3", "2025Q4", "2025Q4"],
                      "exhibits": [3, 1, 2, 4, 1, 1, 2, 5, 0]})
    got = quarterly_turnover(t.sample(frac=1, random_state=0))
    assert got["quarter"].tolist() == ["2025Q1", "2025Q2", "2025Q3", "2025Q4"]
    assert got["seen"].tolist() == [2, 2, 2, 2]
    assert got["gained"].tolist() == [2, 1, 1, 0]
    assert got["kept"].tolist() == [0, 1, 0, 0]
    assert got["lost"].tolist() == [0, 0, 1, 1]


def test_quarterly_turnover_fills_empty_quarters():
    t = pd.DataFrame({"class_id": ["A", "A", "B"], "quarter": ["2024Q4", "2025Q3", "2025Q1"],
                      "exhibits": [1, 1, 1]})
    got = quarterly_turnover(t).set_index("quarter")
    assert list(got.index) == ["2024Q4", "2025Q1", "2025Q2", "2025Q3"]
    assert got.loc["2025Q1", "kept"] == 0               # A not seized in 2025Q1: not kept
    assert got.loc["2025Q2", ["seen", "lost"]].tolist() == [0, 1]      # B lost after 2025Q1


# --- edge cases and the calibration page ---------------------------------------------------


def test_a_run_with_nothing_linked_still_writes_every_output(tmp_path):
    """Two new exhibits, each its own class, no links, no events, no dates."""
    rows = pd.DataFrame([exhibit("E1", "C1", "S1", date="", new=True),
                         exhibit("E2", "C2", "S2", date="", new=True)], columns=CLASS_COLUMNS)
    result = result_of(rows, links=links_within(rows.iloc[:0], None),
                       events=pd.DataFrame(columns=["date", "event", "class_id", "related",
                                                    "reason"]))
    html = link_report(result, None)
    assert "No class has a dated exhibit" in html and "No link was reported" in html
    assert "2 classes of a single exhibit are not drawn" in html
    info = write_class_graphml(tmp_path / "c.graphml", result)
    assert info["classes_shown"] == 0
    root = ET.parse(tmp_path / "c.graphml").getroot()
    assert not list(root.iter(f"{GRAPHML}node"))
    write_class_i2(tmp_path / "e.csv", tmp_path / "l.csv", result)
    assert (tmp_path / "l.csv").read_text().startswith("From Entity ID,")


def test_without_new_exhibits_the_network_shows_the_largest_classes(small):
    rows = small.classes.assign(new=False)
    result = result_of(rows)
    net = class_network(result, max_classes=1)
    assert net.basis == "all" and net.classes["class_id"].tolist() == ["C1"]     # 3 exhibits
    assert "No exhibit of this run is new" in net.note()


def test_calibration_report_is_written_escaped(tmp_path):
    from profiling.calibrate import fit_lr
    from profiling.link.report import write_calibration_report

    rng = np.random.default_rng(0)
    dl, du = rng.gamma(2, 0.01, 400), rng.gamma(8, 0.02, 400)
    model = fit_lr(dl, du, "logistic")
    q = np.linspace(0, 1, 101)
    cal = SimpleNamespace(
        combinations=[{"pretreatment": EVIL, "metric": "cosine", "auc": 0.99, "best": True},
                      {"pretreatment": "none", "metric": "cosine", "auc": 0.9, "best": False}],
        chosen={"pretreatment": EVIL, "metric": "cosine", "auc": 0.99, "threshold": 0.05,
                "fpr": 0.01, "target_fpr": 0.01, "fnr": 0.1, "cllr": 0.2, "cllr_min": 0.15},
        layers={"cutting": {"auc": 0.8, "threshold": 0.2, "fpr": 0.01, "fnr": 0.3,
                            "n_linked": 10, "n_unlinked": 20}},
        folded={}, population={"n_linked": 400, "n_unlinked": 400},
        lr={**model.as_json(), "distances_linked": np.quantile(dl, q).tolist(),
            "distances_unlinked": np.quantile(du, q).tolist()})
    write_calibration_report(tmp_path / "cal.html", cal)
    text = (tmp_path / "cal.html").read_text()
    assert EVIL not in text and "Tippett plot" in text and text.count("<img") == 2
