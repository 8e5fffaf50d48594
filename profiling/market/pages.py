"""The HTML page of each market command (rendered by :mod:`profiling.report`: every value from
an export is escaped there). Charts plot only the values that exist: a cell without data is
said in words, never drawn as an empty or NaN-filled chart."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.market.outputs import jsonable
from profiling.report import esc, figure, matplotlib_figure, page, table, write_page


def _warnings(items: list[str]) -> str:
    if not items:
        return '<p class="note">No warnings.</p>'
    return "<ul>" + "".join(f'<li class="warn">{esc(w)}</li>' for w in items) + "</ul>"


def _pct(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.1%}"


def _num(v, fmt: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return format(v, fmt)


def _grid(n: int, width: float = 10, row_height: float = 2.6):
    """A figure with ``n`` small panels, three to a row."""
    cols = min(3, max(1, n))
    rows = math.ceil(n / cols)
    fig, _ = matplotlib_figure(width, row_height * rows)
    fig.clear()
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    # few date ticks: drawing tick labels is most of a small multiple's cost
    import matplotlib.dates as mdates

    for ax in axes[:n]:
        loc = mdates.AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    fig.subplots_adjust(hspace=0.55, wspace=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


# --- levels ---------------------------------------------------------------------------------


def _confusion_html(name: str, c: dict) -> str:
    if not c:
        return ""
    m = np.array(c["matrix"])
    rows = []
    for k in range(3):
        n_true = int(m[k].sum())
        recall = c["recall"][str(k + 1)]
        rows.append({"true level": k + 1, "predicted 1": int(m[k, 0]), "predicted 2": int(m[k, 1]),
                     "predicted 3": int(m[k, 2]), "seizures": n_true,
                     "right": f"{int(m[k, k])} of {n_true}" + (f" ({recall:.1%})" if recall is not None else "")})
    acc = c["accuracy"]
    head = (f"<p>{esc(name)}: most probable level right for {int(np.trace(m))} of {c['n']} "
            f"seizures" + (f" ({acc:.1%})" if acc is not None else "") + ".</p>")
    return head + table(pd.DataFrame(rows))


def levels_page(path: Path, levels: pd.DataFrame, summary: dict) -> None:
    sections = []
    n = len(levels)
    by = summary["by_level"]
    origin = f" from {esc(summary['source'])}" if summary.get("source") else ""
    lines = [f"{n} seizures{origin}; model: {esc(summary['model'])}"
             + ("; chemical classes used as evidence" if summary["classes_used"] else
                "; no chemical classes (run `profile link --library` to add them)") + "."]
    lines.append("Most probable level: " + ", ".join(
        f"level {k}: {v}" + (f" ({v / n:.1%})" if n else "") for k, v in by.items()) + ".")
    sections.append(("Summary", "".join(f"<p>{s}</p>" for s in lines)))

    checks = summary.get("checks") or {}
    if checks:
        body = _confusion_html("Default model against the known levels",
                               checks.get("default_model", {}))
        body += _confusion_html("Refitted model, cross-validated on held-out folds of the "
                                "known levels", checks.get("refitted_cross_validated", {}))
        sections.append(("Confusion matrix", body))

    if n:
        mix = pd.crosstab(levels["area"].replace("", "unknown"), levels["level"]).reindex(
            columns=[1, 2, 3], fill_value=0)
        fig, ax = matplotlib_figure(8, 0.4 * len(mix) + 1.5)
        left = np.zeros(len(mix))
        for k, colour in zip((1, 2, 3), ("#4c72b0", "#dd8452", "#c44e52")):
            ax.barh(mix.index.astype(str), mix[k].to_numpy(), left=left, color=colour,
                    label=f"level {k}")
            left += mix[k].to_numpy()
        ax.set_xlabel("seizures (most probable level)")
        ax.legend(loc="lower right", fontsize=8)
        ax.invert_yaxis()
        body = figure(fig, "level mix by area")
        counts = mix.reset_index().rename(columns={1: "level 1", 2: "level 2", 3: "level 3"})
        sections.append(("Level mix by area", body + table(counts)))

        conf = levels[["p_level1", "p_level2", "p_level3"]].max(axis=1).to_numpy()
        fig, ax = matplotlib_figure(6, 2.8)
        ax.hist(conf, bins=np.linspace(1 / 3, 1, 21), color="#4c72b0")
        ax.set_xlabel("probability of the most probable level")
        ax.set_ylabel("seizures")
        sections.append(("How sure", figure(fig, "probability of the most probable level")
                         + f"<p>{int((conf < 0.8).sum())} of {n} seizures have no level above 80 %.</p>"))
        cols = [c for c in ("seizure_id", "level", "p_level1", "p_level2", "p_level3",
                            "known_level", "area", "seized_on", "seizure_type", "drug",
                            "weight_g", "purity", "reasons") if c in levels.columns]
        sections.append(("Seizures", table(levels[cols], max_rows=300)))
    else:
        sections.append(("Seizures", '<p class="warn">The data hold no seizures.</p>'))
    sections.append(("Model parameters",
                     "<pre>" + esc(json.dumps(jsonable(summary["parameters"]), indent=1,
                                              sort_keys=True)) + "</pre>"))
    write_page(path, page("Supply levels", sections))


# --- market ---------------------------------------------------------------------------------


def _trend_line(ax, trends: pd.DataFrame, area: str, measure: str, x: np.ndarray, y: np.ndarray):
    """The Theil-Sen line of trends.csv through the plotted points (prices and purity on the log
    scale, counts on the count scale)."""
    t = trends[(trends["area"] == area) & (trends["measure"] == measure)]
    if t.empty or not np.isfinite(t["slope_per_month"].iloc[0]) or len(y) == 0:
        return
    rel = float(t["slope_per_month"].iloc[0])
    xm = (x - x[0]) / np.timedelta64(1, "D") / (365.25 / 12)
    if measure == "n_seizures":
        slope = rel * float(np.median(y))
        line = np.median(y - slope * xm) + slope * xm
    else:
        slope = np.log1p(rel)
        line = np.exp(np.median(np.log(y) - slope * xm) + slope * xm)
    ax.plot(x, line, color="#c44e52", lw=1.2, label=f"Theil-Sen {rel:+.2%}/month")


def market_page(path: Path, market: pd.DataFrame, trends: pd.DataFrame, hedonic: dict,
                flags: pd.DataFrame, summary: dict) -> None:
    from profiling.market.seizures import period_start

    sections = []
    units = summary["units"]
    head = (f"<p>{esc(summary['drug'])} in {len(units)} {esc(summary['by'])}s over "
            f"{len(summary['periods'])} {esc(summary['period'])}s: {summary['seizures']} seizures, "
            f"{summary['priced']} priced purchases (counts stand beside every rate below).</p>")
    sections.append(("Summary", head + _warnings(summary["warnings"])))

    if len(flags):
        sections.append(("Emerging-market warnings",
                         "<p>Seizures rising while prices fall (both Mann-Kendall tests "
                         "significant):</p>" + table(flags[["area", "evidence"]])))
    else:
        sections.append(("Emerging-market warnings",
                         '<p class="note">No area shows seizures rising while prices fall.</p>'))

    hed = (f"<p>log(price) = a + b·log(quantity g) + c·log(purity) + {esc(summary['by'])} + "
           f"period effects, on {hedonic['n']} priced purchases with a measured purity: "
           f"b = {_num(hedonic['log_quantity'], '.4f')}, c = {_num(hedonic['log_purity'], '.4f')}, "
           f"R² = {_num(hedonic['r2'], '.3f')}.</p>")
    if hedonic.get("warning"):
        hed += f'<p class="warn">{esc(hedonic["warning"])}</p>'
    if hedonic["log_quantity"] is not None:
        hed += (f"<p>Standard deal: {hedonic['standard_deal']['quantity_g']} g at purity "
                f"{_num(hedonic['standard_deal']['purity'], '.1%')}; its expected price per cell "
                "is in the table below.</p>")
    sections.append(("Hedonic index", hed))

    if len(market):
        x_of = {p: np.datetime64(period_start(p).date()) for p in market["period"].unique()}
        for measure, col, lo, hi, label in (
                ("price_per_pure_g", "price_per_pure_g", "price_per_pure_g_lo",
                 "price_per_pure_g_hi", "median price per pure gram (GBP), bootstrap interval"),
                ("standard_deal", "standard_deal_gbp", "standard_deal_lo", "standard_deal_hi",
                 "expected price of the standard deal (GBP), hedonic interval"),
                ("purity", "median_purity", "purity_q1", "purity_q3", "median purity, IQR"),
                ("n_seizures", "n_seizures", None, None, "seizures per period")):
            with_data = [u for u in units
                         if np.isfinite(market.loc[market["area"] == u, col].to_numpy(float)).any()
                         and (measure != "n_seizures"
                              or market.loc[market["area"] == u, col].sum() > 0)]
            missing = [u for u in units if u not in with_data]
            body = ""
            if with_data:
                fig, axes = _grid(len(with_data))
                for ax, u in zip(axes, with_data):
                    g = market[market["area"] == u]
                    y = g[col].to_numpy(dtype=float)
                    ok = np.isfinite(y)
                    x = np.array([x_of[p] for p in g["period"]])[ok]
                    if lo:
                        ylo = g[lo].to_numpy(dtype=float)[ok]
                        yhi = g[hi].to_numpy(dtype=float)[ok]
                        both = np.isfinite(ylo) & np.isfinite(yhi)
                        ax.vlines(x[both], ylo[both], yhi[both], color="#999", lw=1)
                    ax.plot(x, y[ok], "o-" if measure != "n_seizures" else "-", ms=3,
                            color="#4c72b0")
                    _trend_line(ax, trends, "all" if measure == "standard_deal" else u,
                                measure, x, y[ok])
                    ax.set_title(str(u), fontsize=9)
                    ax.tick_params(labelsize=7)
                    if ax.get_legend_handles_labels()[0]:
                        ax.legend(fontsize=6)
                body += figure(fig, label)
            if missing:
                what = label.split(",")[0].split(" (")[0]
                body += (f'<p class="warn">No {esc(what)} for: '
                         f"{esc(', '.join(map(str, missing)))}.</p>")
            sections.append((f"Trend: {label}", body))

        av = market.pivot(index="period", columns="area", values="availability")
        ok_cols = [c for c in av.columns if np.isfinite(av[c].to_numpy(float)).any()]
        if ok_cols:
            fig, ax = matplotlib_figure(9, 3.2)
            for c in ok_cols:
                y = av[c].to_numpy(float)
                ok = np.isfinite(y)
                ax.plot(np.array([x_of[p] for p in av.index])[ok], y[ok], lw=1, label=str(c))
            ax.axhline(0, color="#888", lw=0.8)
            ax.set_ylabel("availability (0 = usual)")
            ax.legend(fontsize=6, ncol=4)
            sections.append(("Availability", figure(fig, "availability indicator") +
                             '<p class="note">Weighted change against the area\'s median period '
                             "of price per pure gram (falling = more available), purity and "
                             "seizure count, in log units.</p>"))

    sections.append(("Trends", table(trends) + (
        '<p class="note">Slopes are relative changes a month, with 95 % intervals and '
        "Mann-Kendall p-values. Months resemble the months next to them (dealers and batches "
        "persist), so the intervals and tests count fewer independent periods than there are: "
        "variance_factor = n / n*, the periods there are over the independent periods they are "
        "worth, estimated from every area's series of the measure.</p>")))
    sections.append(("Market by area and period", table(market, max_rows=600)))
    write_page(path, page(f"Market: {summary['drug']} by {summary['by']} and {summary['period']}",
                          sections))


# --- evaluation -----------------------------------------------------------------------------


def _effects_frame(effects: dict) -> pd.DataFrame:
    rows = []
    for m, e in effects.items():
        rows.append({"measure": m, "effect": _pct(e.get("estimate")),
                     "interval": (f"{_pct(e.get('lo'))} to {_pct(e.get('hi'))}"
                                  if e.get("lo") is not None else ""),
                     "p_value": _num(e.get("p_value")),
                     "target before": e.get("n_target_before"),
                     "target during": e.get("n_target_during"),
                     "comparison": e.get("n_comparison"),
                     "after (effect)": _pct((e.get("after") or {}).get("estimate")),
                     "warning": e.get("warning") or ""})
    return pd.DataFrame(rows)


def evaluation_page(path: Path, ev: dict, weekly: pd.DataFrame) -> None:
    sections = []
    head = (f"<p>Operation in {esc(ev['area'])} from {esc(ev['start'])} to {esc(ev['end'])}"
            + ("" if ev["end_given"] else " (no end given: the end of the data)")
            + f"; comparison areas: {esc(', '.join(ev['comparison']) or 'none')}; adjacent areas: "
            f"{esc(', '.join(ev['adjacent']) or 'none')}; drug: {esc(ev['drug'])}.</p>"
            f"<p class=\"note\">Method: {esc(ev['method'])}. Effects are relative "
            f"(+25 % = prices a quarter higher than the comparison areas would predict), with "
            f"{ev['level']:.0%} intervals.</p>")
    sections.append(("Summary", head + _warnings(ev["warnings"])))
    sections.append((f"Effects in {ev['area']}", table(_effects_frame(ev["effects"]))))
    if ev["displacement"]:
        body = ""
        for b, e in ev["displacement"].items():
            body += f"<h3>{esc(b)}</h3>" + table(_effects_frame(e))
        sections.append(("Displacement into adjacent areas", body))

    if len(weekly):
        start = pd.Timestamp(ev["start"])
        end = pd.Timestamp(ev["end"])
        panels = [("n_seizures", "seizures a week"),
                  ("price_index", "price per g / its drug's median"),
                  ("median_purity", "median purity")]
        fig, axes = _grid(len(panels), width=11, row_height=3)
        for ax, (col, label) in zip(axes, panels):
            for role, colour in (("target", "#c44e52"), ("comparison", "#4c72b0"),
                                 ("adjacent", "#dd8452")):
                g = weekly[weekly["role"] == role]
                if g.empty:
                    continue
                s = g.groupby("week_start")[col].mean() if col == "n_seizures" else \
                    g.groupby("week_start")[col].median()
                s = s[np.isfinite(s.to_numpy(dtype=float))]
                if s.empty:
                    continue
                x = pd.to_datetime(s.index)
                y = s.to_numpy(dtype=float)
                if len(y) >= 5:  # a 5-week running median keeps single purchases from dominating
                    y = pd.Series(y).rolling(5, center=True, min_periods=1).median().to_numpy()
                ax.plot(x, y, lw=1, color=colour,
                        label=role + (" (mean per area)" if role != "target" and col == "n_seizures" else ""))
            ax.axvspan(start, end, color="#f3c", alpha=0.12, lw=0)
            ax.set_title(label, fontsize=9)
            ax.tick_params(labelsize=7)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
        sections.append(("Before and after", figure(fig, "weekly series before and after") +
                         '<p class="note">Weekly series (5-week running median), the operation '
                         "shaded; weekly.csv holds the values.</p>"))
    else:
        sections.append(("Before and after", ('<p class="warn">No dated seizures in the '
                                              "target or comparison areas.</p>")))
    write_page(path, page(f"Operation evaluation: {ev['area']}", sections))
