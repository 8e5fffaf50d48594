"""The pages of the linking stage: the link report of a run (``report.html``) and the
calibration report (``calibration.html``).

The link report reads as classes: the summary (with what the threshold means for a search of
this library's size), the classes the new exhibits touched and the largest others, the class
timeline (per quarter: classes gained, kept and lost, as in Popovic et al.'s temporal analysis of
chemical classes; first and last seizure of each touched class), classes by area, a network of
classes and seizures, the score distributions with the threshold, and the class events.

Its size follows the run, not the library: every table and figure shows the classes the run
touched (a whole-library run: the largest), within the caps below, and says what it left out and
why. Every text from the data is HTML-escaped (:func:`profiling.report.esc`, :func:`table`) and
every figure is an inline PNG, so the page is one file that opens with no network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profiling.link.chart import ClassNetwork, class_network, ranked_classes
from profiling.report import esc, figure, matplotlib_figure, page, table, write_page

MAX_TABLE_CLASSES = 150      # rows of touched classes in the class table on the page
MAX_OTHER_CLASSES = 20       # rows of the largest untouched classes
MAX_TIMELINE_CLASSES = 40    # per-class bars of the timeline
MAX_AREA_CLASSES = 40        # rows of the class–area view
MAX_AREAS = 15               # columns of the class–area view (the rest summed)
MAX_DRAWN_CLASSES = 40       # class nodes of the network figure
MAX_DRAWN_SEIZURES = 400     # seizure nodes of the network figure
CONTEXT_SEIZURES = 5         # per class, drawn seizures without a new exhibit
MAX_EVENTS = 200
MAX_LINKS = 30
MAX_FLAGGED = 200
LISTED = 3                   # items of a '; '-list shown in a table cell before "+n more"

STATUS_COLOURS = {"new": "#8e44ad", "grew": "#2980b9", "merged": "#16a085", "kept": "#34495e"}
NEW_COLOUR, OLD_COLOUR = "#e67e22", "#95a5a6"
TURNOVER_COLOURS = {"gained": "#27ae60", "kept": "#2980b9", "lost": "#c0392b"}


# --- small formatting ---------------------------------------------------------------------


def _n(value) -> str:
    """A count with thousands separators ('' when missing)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


def _g(value, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if np.isnan(v) else f"{v:.{digits}g}"


def _short(text, k: int = LISTED) -> str:
    """The first ``k`` items of a '; '-joined list, and how many more."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    items = [t for t in str(text).split("; ") if t]
    return "; ".join(items) if len(items) <= k else f"{'; '.join(items[:k])} (+{len(items) - k} more)"


def _label(text, width: int = 24) -> str:
    """Data text for a matplotlib label: shortened, and '$' escaped so mathtext never runs."""
    s = str(text)
    s = s if len(s) <= width else s[:width - 1] + "…"
    return s.replace("$", r"\$")


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>' if text else ""


def _quarter_ordinals(quarters: pd.Series) -> np.ndarray:
    """Quarters as text ("2025Q3") to pandas' quarter ordinals, parsing each distinct one once."""
    codes, uniques = pd.factorize(quarters.astype(str))
    return pd.PeriodIndex(uniques, freq="Q").asi8[codes]


def _quarter(dates: pd.Series) -> pd.Series:
    """ISO dates ('' or missing allowed) as quarter ordinals, pandas' (1970Q1 = 0; NaN where
    undated)."""
    d = pd.to_datetime(dates.replace("", np.nan), format="%Y-%m-%d", errors="coerce")
    return ((d.dt.year - 1970) * 4 + d.dt.quarter - 1).astype(float)


# --- the class timeline ------------------------------------------------------------------


def quarterly_turnover(timeline: pd.DataFrame) -> pd.DataFrame:
    """Per quarter from the first to the last with exhibits: classes ``seen`` (exhibits seized
    that quarter), ``gained`` (their first quarter), ``kept`` (seen that quarter and also before
    and after it) and ``lost`` (the quarter after their last; never beyond the data's last
    quarter, which may be incomplete). ``timeline``: class_id, quarter ("2025Q3"), exhibits."""
    t = timeline[timeline["exhibits"] > 0]
    columns = ["quarter", "seen", "gained", "kept", "lost"]
    if not len(t):
        return pd.DataFrame({c: pd.Series(dtype=object if c == "quarter" else np.int64)
                             for c in columns})
    q = _quarter_ordinals(t["quarter"])
    cls = t["class_id"].astype(str).to_numpy()
    span = pd.DataFrame({"class_id": cls, "q": q}).groupby("class_id")["q"].agg(["min", "max"])
    first = span["min"].reindex(cls).to_numpy()
    last = span["max"].reindex(cls).to_numpy()
    lo, hi = int(q.min()), int(q.max())
    size = hi - lo + 1
    seen_pairs = pd.DataFrame({"c": cls, "q": q}).drop_duplicates()
    seen_q = seen_pairs["q"].to_numpy()
    inner = pd.DataFrame({"c": cls, "q": q, "f": first, "l": last}).drop_duplicates(["c", "q"])
    kept = inner[(inner["f"] < inner["q"]) & (inner["q"] < inner["l"])]["q"].to_numpy()
    lost = span["max"].to_numpy() + 1
    lost = lost[lost <= hi]

    def count(values) -> np.ndarray:
        return np.bincount(np.asarray(values, np.int64) - lo, minlength=size)

    return pd.DataFrame({
        "quarter": [str(pd.Period(ordinal=lo + k, freq="Q")) for k in range(size)],
        "seen": count(seen_q), "gained": count(span["min"].to_numpy()), "kept": count(kept),
        "lost": count(lost)})


def _quarter_ticks(ax, lo: int, size: int) -> None:
    step = max(1, int(np.ceil(size / 16)))
    ticks = np.arange(0, size, step)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(pd.Period(ordinal=lo + int(k), freq="Q")) for k in ticks],
                       fontsize=7, rotation=45, ha="right")


def _timeline_figure(result, turnover: pd.DataFrame, shown: list[str]) -> str:
    import matplotlib.pyplot as plt

    rows = max(len(shown), 1)
    fig, _ = matplotlib_figure(10, 2.8 + 0.24 * rows)
    fig.clear()
    fig.set_layout_engine("constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={
        "height_ratios": [2.2, max(1.0, 0.24 * rows)]})
    lo = int(pd.Period(turnover["quarter"].iloc[0], freq="Q").ordinal)
    size = len(turnover)
    x = np.arange(size)
    for k, name in enumerate(("gained", "kept", "lost")):
        top.bar(x + (k - 1) * 0.27, turnover[name], width=0.27, label=name,
                color=TURNOVER_COLOURS[name])
    top.plot(x, turnover["seen"], color="#555", lw=1, marker=".", ms=3, label="seen")
    top.set_ylabel("classes", fontsize=8)
    top.tick_params(labelsize=7)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    top.set_title("Classes per quarter: gained, kept (seen before and after), lost "
                  "(quarter after the last)", fontsize=9)

    t = result.timeline
    t = t[(t["exhibits"] > 0) & t["class_id"].astype(str).isin(set(shown))]
    tq = _quarter_ordinals(t["quarter"]) - lo
    t = pd.DataFrame({"class_id": t["class_id"].astype(str).to_numpy(), "x": tq,
                      "exhibits": t["exhibits"].to_numpy()})
    rows_ = result.classes
    new = rows_[rows_["new"].to_numpy(dtype=bool)]
    newq = pd.DataFrame({"class_id": new["class_id"].astype(str).to_numpy(),
                         "x": _quarter(new["seized_on"].astype(object)).to_numpy() - lo})
    newq = set(map(tuple, newq.dropna().astype({"x": int}).itertuples(index=False)))
    biggest = max(int(t["exhibits"].max()) if len(t) else 1, 1)
    position = {c: k for k, c in enumerate(shown)}
    if len(t):                      # one artist for the spans, one for the dots (fast)
        span = t.groupby("class_id")["x"].agg(["min", "max"])
        bottom.hlines([position[c] for c in span.index], span["min"], span["max"],
                      color="#bbb", lw=2, zorder=1)
        colours = [NEW_COLOUR if (c, int(v)) in newq else "#2c3e50"
                   for c, v in zip(t["class_id"], t["x"])]
        bottom.scatter(t["x"], [position[c] for c in t["class_id"]],
                       s=8 + 60 * np.sqrt(t["exhibits"] / biggest), c=colours, zorder=2)
    status = _status(result)
    bottom.set_yticks(np.arange(len(shown)))
    bottom.set_yticklabels([_label(f"{c} ({status.get(c, '')})") for c in shown], fontsize=7)
    bottom.set_ylim(len(shown) - 0.5, -0.5)
    bottom.set_title("Touched classes: first to last quarter seized (dot size: exhibits that "
                     "quarter; orange: quarters with exhibits new in this run)", fontsize=9)
    _quarter_ticks(bottom, lo, size)
    bottom.set_xlim(-0.6, size - 0.4)
    bottom.grid(axis="x", color="#eee", lw=0.5)
    plt.setp(top.get_xticklabels(), visible=False)
    return figure(fig, "class timeline")


def _status(result) -> dict:
    ct = result.class_table
    if "status" not in ct:
        return {}
    return dict(zip(ct["class_id"].astype(str), ct["status"].astype(str)))


def _timeline_section(result, ranked: pd.DataFrame) -> str:
    turnover = quarterly_turnover(result.timeline)
    if not len(turnover):
        return "<p>No class has a dated exhibit: there is no timeline.</p>"
    shown = ranked["class_id"].head(MAX_TIMELINE_CLASSES).tolist()
    notes = [(f"Counts over the {result.timeline['class_id'].nunique():,} classes of the class "
              f"table (every class of two or more exhibits and the classes this run touched). A "
              f"class is gained in its first quarter, kept in a quarter it is seized in when it "
              f"was also seized before and after, and lost in the quarter after its last; the "
              f"latest quarter ({turnover['quarter'].iloc[-1]}) may be incomplete.")]
    if len(ranked) > len(shown):
        notes.append(f"The bars show {len(shown):,} of the {len(ranked):,} touched classes of two "
                     f"or more exhibits (those with the most new exhibits, then the largest).")
    recent = turnover.tail(12)
    more = (f" The table shows the last 12 of {len(turnover)} quarters; the figure shows all."
            if len(turnover) > 12 else "")
    shown_counts = recent.iloc[::-1].copy()
    for column in ("seen", "gained", "kept", "lost"):
        shown_counts[column] = shown_counts[column].map(_n)
    return (_timeline_figure(result, turnover, shown) + "".join(_note(n) for n in notes)
            + table(shown_counts) + _note(more.strip()))


# --- classes ------------------------------------------------------------------------------


def _new_ids(result) -> pd.Series:
    """Per class, its first new exhibits (by id) as a short list with how many more."""
    rows = result.classes
    new = rows[rows["new"].to_numpy(dtype=bool)]
    ids = pd.DataFrame({"class_id": new["class_id"].astype(str).to_numpy(),
                        "exhibit_id": new["exhibit_id"].astype(str).to_numpy()})
    ids = ids.sort_values(["class_id", "exhibit_id"])
    count = ids.groupby("class_id").size()
    first = ids.groupby("class_id").head(LISTED).groupby("class_id")["exhibit_id"].agg("; ".join)
    more = (count - LISTED).clip(lower=0)
    return first.where(more == 0, first + " (+" + more.map(_n) + " more)")


def _top_areas(result) -> pd.Series:
    """Per class (of the rows the run carries), its areas by exhibits, most first:
    'Hackney (12); Camden (3) (+2 more)'."""
    rows = result.classes
    area = rows["area"].astype(object).where(rows["area"].notna(), "").astype(str)
    counts = pd.DataFrame({"class_id": rows["class_id"].astype(str).to_numpy(),
                           "area": area.to_numpy()})
    counts = counts[counts["area"] != ""].value_counts().rename("n").reset_index()
    counts = counts.sort_values(["class_id", "n", "area"], ascending=[True, False, True])
    counts["text"] = counts["area"] + " (" + counts["n"].map(_n) + ")"
    total = counts.groupby("class_id").size()
    first = counts.groupby("class_id").head(LISTED).groupby("class_id")["text"].agg("; ".join)
    more = (total - LISTED).clip(lower=0)
    return first.where(more == 0, first + " (+" + more.map(_n) + " more)")


def _class_rows(shown: pd.DataFrame, new_ids: pd.Series,
                areas: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """The class table as shown: formatted numbers, shortened lists; a column whose value is
    the same on every row is dropped and said once (the returned sentences)."""
    frame = pd.DataFrame({
        "class": shown["class_id"].to_numpy(), "status": shown["status"].to_numpy(),
        "exhibits": [_n(v) for v in shown["exhibits"]],
        "new": [_n(v) for v in shown["new_exhibits"]],
        "new exhibits": new_ids.reindex(shown["class_id"]).fillna("").to_numpy(),
        "seizures": [_n(v) for v in shown["seizures"]],
        "first seized": shown["first_seized"].to_numpy(),
        "last seized": shown["last_seized"].to_numpy(),
        "areas (exhibits)": [a if isinstance(a, str) else _short(t) for a, t in
                             zip(areas.reindex(shown["class_id"]), shown["areas"])],
        "levels": shown["levels"].to_numpy(),
        "forces": [_short(v) for v in shown["forces"]],
        "drugs": [_short(v) for v in shown["drugs"]],
        "groups cut / dealer": [f"{_n(a)} / {_n(b)}" for a, b in
                                zip(shown["cutting_groups"], shown["distribution_groups"])],
        "spread": [_g(v, 3) for v in shown["spread"]]})
    said = []
    for column in ("forces", "drugs"):
        values = set(frame[column])
        if len(frame) > 1 and len(values) == 1:
            said.append(f"{column}: {values.pop() or 'none recorded'}")
            frame = frame.drop(columns=column)
    return frame, said


NOWRAP = ("class", "status", "exhibits", "new", "seizures", "first seized", "last seized",
          "groups cut / dealer", "spread")


def _class_section(result) -> str:
    ct = result.class_table.copy()
    if not len(ct):
        return "<p>No class has more than one exhibit and none was touched.</p>"
    ct["class_id"] = ct["class_id"].astype(str)
    ct = ct.sort_values(["new_exhibits", "exhibits", "class_id"],
                        ascending=[False, False, True], kind="stable")
    touched, other = ct[ct["new_exhibits"] > 0], ct[~(ct["new_exhibits"] > 0)]
    new_ids, areas = _new_ids(result), _top_areas(result)
    parts = []
    for heading, rows, cap, order in (
            ("Classes the new exhibits touched", touched, MAX_TABLE_CLASSES,
             "most new exhibits first, then the largest"),
            ("Largest other classes", other, MAX_OTHER_CLASSES, "largest first")):
        if not len(rows):
            continue
        frame, said = _class_rows(rows.head(cap), new_ids, areas)
        notes = [f"{len(rows):,} classes, {order}."
                 + (f" All shown have the same {'; '.join(said)}." if said else "")]
        if len(rows) > cap:
            left = rows.iloc[cap:]
            notes.append(f"{len(left):,} more ({_n(left['exhibits'].sum())} exhibits) are not "
                         f"listed: the page lists {cap:,}; every class is in the class table "
                         f"the run writes.")
        parts.append(f"<h3>{esc(heading)}</h3>" + table(frame, max_rows=cap, nowrap=NOWRAP)
                     + "".join(_note(n) for n in notes))
    parts.append(_note(f"Spread: the mean distance between exhibits of a class. Groups: cutting "
                       f"groups (same lot) and distribution groups (same dealer). Areas of a "
                       f"touched class are ordered by its exhibits there; a list shows {LISTED} "
                       f"items and how many more."))
    return "".join(parts)


def _area_section(result, ranked: pd.DataFrame) -> str:
    """Classes x areas, exhibit counts, as a shaded table (escaped text, computed colours)."""
    shown = ranked["class_id"].head(MAX_AREA_CLASSES).tolist()
    if not shown:
        return "<p>No touched class has two or more exhibits.</p>"
    rows = result.classes
    cid = rows["class_id"].astype(str)
    keep = cid.isin(set(shown)).to_numpy()
    area = rows["area"].astype(object).where(rows["area"].notna(), "").astype(str)
    counts = pd.crosstab(cid[keep].to_numpy(), area[keep].replace("", "(no area)").to_numpy())
    counts = counts.reindex(shown, fill_value=0)
    order = counts.sum(axis=0).sort_values(ascending=False, kind="stable")
    areas = list(order.index[:MAX_AREAS])
    other = counts.drop(columns=areas).sum(axis=1)
    peak = max(int(counts[areas].to_numpy().max()) if areas else 1, 1)
    head = "".join(f"<th>{esc(a)}</th>" for a in ["class", "exhibits", *areas])
    if len(order) > len(areas):
        head += f"<th>{esc(f'{len(order) - len(areas)} other areas')}</th>"
    body = []
    for c in shown:
        cells = [f"<td>{esc(c)}</td>", f"<td>{_n(counts.loc[c].sum())}</td>"]
        for a in areas:
            v = int(counts.at[c, a])
            alpha = 0.08 + 0.82 * v / peak
            ink = "#fff" if alpha > 0.55 else "#222"
            cells.append(f'<td style="background:rgba(41,128,185,{alpha:.2f});color:{ink};'
                         f'text-align:right">{_n(v)}</td>' if v else "<td></td>")
        if len(order) > len(areas):
            cells.append(f'<td style="text-align:right">{_n(other[c]) if other[c] else ""}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = ["Exhibits of each touched class (two or more exhibits) by area; darker: more."]
    if len(ranked) > len(shown):
        notes.append(f"{len(ranked) - len(shown):,} more touched classes are not shown (the "
                     f"view lists {MAX_AREA_CLASSES}, those with the most new exhibits, then the "
                     f"largest).")
    if len(order) > len(areas):
        notes.append(f"The {MAX_AREAS} areas with the most exhibits have a column; the other "
                     f"{len(order) - len(areas):,} are summed in the last.")
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + "".join(_note(n) for n in notes))


# --- the network --------------------------------------------------------------------------


def _components(net: ClassNetwork) -> list[list[str]]:
    """Classes joined by a shared seizure, as groups; groups and members in drawing order
    (most new exhibits, then the largest)."""
    ranked = net.classes.sort_values(["new_exhibits", "exhibits", "class_id"],
                                     ascending=[False, False, True])["class_id"].tolist()
    parent = {c: c for c in ranked}

    def root(c):
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for _, g in net.edges.groupby("seizure_id")["class_id"]:
        members = g.tolist()
        for other in members[1:]:
            parent[root(other)] = root(members[0])
    groups: dict[str, list[str]] = {}
    for c in ranked:
        groups.setdefault(root(c), []).append(c)
    return list(groups.values())


RING_FIRST, RING_GAP, RING_STEP = 0.24, 0.09, 0.055   # data units: first radius, between, along


def _rings(n: int, centre: np.ndarray, facing: float | None) -> list[np.ndarray]:
    """``n`` positions on rings around ``centre``: whole rings, or arcs of 200 degrees facing
    the angle ``facing`` (away from the other classes of a group)."""
    span = 2 * np.pi if facing is None else np.radians(200)
    out, j = [], 0
    while len(out) < n:
        r = RING_FIRST + RING_GAP * j
        room = max(6, int(span * r / RING_STEP))
        k = min(room, n - len(out))
        if facing is None:
            angles = np.pi / 2 + 0.3 * j + 2 * np.pi * np.arange(k) / k
        else:
            angles = facing + span * ((np.arange(k) + 0.5) / k - 0.5)
        out += [centre + r * np.array([np.cos(a), np.sin(a)]) for a in angles]
        j += 1
    return out


def network_layout(net: ClassNetwork) -> tuple[dict, dict]:
    """Positions of class and seizure nodes: each group of classes that share seizures is laid
    out on its own (one class: its seizures on rings around it; several: the classes on a
    circle, their shared seizures between them, their own seizures on arcs facing out), and the
    groups are packed in rows, the first group top left."""
    classes_of = net.edges.groupby("seizure_id")["class_id"].agg(lambda c: sorted(c))
    own: dict[str, list] = {c: [] for c in net.classes["class_id"]}
    shared: dict[tuple, list] = {}
    for sid, cls in classes_of.items():
        if len(cls) == 1:
            own[cls[0]].append(sid)
        else:
            shared.setdefault(tuple(cls), []).append(sid)
    blocks = []
    for group in _components(net):
        centre, where = {}, {}
        m = len(group)
        radius = 0.0 if m == 1 else max(0.75, 0.6 / np.sin(np.pi / m))
        for k, c in enumerate(group):
            angle = np.pi / 2 + 2 * np.pi * k / m
            centre[c] = radius * np.array([np.cos(angle), np.sin(angle)])
            for sid, xy in zip(own[c], _rings(len(own[c]), centre[c],
                                               None if m == 1 else angle)):
                where[sid] = xy
        members = set(group)
        for cls, sids in shared.items():
            if cls[0] not in members:
                continue
            mid = np.mean([centre[c] for c in cls], axis=0)
            for k, sid in enumerate(sids):        # a short column through the midpoint
                where[sid] = mid + np.array([0.0, 0.07 * (k - (len(sids) - 1) / 2)])
        xy = np.array(list(centre.values()) + list(where.values()))
        lo, hi = xy.min(axis=0) - 0.5, xy.max(axis=0) + np.array([0.5, 0.35])
        blocks.append((centre, where, lo, hi))
    widths = [hi[0] - lo[0] for _, _, lo, hi in blocks]
    area = sum((hi - lo).prod() for _, _, lo, hi in blocks)
    row_width = max(max(widths, default=1.0), np.sqrt(area * 1.6))
    centre_all, where_all = {}, {}
    x = y = row_height = 0.0
    for (centre, where, lo, hi), w in zip(blocks, widths):
        if x > 0 and x + w > row_width:
            x, y, row_height = 0.0, y - row_height, 0.0
        shift = np.array([x - lo[0], y - hi[1]])
        centre_all.update({c: p + shift for c, p in centre.items()})
        where_all.update({sid: p + shift for sid, p in where.items()})
        x += w
        row_height = max(row_height, hi[1] - lo[1])
    return centre_all, where_all


def _network_figure(net: ClassNetwork) -> str:
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    centre, where = network_layout(net)
    xy = np.array(list(centre.values()))
    every = np.array(list(centre.values()) + list(where.values())) if centre else np.zeros((1, 2))
    span_x, span_y = np.ptp(every, axis=0) + 1.0
    width = float(np.clip(1.3 * span_x, 4.0, 10.0))     # about 1.3 in per class cell
    height = float(np.clip(width * span_y / span_x, 2.5, 14.0))
    fig, ax = matplotlib_figure(width, height)
    if not centre:
        ax.text(0.5, 0.5, "no class of two or more exhibits was touched", ha="center")
        ax.axis("off")
        return figure(fig, "network of classes and seizures")
    e = net.edges
    segments = [(centre[c], where[s]) for c, s in zip(e["class_id"], e["seizure_id"])]
    ax.add_collection(LineCollection(segments, colors="#c8c8c8", linewidths=0.6, zorder=1))
    s = net.seizures
    sxy = np.array([where[sid] for sid in s["seizure_id"]])
    ax.scatter(sxy[:, 0], sxy[:, 1], s=14, zorder=2, linewidths=0,
               c=np.where(s["new"].to_numpy(dtype=bool), NEW_COLOUR, OLD_COLOUR))
    c = net.classes.set_index("class_id").loc[list(centre)]
    # class discs in data units, so they always sit inside their ring of seizures
    biggest = max(int(c["exhibits"].max()), 1)
    radii = 0.07 + 0.1 * np.sqrt(c["exhibits"].to_numpy() / biggest)
    colours = [STATUS_COLOURS.get(str(v), "#34495e") for v in c["status"]]
    ax.add_collection(PatchCollection([Circle(p, r) for p, r in zip(xy, radii)],
                                      facecolors=colours, edgecolors="white", linewidths=1,
                                      zorder=3))
    # a label goes below the seizures ringed beneath its class, not across them
    reach = {cid: r + 0.03 for cid, r in zip(c.index, radii)}
    for cid, sid in zip(e["class_id"], e["seizure_id"]):
        dx, dy = where[sid] - centre[cid]
        if dy < 0 and abs(dx) < 0.2 and np.hypot(dx, dy) < 0.6:
            reach[cid] = max(reach[cid], float(-dy) + 0.04)
    for (cid, row), (x, y) in zip(c.iterrows(), xy):
        ax.text(x, y - reach[cid], f"{_label(cid)}\n{row['exhibits']:,} ex.",
                ha="center", va="top", fontsize=7, zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    handles = [Line2D([], [], marker="o", ls="", color=colour, markersize=8, label=f"class: {name}")
               for name, colour in STATUS_COLOURS.items() if (c["status"] == name).any()]
    fresh = s["new"].to_numpy(dtype=bool)
    handles += [Line2D([], [], marker="o", ls="", color=colour, markersize=5, label=label)
                for colour, label, present in ((NEW_COLOUR, "seizure with new exhibits",
                                                fresh.any()),
                                               (OLD_COLOUR, "earlier seizure", (~fresh).any()))
                if present]
    ax.legend(handles=handles, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0),
              ncol=len(handles), frameon=False)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.margins(0.04)
    ax.axis("off")
    return figure(fig, "network of classes and seizures")


def _network_section(result) -> str:
    net = class_network(result, MAX_DRAWN_CLASSES, MAX_DRAWN_SEIZURES, CONTEXT_SEIZURES)
    text = ("Large nodes are classes (size: exhibits; colour: status this run), small nodes "
            "seizures; a line joins a class to each seizure holding exhibits of it. "
            "Seizures of several classes sit between them.")
    return _network_figure(net) + _note(text) + _note(net.note())


# --- summary, distributions, events ------------------------------------------------------


def _threshold_text(settings: dict) -> str:
    search = settings.get("search") or {}
    t = settings.get("threshold", search.get("threshold"))
    how = f"({esc(settings.get('metric', ''))} after {esc(settings.get('pretreatment', ''))})"
    if search.get("library_exhibits") is not None and search.get("per_search") is not None:
        return (f"<p>Threshold {esc(_g(t))} {how}: a search against "
                f"{_n(search['library_exhibits'])} exhibits expects "
                f"{esc(_g(search['per_search'], 3))} adventitious links per searched exhibit "
                f"(a per-pair false-positive rate of {esc(_g(search.get('per_pair'), 3))}; "
                f"{esc(search.get('method', ''))}).</p>")
    return (f"<p>Threshold {esc(_g(t))} {how}, as given: the number of adventitious links it "
            f"lets through at this library's size was not estimated.</p>")


def _calibration_text(calibration) -> str:
    if calibration is None:
        return "<p>No calibration: links carry no likelihood ratio.</p>"
    c = calibration.chosen
    pop = getattr(calibration, "population", None) or {}
    on = (f" on {_n(pop['n_linked'])} linked and {_n(pop['n_unlinked'])} unlinked pairs"
          if "n_linked" in pop and "n_unlinked" in pop else "")
    parts = [(f"Calibration: {esc(c.get('pretreatment', ''))} + {esc(c.get('metric', ''))}, "
              f"AUC {esc(_g(c.get('auc')))}{on}")]
    if "fpr" in c:
        parts.append(f"per-pair threshold {esc(_g(c.get('threshold')))} at a false-positive "
                     f"rate of {esc(_g(c['fpr'], 3))}")
    if "cllr" in c:
        parts.append(f"Cllr {esc(_g(c['cllr'], 3))}"
                     + (f" (minimum {esc(_g(c['cllr_min'], 3))})" if "cllr_min" in c else ""))
    return "<p>" + "; ".join(parts) + ".</p>"


def _summary_section(result, calibration) -> str:
    s = result.summary
    settings = s.get("settings") or {}
    ct = result.class_table
    statuses = ct.loc[ct["new_exhibits"] > 0, "status"].astype(str).value_counts() \
        if "status" in ct else pd.Series(dtype=int)
    how = ", ".join(f"{_n(v)} {esc(k)}" for k, v in sorted(statuses.items()))
    counts = (f"<p>{_n(s.get('exhibits_considered'))} exhibits with a chemical profile were "
              f"considered, {_n(s.get('exhibits_new'))} of them new. {_n(s.get('links'))} links "
              f"were reported; {_n(s.get('same_cut_links'))} share the cut (same lot) and "
              f"{_n(s.get('same_distribution_links'))} the packaging too (same dealer).</p>")
    cut = (f" Classes are cut at a Ward merge cost of {esc(_g(settings['class_cut']))} (the rise in "
           "a class's sum of squares that a merge makes; two exhibits cost their cosine distance)."
           if settings.get("class_cut") is not None else "")
    classes = (f"<p>{_n(s.get('classes'))} classes; {_n(s.get('classes_touched'))} touched by "
               f"the new exhibits{f' ({how})' if how else ''}; the largest has "
               f"{_n(s.get('largest_class'))} exhibits.{cut}</p>")
    parts = [counts, classes, _threshold_text(settings), _calibration_text(calibration)]
    events = result.events
    if len(events):
        counts = events["event"].astype(str).value_counts()
        parts.append("<p>Class events this run: " + ", ".join(
            f"{esc(k)} {_n(v)}" for k, v in sorted(counts.items())) + ".</p>")
    timings = s.get("timings_s") or {}
    if timings:
        parts.append(_note("Timings: " + ", ".join(f"{k} {_g(v, 3)} s"
                                                   for k, v in timings.items()) + "."))
    parts += [_note(str(n)) for n in s.get("notes") or []]
    return "".join(parts)


def _distribution_section(result, calibration) -> str:
    threshold = float((result.summary.get("settings") or {}).get("threshold", np.nan))
    lr = getattr(calibration, "lr", None) or {}
    dl = np.asarray(lr.get("distances_linked", []), dtype=float)
    du = np.asarray(lr.get("distances_unlinked", []), dtype=float)
    scores = result.links["score"].to_numpy(dtype=float) if len(result.links) else np.zeros(0)
    scores = scores[np.isfinite(scores)]
    run = (_note(f"This run's {len(scores):,} links: distances {_g(scores.min())} to "
                 f"{_g(scores.max())}, median {_g(np.median(scores))}.") if len(scores) else "")
    if not (len(dl) and len(du)):
        return ("<p>No calibration populations (the threshold was given), so no score "
                "distributions are drawn.</p>" + run)
    return (_distribution_figure(dl, du, threshold,
                                 "Calibration populations (quantiles) and this run's threshold")
            + _note("Distances of known-linked (same seizure) and unlinked pairs from the "
                    "calibration, drawn from their stored percentiles; the dashed line is the "
                    "threshold this run used.") + run)


def _events_section(result) -> str:
    ev = result.events
    if not len(ev):
        return "<p>No class was created, merged, split or rebuilt.</p>"
    ev = ev.sort_values(["date", "class_id"], kind="stable")
    more = (_note(f"{len(ev) - MAX_EVENTS:,} more events are in the class events output.")
            if len(ev) > MAX_EVENTS else "")
    return table(ev.head(MAX_EVENTS)[["date", "event", "class_id", "related", "reason"]],
                 max_rows=MAX_EVENTS) + more


def _links_section(result) -> str:
    links = result.links
    if not len(links):
        return "<p>No link was reported.</p>"
    top = links.nsmallest(MAX_LINKS, "score", keep="first")
    frame = pd.DataFrame({
        "exhibit a": top["exhibit_a"].astype(str).to_numpy(),
        "exhibit b": top["exhibit_b"].astype(str).to_numpy(),
        "distance": [_g(v) for v in top["score"]], "log10 LR": [_g(v, 3) for v in top["log10_lr"]],
        "same class": top["same_class"].map({True: "yes", False: "no"}).to_numpy(),
        "same cut": top["same_cut"].map({True: "yes", False: "no"}).to_numpy(),
        "same distribution": top["same_distribution"].map({True: "yes", False: "no"}).to_numpy()})
    more = (_note(f"The {MAX_LINKS} closest of {len(links):,} links; all are in links.csv.")
            if len(links) > MAX_LINKS else "")
    return table(frame, max_rows=MAX_LINKS) + more


def _flags_section(result) -> str:
    rows = result.classes
    flagged = rows[rows["flags"].astype(str) != ""]
    if not len(flagged):
        return "<p>No exhibit of the touched classes carries an evidence flag.</p>"
    flagged = flagged.sort_values(["new", "class_id", "exhibit_id"], ascending=[False, True, True])
    more = (_note(f"The first {MAX_FLAGGED} of {len(flagged):,} flagged exhibits (new ones first).")
            if len(flagged) > MAX_FLAGGED else "")
    return table(flagged.head(MAX_FLAGGED)[["exhibit_id", "class_id", "seizure_id", "flags"]],
                 max_rows=MAX_FLAGGED) + more


def link_report(result, calibration) -> str:
    """The link report of a run as one self-contained HTML page (see the module's text).
    ``result``: the run's links, classes, class_table, timeline, events and summary;
    ``calibration``: the calibration used, or None."""
    ranked, _, _ = ranked_classes(result)
    sections = [
        ("Summary", _summary_section(result, calibration)),
        ("Classes", _class_section(result)),
        ("Timeline", _timeline_section(result, ranked)),
        ("Classes by area", _area_section(result, ranked)),
        ("Network", _network_section(result)),
        ("Score distributions", _distribution_section(result, calibration)),
        ("Class events", _events_section(result)),
        ("Closest links", _links_section(result)),
        ("Evidence flags", _flags_section(result)),
    ]
    return page("Linked-seizure report", sections)


# --- moved from profiling.link_report (behaviour kept) ------------------------------------


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
        ("Chosen comparison", (f"<p>{esc(c['pretreatment'])} + {esc(c['metric'])}: AUC "
                               f"{c['auc']:.4f}; threshold {c['threshold']:.6g} at a "
                               f"false-positive rate of {c['fpr']:.3%} (target "
                               f"{c['target_fpr']:.2%}); false negatives {c['fnr']:.2%}; "
                               f"Cllr {c['cllr']:.3f}, Cllr-min {c['cllr_min']:.3f}.</p>")),
        ("Population", table(pd.DataFrame([cal.population]))),
        ("Every pretreatment and metric", table(combos)),
        ("Layers", table(layers)),
        ("Why adulterants and packaging are not in the chemical score", folded),
        ("Score distributions", _distribution_figure(dl, du, c["threshold"],
                                                     "Linked and unlinked distances (quantiles)")),
        ("Tippett plot", tippett),
    ]
    write_page(path, page("Calibration report", sections))
