"""Outputs of `profile link` and `profile calibrate`: the machine-readable files SPEC names and
the HTML pages an analyst reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.export import write_csv
from profiling.files import private_open
from profiling.linkchart import strength, write_graphml, write_i2
from profiling.report import esc, figure, matplotlib_figure, page, table, write_page

LINK_COLUMNS = ["exhibit_a", "exhibit_b", "score", "metric", "pretreatment", "log10_lr",
                "adulterant_similarity", "packaging_similarity", "same_cut", "same_distribution"]
CLASS_COLUMNS = ["exhibit_id", "class_id", "cutting_group", "distribution_group"]
MAX_DRAWN_LINKS = 5000


def write_link_outputs(out: Path, result, data, calibration) -> None:
    links = result.links if list(result.links.columns) == LINK_COLUMNS \
        else result.links[LINK_COLUMNS]                # (a copy; link_table's order needs none)
    write_csv(out / "links.csv", links)
    write_csv(out / "classes.csv", result.classes[CLASS_COLUMNS])
    write_csv(out / "class_events.csv", result.events)
    with private_open(out / "summary.json") as fh:
        json.dump(result.summary, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    nodes = result.classes.set_index("exhibit_id")
    grades = strength(links["log10_lr"].to_numpy())
    write_graphml(out / "links.graphml", nodes, links, grades)
    write_i2(out / "i2_entities.csv", out / "i2_links.csv", nodes, links, grades)
    write_page(out / "report.html", link_report(result, calibration))


def class_table(classes: pd.DataFrame) -> pd.DataFrame:
    """One row per class with links: members, seizures, areas, levels, dates, groups."""
    rows = []
    for cid, g in classes.groupby("class_id", sort=True):
        if len(g) < 2:
            continue
        dates = g["seized_on"][g["seized_on"] != ""]
        rows.append({
            "class_id": cid, "exhibits": len(g), "seizures": g["seizure_id"].nunique(),
            "areas": "; ".join(sorted(set(g["area"]) - {""})),
            "seizure types": "; ".join(sorted(set(g["seizure_type"]) - {""})),
            "first seized": dates.min() if len(dates) else "",
            "last seized": dates.max() if len(dates) else "",
            "cutting groups": g["cutting_group"].nunique(),
            "distribution groups": g["distribution_group"].nunique(),
            "flagged exhibits": int((g["flags"] != "").sum()),
        })
    frame = pd.DataFrame(rows)
    return frame.sort_values(["exhibits", "class_id"], ascending=[False, True]) if len(frame) else frame


def _network_figure(result) -> str:
    """Classes with links drawn as clusters: members on a circle, links as lines."""
    classes = result.classes
    sizes = classes["class_id"].value_counts()
    shown = sorted(sizes[sizes > 1].index)[:60]
    fig, ax = matplotlib_figure(8, 6)
    if not shown:
        ax.text(0.5, 0.5, "no links", ha="center")
        ax.axis("off")
        return figure(fig, "network of linked exhibits")
    pos = {}
    cols = int(np.ceil(np.sqrt(len(shown))))
    for k, cid in enumerate(shown):
        members = classes.loc[classes["class_id"] == cid, "exhibit_id"].tolist()
        cx, cy = (k % cols) * 3.0, -(k // cols) * 3.0
        angle = np.linspace(0, 2 * np.pi, len(members), endpoint=False)
        for m, a in zip(members, angle):
            pos[m] = (cx + np.cos(a), cy + np.sin(a))
        ax.text(cx, cy, str(cid), ha="center", va="center", fontsize=6)
    from matplotlib.collections import LineCollection

    links = result.links
    shown_links = links[links["exhibit_a"].isin(pos.keys()) & links["exhibit_b"].isin(pos.keys())]
    if len(shown_links) > MAX_DRAWN_LINKS:      # a picture, not an inventory: every k-th link
        shown_links = shown_links.iloc[:: int(np.ceil(len(shown_links) / MAX_DRAWN_LINKS))]
    segments = [(pos[a], pos[b]) for a, b in zip(shown_links["exhibit_a"], shown_links["exhibit_b"])]
    colours = np.where(shown_links["same_distribution"], "#c0392b",
                       np.where(shown_links["same_cut"], "#e67e22", "#95a5a6"))
    ax.add_collection(LineCollection(segments, colors=list(colours), linewidths=0.5))
    xy = np.array(list(pos.values()))
    ax.scatter(xy[:, 0], xy[:, 1], s=6, color="#2c3e50", zorder=3)
    ax.set_title("Classes with links (grey: chemical; orange: same cut; red: same distribution)",
                 fontsize=8)
    ax.axis("off")
    return figure(fig, "network of linked exhibits")


def _distribution_figure(linked: np.ndarray, unlinked: np.ndarray, threshold: float,
                         title: str) -> str:
    fig, ax = matplotlib_figure()
    if len(linked) and len(unlinked):
        hi = float(np.nanmax(np.r_[linked, unlinked]))
        bins = np.linspace(0, hi if hi > 0 else 1, 60)
        ax.hist(np.clip(unlinked, 0, hi), bins=bins, alpha=0.6, density=True, label="unlinked pairs")
        ax.hist(np.clip(linked, 0, hi), bins=bins, alpha=0.6, density=True, label="linked pairs")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel("distance (lower = more similar)")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return figure(fig, title)


def link_report(result, calibration) -> str:
    s = result.summary
    settings = s["settings"]
    threshold_text = f"{settings['threshold']:.6g}"
    summary = (
        f"<p>{s['exhibits_considered']} exhibits with a chemical profile were considered "
        f"({s['exhibits_new']} new; {s['exhibits_without_profile']} without a profile were not). "
        f"{s['links']} chemical links at distance &le; {esc(threshold_text)} "
        f"({esc(settings['metric'])} after {esc(settings['pretreatment'])}, threshold from "
        f"{esc(settings['threshold_source'])}); {s['classes_with_links']} classes with links, "
        f"largest {s['largest_class']} exhibits; {s['same_cut_links']} links share the cut "
        f"(same lot) and {s['same_distribution_links']} also the packaging (same dealer).</p>")
    if calibration is not None:
        c = calibration.chosen
        summary += (f"<p>Calibration: AUC {c['auc']:.3f} on {calibration.population['n_linked']} "
                    f"linked and {calibration.population['n_unlinked']} unlinked pairs; false "
                    f"positives {c['fpr']:.2%} (target {c['target_fpr']:.2%}), false negatives "
                    f"{c['fnr']:.2%}; Cllr {c['cllr']:.3f} (minimum {c['cllr_min']:.3f}).</p>")
    events = s.get("class_events") or {}
    if events:
        summary += "<p>Class changes this run: " + ", ".join(
            f"{esc(k)} {v}" for k, v in sorted(events.items())) + ".</p>"
    ct = class_table(result.classes)
    flagged = result.classes[result.classes["flags"] != ""][["exhibit_id", "class_id", "flags"]]
    sections = [
        ("Summary", summary),
        ("Classes", table(ct) if len(ct) else "<p>No class has more than one exhibit.</p>"),
        ("Network", _network_figure(result)),
        ("Score distributions", _distribution_figure(
            result.scores_linked, result.scores_unlinked, settings["threshold"],
            "Calibration populations (quantiles) and the threshold")
         if len(result.scores_linked) else "<p>No calibration populations (threshold given).</p>"),
        ("Links", table(result.links.nsmallest(200, "score", keep="first")[
            ["exhibit_a", "exhibit_b", "score", "log10_lr", "same_cut", "same_distribution"]])),
        ("Evidence flags", table(flagged) if len(flagged) else
         "<p>No linked exhibit carries an evidence flag.</p>"),
    ]
    return page("Linked-seizure report", sections)


def write_calibration_report(path: Path, cal) -> None:
    combos = pd.DataFrame(cal.combinations).sort_values("auc", ascending=False)
    combos["best"] = combos["best"].map({True: "★ best", False: ""})
    c = cal.chosen
    layers = pd.DataFrame([{"layer": k, **{kk: v.get(kk) for kk in ("auc", "threshold", "fpr",
                                                                       "fnr", "n_linked", "n_unlinked")}}
                           for k, v in cal.layers.items()])
    f = cal.folded
    folded = (f"<p>Folding adulterants and packaging into the chemical score raises the AUC on "
              f"same-seizure pairs from {f['auc_profile']:.3f} to {f['auc_folded']:.3f}, but of the "
              f"{f['cross_seizure_links_profile']} pairs of <em>different</em> seizures that the "
              f"profile alone links (material of one batch handled by different dealers), the "
              f"folded score keeps only {f['share_kept_by_folded']:.1%}. The layers therefore "
              f"stay separate.</p>") if f else ""
    dl = np.asarray(cal.lr.get("distances_linked", []))
    du = np.asarray(cal.lr.get("distances_unlinked", []))
    tippett = ""
    if len(dl) and len(du):
        from profiling.calibrate import LRModel

        model = LRModel(cal.lr["kind"], {k: v for k, v in cal.lr.items() if k != "kind"})
        fig, ax = matplotlib_figure()
        for d, label in ((dl, "same source (linked)"), (du, "different source (unlinked)")):
            lr = np.sort(model.log10_lr(d))
            ax.plot(lr, 1 - np.arange(len(lr)) / len(lr), label=label)
        ax.set_xlabel("log10 LR")
        ax.set_ylabel("proportion of LRs above")
        ax.set_title("Tippett plot (population quantiles)", fontsize=9)
        ax.legend(fontsize=7)
        tippett = figure(fig, "Tippett plot")
    sections = [
        ("Chosen comparison", f"<p>{esc(c['pretreatment'])} + {esc(c['metric'])}: AUC "
         f"{c['auc']:.4f}; threshold {c['threshold']:.6g} at a false-positive rate of "
         f"{c['fpr']:.3%} (target {c['target_fpr']:.2%}); false negatives {c['fnr']:.2%}; "
         f"Cllr {c['cllr']:.3f}, Cllr-min {c['cllr_min']:.3f}.</p>"),
        ("Population", table(pd.DataFrame([cal.population]))),
        ("Every pretreatment and metric", table(combos)),
        ("Layers", table(layers)),
        ("Why adulterants and packaging are not in the chemical score", folded),
        ("Score distributions", _distribution_figure(dl, du, c["threshold"],
                                                     "Linked and unlinked distances (quantiles)")),
        ("Tippett plot", tippett),
    ]
    write_page(path, page("Calibration report", sections))
