"""`profile link` end to end: outputs as SPEC names them, class ids stable across runs and growth,
the report escaped and well formed, query."""

import csv
import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from .conftest import run_cli

COMPOUNDS = ["tropacocaine", "norcocaine", "n_formylcocaine", "cis_cinnamoylcocaine",
             "trans_cinnamoylcocaine", "trimethoxycocaine", "benzoylecgonine", "truxillines",
             "cuscohygrine", "hygrine"]
EVIL = '<script>alert("x")</script>'
COLOURS = ["white", "clear", "blue", "black", "red", "green", "yellow", "pink", "purple", "orange",
           "brown", "grey", "silver"]
MATERIALS = ["cling film", "plastic bag", "paper wrap", "foil", "capsule", "balloon"]
CLOSURES = ["knotted", "heat sealed", "self seal", "twisted"]


def make_export(path, seed=0, batches=8, start=0):
    """Batches -> lots (own cut) -> dealers (own packaging) -> seizures of 1-3 exhibits."""
    rng = np.random.default_rng(seed)
    adulterants = ["levamisole", "phenacetin", "lidocaine", "benzocaine", "caffeine", "diltiazem"]
    rows = []
    n = start
    for b in range(batches):
        signature = rng.normal(0, 1.0, len(COMPOUNDS))
        for lot in range(2):
            cut = rng.choice(adulterants, 2, replace=False)
            for dealer in range(2):
                pack = " ".join([rng.choice(COLOURS), rng.choice(MATERIALS), rng.choice(CLOSURES)])
                for s in range(3):
                    sid = f"S{seed}-{b}-{lot}-{dealer}-{s}"
                    for _ in range(int(rng.integers(1, 4))):
                        area = rng.normal(signature, 0.12) + np.log(rng.uniform(500, 2000))
                        rows.append({"exhibit_id": f"E{n}", "seizure_id": sid, "area": f"A{dealer}",
                                     "seized_on": "2025-01-01", "drug": "crack",
                                     "weight_before_g": "0.2 g", "purity": "35%",
                                     "adulterants": ", ".join(cut), "packaging": pack,
                                     "notes": EVIL if n == start else "",
                                     **{f"p_{c}": f"{v:.2f}" for c, v in zip(COMPOUNDS, np.exp(area))},
                                     "batch": f"{seed}-{b}", "lot": f"{seed}-{b}-{lot}",
                                     "dealer": f"{seed}-{b}-{lot}-{dealer}"})
                        n += 1
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    d = tmp_path_factory.mktemp("link")
    export = make_export(d / "e.csv")
    r = run_cli("link", export, "--library", d / "lib.h5", "--out", d / "out", "--as-of", "2026-01-01")
    assert r.returncode == 0, r.stderr
    return d


def test_outputs_have_the_fixed_names_and_columns(linked):
    import networkx as nx

    out = linked / "out"
    for name in ("links.csv", "classes.csv", "class_table.csv", "class_timeline.csv",
                 "class_events.csv", "summary.json", "report.html", "links.graphml",
                 "i2_entities.csv", "i2_links.csv"):
        assert (out / name).exists()
    header = next(csv.reader((out / "links.csv").open()))
    assert header == ["exhibit_a", "exhibit_b", "score", "metric", "pretreatment", "log10_lr",
                      "adulterant_similarity", "packaging_similarity", "same_cut",
                      "same_distribution", "same_class"]
    classes = pd.read_csv(out / "classes.csv")
    assert list(classes.columns)[:4] == ["exhibit_id", "class_id", "cutting_group",
                                         "distribution_group"]
    export = pd.read_csv(linked / "e.csv")
    assert sorted(classes["exhibit_id"]) == sorted(export["exhibit_id"])   # singletons included
    summary = json.loads((out / "summary.json").read_text())
    links = pd.read_csv(out / "links.csv")
    assert summary["links"] == len(links)
    # each pair once; at most --top (10) links an exhibit lists, so at most 10 per exhibit
    # counted once per pair
    assert not links.duplicated(["exhibit_a", "exhibit_b"]).any()
    assert len(links) <= 10 * len(classes)
    assert {"metric", "pretreatment", "threshold", "search", "class_cut"} <= set(summary["settings"])
    assert summary["settings"]["search"]["per_search"] == 0.01
    assert summary["calibration"]["fpr"] <= 0.01
    assert "timings_s" in summary
    table = pd.read_csv(out / "class_table.csv")
    assert table["exhibits"].sum() == len(classes)                  # every class, one row each
    assert set(table["class_id"]) == set(classes["class_id"])
    # the link chart: classes and seizures, an edge per (class, seizure) of classes of 2+
    g = nx.read_graphml(out / "links.graphml")
    kinds = nx.get_node_attributes(g, "kind")
    multi = classes.merge(export[["exhibit_id", "seizure_id"]]).groupby("class_id").filter(
        lambda c: len(c) >= 2)
    pairs = multi[["class_id", "seizure_id"]].drop_duplicates()
    assert sum(1 for k in kinds.values() if k == "class") == multi["class_id"].nunique()
    assert g.number_of_edges() == len(pairs)
    assert all(kinds[a] != kinds[b] for a, b in g.edges())
    i2_links = pd.read_csv(out / "i2_links.csv")
    assert len(i2_links) == len(pairs)
    assert len(pd.read_csv(out / "i2_entities.csv")) == g.number_of_nodes()


def test_links_against_known_truth(linked):
    truth = pd.read_csv(linked / "e.csv").set_index("exhibit_id")
    links = pd.read_csv(linked / "out" / "links.csv")
    assert len(links) > 100
    same_batch = truth.loc[links.exhibit_a, "batch"].to_numpy() == truth.loc[links.exhibit_b, "batch"].to_numpy()
    assert same_batch.mean() >= 0.95
    cut = links[links.same_cut]
    assert len(cut) and (truth.loc[cut.exhibit_a, "lot"].to_numpy() == truth.loc[cut.exhibit_b, "lot"].to_numpy()).mean() >= 0.9
    dist = links[links.same_distribution]
    assert len(dist) and (truth.loc[dist.exhibit_a, "dealer"].to_numpy() ==
                          truth.loc[dist.exhibit_b, "dealer"].to_numpy()).mean() >= 0.9


def test_class_ids_stable_across_runs_and_growth(linked, tmp_path):
    from profiling.link import read_classes

    lib = linked / "lib.h5"
    first = pd.read_csv(linked / "out" / "classes.csv")
    r = run_cli("link", "--library", lib, "--out", tmp_path / "again", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again" / "classes.csv").read_bytes() == (linked / "out" / "classes.csv").read_bytes()
    more = make_export(tmp_path / "more.csv", seed=1, batches=3, start=10_000)
    r = run_cli("link", more, "--library", lib, "--out", tmp_path / "grown", "--as-of", "2026-01-01")
    assert r.returncode == 0, r.stderr
    stored = read_classes(lib).set_index("exhibit_id")["class_id"]
    events = pd.read_csv(tmp_path / "grown" / "class_events.csv")
    merged = set(events.loc[events.event == "merge", "class_id"])
    merged |= {r for rel in events["related"].dropna() for r in str(rel).split(";")}
    before = first.set_index("exhibit_id")["class_id"]
    for exhibit, cid in before.items():
        if cid not in merged:
            assert stored[exhibit] == cid
    assert len(stored) == len(before) + len(pd.read_csv(more))
    # the day's classes.csv: every exhibit of every class a new exhibit is in, and no other
    grown = pd.read_csv(tmp_path / "grown" / "classes.csv")
    touched = set(grown.loc[grown["new"], "class_id"])
    assert set(grown["class_id"]) == touched
    assert len(grown) == int(stored.isin(touched).sum())
    assert set(grown.loc[grown["new"], "exhibit_id"]) == set(pd.read_csv(more)["exhibit_id"])


def test_report_is_escaped_and_well_formed(linked):
    text = (linked / "out" / "report.html").read_text()
    assert EVIL not in text                                 # never raw

    class Parser(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.headings, self._h2 = [], [], False

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self._h2 = tag == "h2"

        def handle_data(self, data):
            if self._h2:
                self.headings.append(data)
                self._h2 = False

    p = Parser()
    p.feed(text)
    assert "script" not in p.tags
    assert {"Summary", "Classes", "Timeline", "Classes by area", "Network", "Score distributions",
            "Evidence flags"} <= set(p.headings)
    assert p.tags.count("img") >= 2


def test_query_by_exhibit_and_by_export(linked, tmp_path):
    r = run_cli("query", "E5", "--library", linked / "lib.h5", "--top", "3", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["rank"] for x in rows] == [1, 2, 3] and all(x["exhibit_id"] != "E5" for x in rows)
    assert rows[0]["score"] <= rows[1]["score"] <= rows[2]["score"]
    truth = pd.read_csv(linked / "e.csv").set_index("exhibit_id")
    assert truth.loc[rows[0]["exhibit_id"], "batch"] == truth.loc["E5", "batch"]
    one = truth.reset_index().head(1).assign(exhibit_id="NEW1")
    one.to_csv(tmp_path / "q.csv", index=False)
    r = run_cli("query", tmp_path / "q.csv", "--library", linked / "lib.h5", "--top", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["exhibit_id"] == "E0"
    r = run_cli("query", "NOPE", "--library", linked / "lib.h5")
    assert r.returncode == 2 and "not in the library" in r.stderr


def test_link_without_library_and_with_given_threshold(tmp_path):
    export = make_export(tmp_path / "e.csv", batches=3)
    r = run_cli("link", export, "--out", tmp_path / "o", "--threshold", "0.01", "--metric",
                "pearson", "--pretreatment", "sum_4root", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["settings"]["threshold"] == 0.01 and summary["settings"]["metric"] == "pearson"
    links = pd.read_csv(tmp_path / "o" / "links.csv")
    assert set(links["metric"]) <= {"pearson"} and len(links)
    assert (links["same_class"] | (links["score"] <= 0.01)).all()   # a link: one class, or close


def test_each_deeper_layer_beats_the_profile_alone_at_its_level(linked):
    """Among pairs of one batch, the cut separates same-lot pairs better than the profile does,
    and packaging separates same-dealer pairs (inside a lot) better than the profile does."""
    from sklearn.metrics import roc_auc_score

    from profiling import similarity as sim
    from profiling.library import read_library
    from profiling.link import Layers, _pretreated, linkable, load_calibration

    lib = linked / "lib.h5"
    data, cal = read_library(lib), load_calibration(lib)
    p = linkable(data)
    truth = pd.read_csv(linked / "e.csv").set_index("exhibit_id")
    ours = data.records["exhibit_id"].iloc[p.rows].isin(truth.index).to_numpy()  # other tests grow it
    Xp = _pretreated(p, cal.chosen["pretreatment"], cal.reference_std)[ours]
    records = data.records.iloc[p.rows[ours]].reset_index(drop=True)
    truth = truth.loc[records["exhibit_id"]]
    i, j = np.triu_indices(len(records), k=1)
    batch, lot, dealer = (truth[c].to_numpy() for c in ("batch", "lot", "dealer"))
    layers = Layers.of(records)
    same_batch = batch[i] == batch[j]
    bi, bj = i[same_batch], j[same_batch]
    chem = sim.score_pairs(Xp, bi, bj, cal.chosen["metric"])
    same_lot = lot[bi] == lot[bj]
    auc_chem_lot = roc_auc_score(same_lot, -chem)
    auc_cut_lot = roc_auc_score(same_lot, -np.nan_to_num(layers.cut_distance(bi, bj), nan=1))
    assert auc_cut_lot > auc_chem_lot
    in_lot = same_lot
    li, lj = bi[in_lot], bj[in_lot]
    same_dealer = dealer[li] == dealer[lj]
    auc_chem_dealer = roc_auc_score(same_dealer, -chem[in_lot])
    auc_pack_dealer = roc_auc_score(same_dealer, -np.nan_to_num(layers.packaging_distance(li, lj), nan=1))
    assert auc_pack_dealer > auc_chem_dealer


def test_calibrate_command_writes_json_and_report(linked, tmp_path):
    r = run_cli("calibrate", linked / "lib.h5", "--out", tmp_path / "cal", "--fpr", "0.02",
                "--rule", "R2", "--json")
    assert r.returncode == 0, r.stderr
    cal = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert set(cal) >= {"population", "combinations", "chosen", "layers"}
    assert len(cal["combinations"]) == 36 and sum(c["best"] for c in cal["combinations"]) == 1
    assert {"pretreatment", "metric", "threshold", "fpr", "fnr", "cllr", "cllr_min"} <= set(cal["chosen"])
    assert cal["chosen"]["fpr"] <= 0.02 and cal["population"]["rule"] == "R2"
    assert set(cal["layers"]) == {"chemical", "cutting", "distribution"}
    assert cal["folded"]["auc_folded"] >= cal["folded"]["auc_profile"]
    html = (tmp_path / "cal" / "calibration.html").read_text()
    assert "Tippett plot" in html and "Why adulterants and packaging" in html
    r = run_cli("calibrate", linked / "lib.h5", "--out", tmp_path / "c2", "--rule", "R9")
    assert r.returncode == 2 and "population rule must be one of" in r.stderr


def test_precision_against_simulator_truth(tmp_path):
    """On the simulator's default network, at the calibrated 1 % false-positive threshold:
    chemical links >= 0.95 precise against same batch, same-cut links >= 0.9 against same lot,
    same-distribution links >= 0.9 against same dealer (over the pairs where the truth defines a
    lot or a dealer: import exhibits have no lot, middle-market ones no dealer)."""
    from profiling.link import run_link
    from profiling.simulate import simulate, write

    files = write(simulate(2500, seed=0), tmp_path / "sim")
    run_link([files["export"]], tmp_path / "lib.h5", tmp_path / "out", date="2026-01-01")
    truth = pd.read_csv(files["truth"], dtype=str, keep_default_na=False)
    truth = truth.drop_duplicates("exhibit_id").set_index("exhibit_id")
    links = pd.read_csv(tmp_path / "out" / "links.csv", dtype={"exhibit_a": str, "exhibit_b": str})
    assert len(links) > 1000
    for column, level, minimum in (("chemical", "batch_id", 0.95), ("same_cut", "lot_id", 0.9),
                                   ("same_distribution", "dealer_id", 0.9)):
        sel = links if column == "chemical" else links[links[column]]
        a = truth.loc[sel["exhibit_a"], level].to_numpy()
        b = truth.loc[sel["exhibit_b"], level].to_numpy()
        known = (a != "") & (b != "")
        assert known.sum() > 100, column
        assert (a[known] == b[known]).mean() >= minimum, column


def test_a_library_with_per_pair_links_is_refused_then_rebuilt(tmp_path):
    """A library of an earlier version keeps links pair by pair: `profile link` says how to
    relink it and changes nothing; with --rebuild it builds classes and drops the pairs."""
    import h5py

    from profiling.ingest import ingest
    from profiling.library import replace_groups, write_edges, write_lock

    from .conftest import AS_OF

    lib = tmp_path / "lib.h5"
    ingest([make_export(tmp_path / "e.csv", batches=3)], lib, as_of=AS_OF)
    with write_lock(lib):
        replace_groups(lib, {"links": lambda g: write_edges(
            g, np.array(["E0", "E1"], dtype=object), np.array([0]), np.array([1]),
            np.array([0.001]))})
    before = lib.read_bytes()
    r = run_cli("link", "--library", lib, "--out", tmp_path / "o")
    assert r.returncode == 2 and "--rebuild" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert lib.read_bytes() == before
    r = run_cli("link", "--library", lib, "--out", tmp_path / "o", "--rebuild", "--quiet")
    assert r.returncode == 0, r.stderr
    with h5py.File(lib) as f:
        assert "class_model" in f and ("links" not in f or len(f["links"]) == 0)
    assert len(pd.read_csv(tmp_path / "o" / "classes.csv")) > 0


def test_the_same_export_twice_changes_nothing_and_says_so(tmp_path):
    """The second run of one export finds only duplicates: no new exhibit, classes unchanged."""
    from profiling.link import read_classes

    export = make_export(tmp_path / "e.csv", batches=3)
    lib = tmp_path / "lib.h5"
    r = run_cli("link", export, "--library", lib, "--out", tmp_path / "a", "--quiet")
    assert r.returncode == 0, r.stderr
    before = read_classes(lib)
    r = run_cli("link", export, "--library", lib, "--out", tmp_path / "b", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["exhibits_new"] == 0 and summary["links"] == 0
    assert summary["ingest"]["duplicates"] == summary["ingest"]["read"]
    pd.testing.assert_frame_equal(read_classes(lib), before)


@pytest.mark.parametrize("option", [["--threshold", "5", "--metric", "pearson"],
                                    ["--metric", "hamming"], ["--per-search", "-1"],
                                    ["--class-cut", "0"], ["--class-cut", "nan"], ["--top", "0"]])
def test_options_that_make_no_sense_are_one_sentence_and_change_nothing(tmp_path, option):
    export = make_export(tmp_path / "e.csv", batches=2)
    r = run_cli("link", export, "--library", tmp_path / "lib.h5", "--out", tmp_path / "o",
                *option)
    assert r.returncode == 2, (option, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert option[0] in r.stderr
    assert not (tmp_path / "lib.h5").exists() and not (tmp_path / "o").exists()


def test_all_pairs_lists_every_pair_of_a_class_and_every_other_pair_within_the_threshold(tmp_path):
    """--all-pairs against scipy: the pairs of one class (from classes.csv) and the pairs of
    different classes whose Canberra distance (scipy pdist) is within the threshold."""
    from scipy.spatial.distance import pdist, squareform

    from profiling import similarity as sim
    from profiling.library import read_library
    from profiling.link import linkable

    export = make_export(tmp_path / "e.csv", batches=4)
    r = run_cli("link", export, "--library", tmp_path / "lib.h5", "--out", tmp_path / "o",
                "--metric", "canberra", "--pretreatment", "sum_std", "--all-pairs", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    t = summary["settings"]["threshold"]
    links = pd.read_csv(tmp_path / "o" / "links.csv")
    classes = pd.read_csv(tmp_path / "o" / "classes.csv").set_index("exhibit_id")["class_id"]
    got = set(zip(links.exhibit_a, links.exhibit_b))
    assert len(got) == len(links) == summary["links_all_pairs"]
    p = linkable(read_library(tmp_path / "lib.h5"))
    ids = read_library(tmp_path / "lib.h5").records["exhibit_id"].to_numpy()[p.rows]
    D = squareform(pdist(sim.pretreat(p.X, "sum_std"), "canberra"))
    cls = classes.reindex(ids).to_numpy()
    i, j = np.triu_indices(len(ids), k=1)
    expected = (cls[i] == cls[j]) | (D[i, j] <= t)
    want = {tuple(sorted((ids[a], ids[b]))) for a, b in zip(i[expected], j[expected])}
    assert {tuple(sorted(x)) for x in got} == want
    np.testing.assert_allclose(links["score"], [D[np.flatnonzero(ids == a)[0],
                                                  np.flatnonzero(ids == b)[0]]
                                                for a, b in zip(links.exhibit_a, links.exhibit_b)],
                               rtol=1e-9)
