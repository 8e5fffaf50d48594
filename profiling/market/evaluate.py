"""Operation evaluation: what changed in the target area while an operation ran, against
comparison areas, and in the areas next to it (displacement; DOMAIN: Operation Crackdown).

Method (difference in differences with two-way fixed effects, DOMAIN: Before/after). Time is
counted in weeks from the operation's start. For an area set {target} + comparison areas:

- prices and purity, per exhibit: ``log y = area + area trend + week + drug + b_D*D + b_A*A``
  by least squares with heteroskedasticity-robust (HC1) standard errors;
- seizures, per area and week: a Poisson regression of the count with the same terms (IRLS),
  standard errors scaled by the Pearson dispersion when it exceeds 1 (quasi-Poisson);

where D marks the target area during the operation and A the target area after it ended. The
effect is relative: ``exp(b_D) - 1`` (0.25 = +25 %), with its interval and p-value. The area
trends (one per area but a baseline one, relative to the common week effects) keep an area's own
drift out of the effect. With no comparison area the model falls back to a segmented regression
of the target alone (``log y = a + trend + b_D*D + b_A*A``).

Displacement: the same model with each area adjacent to the target in place of the target,
against the same comparison areas (which exclude the target and its neighbours by default).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from profiling.market.prices import exhibit_prices, select_drug
from profiling.market.seizures import DAYS_PER_MONTH, config, open_source, seizure_keys
from profiling.reference_data import __file__ as _reference_init

MEASURES = ("n_seizures", "price_per_g", "price_per_pure_g", "purity")
DEFAULT_ADJACENCY = Path(_reference_init).with_name("adjacency.csv")


# --- adjacency ------------------------------------------------------------------------------


def read_adjacency(path: str | Path | None = None) -> dict[str, set[str]]:
    """Area -> adjacent areas, made symmetric. A CSV with an ``area`` column and an ``adjacent``
    column of ';'-joined areas (the simulator's areas.csv has this shape); lines starting with
    '#' are comments."""
    path = Path(path) if path else DEFAULT_ADJACENCY
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read adjacency file {path}: {err}.") from None
    cols = {c.strip().lower(): c for c in frame.columns}
    adj_col = next((cols[c] for c in ("adjacent", "adjacent_areas", "neighbours", "neighbors")
                    if c in cols), None)
    if "area" not in cols or adj_col is None:
        raise ValueError(f"adjacency file {path} needs the columns area and adjacent "
                         "(';'-joined areas).")
    out: dict[str, set[str]] = {}
    for area, adj in zip(frame[cols["area"]], frame[adj_col]):
        area = area.strip()
        for b in (x.strip() for x in adj.split(";")):
            if b and b != area:
                out.setdefault(area, set()).add(b)
                out.setdefault(b, set()).add(area)
        out.setdefault(area, set())
    return out


# --- models ---------------------------------------------------------------------------------


@dataclass
class Effect:
    estimate: float | None = None
    lo: float | None = None
    hi: float | None = None
    p_value: float | None = None
    log_effect: float | None = None
    se: float | None = None

    def as_json(self) -> dict:
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "p_value": self.p_value,
                "log_effect": self.log_effect, "se": self.se}


def _effect(beta: float, se: float, dof: float | None, level: float) -> Effect:
    if not (np.isfinite(beta) and np.isfinite(se) and se > 0):
        return Effect()
    if dof is None:
        q = stats.norm.ppf(0.5 + level / 2)
        p = 2 * stats.norm.sf(abs(beta / se))
    else:
        q = stats.t.ppf(0.5 + level / 2, dof)
        p = 2 * stats.t.sf(abs(beta / se), dof)
    return Effect(float(np.expm1(beta)), float(np.expm1(beta - q * se)),
                  float(np.expm1(beta + q * se)), float(p), float(beta), float(se))


def design(area: np.ndarray, week: np.ndarray, treated: str, during: np.ndarray,
           after: np.ndarray, drug: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Columns: intercept, area (all but the first), area trend in months (all but the first),
    week (all but the first; only with more than one area), drug (all but the first), D, A."""
    areas = sorted(set(area.tolist()))
    weeks = sorted(set(week.tolist()))
    t = week * 7 / DAYS_PER_MONTH
    cols, parts = ["intercept"], [np.ones(len(area))]
    for a in areas[1:]:
        cols.append(f"area:{a}")
        parts.append((area == a).astype(float))
    if len(areas) == 1:
        cols.append("trend")
        parts.append(t.astype(float))
    for a in areas[1:]:
        cols.append(f"trend:{a}")
        parts.append(np.where(area == a, t, 0.0))
    if len(areas) > 1:
        for w in weeks[1:]:
            cols.append(f"week:{w}")
            parts.append((week == w).astype(float))
    if drug is not None:
        for d in sorted(set(drug.tolist()))[1:]:
            cols.append(f"drug:{d}")
            parts.append((drug == d).astype(float))
    d_col = ((area == treated) & during).astype(float)
    a_col = ((area == treated) & after).astype(float)
    cols.append("during")
    parts.append(d_col)
    if a_col.any():
        cols.append("after")
        parts.append(a_col)
    return np.column_stack(parts), cols


def ols_hc1(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(beta, robust covariance (HC1), degrees of freedom, rank)."""
    n, k = X.shape
    beta, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    if rank < k or n <= k:
        return beta, np.full((k, k), np.nan), n - k, rank
    resid = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    meat = (X * (resid ** 2)[:, None]).T @ X
    cov = bread @ meat @ bread * n / (n - k)
    return beta, cov, n - k, rank


def poisson_irls(X: np.ndarray, y: np.ndarray, max_iter: int = 100,
                 tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, int]:
    """(beta, quasi-Poisson covariance, rank) of a log-linear Poisson regression."""
    n, k = X.shape
    mu = y + 0.5
    eta = np.log(mu)
    beta = np.zeros(k)
    rank = k
    for _ in range(max_iter):
        z = eta + (y - mu) / mu
        sw = np.sqrt(mu)
        new, _, rank, _ = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)
        if rank < k:
            return new, np.full((k, k), np.nan), rank
        done = np.max(np.abs(new - beta)) < tol
        beta = new
        eta = np.clip(X @ beta, -30, 30)
        mu = np.exp(eta)
        if done:
            break
    info = (X * mu[:, None]).T @ X
    cov = np.linalg.inv(info)
    if n > k:
        dispersion = float(np.sum((y - mu) ** 2 / mu) / (n - k))
        cov *= max(1.0, dispersion)
    return beta, cov, rank


# --- the evaluation -------------------------------------------------------------------------


@dataclass
class Window:
    start: pd.Timestamp
    end: pd.Timestamp          # last day of the operation (inclusive)
    end_given: bool


def _week(dates: pd.Series, start: pd.Timestamp) -> np.ndarray:
    days = (pd.to_datetime(dates) - start).dt.days.to_numpy(dtype=float)
    return np.floor(days / int(config("market.toml")["evaluation"]["week_days"]))


def _counts_line(n_before: int, n_during: int, n_after: int | None, n_comp: int) -> dict:
    out = {"n_target_before": n_before, "n_target_during": n_during, "n_comparison": n_comp}
    if n_after is not None:
        out["n_target_after"] = n_after
    return out


def estimate(frame: pd.DataFrame, treated: str, comparison: list[str], window: Window,
             level: float, min_n: int) -> dict[str, dict]:
    """Effects of the operation on every measure in ``treated`` against ``comparison``.

    ``frame``: per exhibit — area, seized_on, seizure, drug, price_per_g, price_per_pure_g,
    purity."""
    out: dict[str, dict] = {}
    areas = [treated, *[c for c in comparison if c != treated]]
    f = frame[frame["area"].isin(areas)]
    wk = _week(f["seized_on"], window.start)
    ok = np.isfinite(wk)
    f, wk = f.loc[ok], wk[ok]
    end_week = np.floor(((window.end - window.start).days) /
                        int(config("market.toml")["evaluation"]["week_days"]))
    during_w = (wk >= 0) & (wk <= end_week)
    after_w = wk > end_week
    method = "difference_in_differences" if len(areas) > 1 else "segmented_regression"
    is_t = (f["area"] == treated).to_numpy()

    # seizures: Poisson on weekly counts of distinct seizures
    s = pd.DataFrame({"area": f["area"].to_numpy(), "week": wk, "seizure": f["seizure"].to_numpy()})
    s = s.drop_duplicates(["area", "seizure"])
    n_t_before = int(((s["area"] == treated) & (s["week"] < 0)).sum())
    n_t_during = int(((s["area"] == treated) & (s["week"] >= 0) & (s["week"] <= end_week)).sum())
    n_t_after = int(((s["area"] == treated) & (s["week"] > end_week)).sum())
    n_comp = int((s["area"] != treated).sum())
    counts = s.groupby(["area", "week"]).size()
    present = [a for a in areas if a in set(s["area"])]
    eff, warn, after = Effect(), "", None
    if len(s) and treated in present and n_t_before >= min_n and n_t_during >= min_n:
        weeks = np.arange(int(s["week"].min()), int(s["week"].max()) + 1)
        grid = pd.MultiIndex.from_product([present, weeks], names=["area", "week"])
        y = counts.reindex(grid, fill_value=0).to_numpy(dtype=float)
        ga = grid.get_level_values(0).to_numpy(dtype=object)
        gw = grid.get_level_values(1).to_numpy(dtype=float)
        X, cols = design(ga, gw, treated, (gw >= 0) & (gw <= end_week), gw > end_week)
        beta, cov, rank = poisson_irls(X, y)
        if rank == X.shape[1]:
            j = cols.index("during")
            eff = _effect(beta[j], np.sqrt(cov[j, j]), None, level)
            if "after" in cols:
                ja = cols.index("after")
                after = _effect(beta[ja], np.sqrt(cov[ja, ja]), None, level).as_json()
        else:
            warn = "the weekly counts cannot separate the operation from the area and week effects"
    else:
        warn = (f"too few seizures in {treated} before ({n_t_before}) or during ({n_t_during}) "
                f"the operation (at least {min_n} each)")
    out["n_seizures"] = {**eff.as_json(), **_counts_line(n_t_before, n_t_during,
                                                          n_t_after if window.end_given else None,
                                                          n_comp),
                         "method": method, "warning": warn or None}
    if after is not None and window.end_given:
        out["n_seizures"]["after"] = after

    # prices and purity: exhibit-level least squares on the log
    for m in ("price_per_g", "price_per_pure_g", "purity"):
        v = f[m].to_numpy(dtype=float)
        good = np.isfinite(v) & (v > 0)
        nb = int((good & is_t & (wk < 0)).sum())
        nd = int((good & is_t & during_w).sum())
        na = int((good & is_t & after_w).sum())
        nc = int((good & ~is_t).sum())
        eff, warn, after_eff = Effect(), "", None
        if nb >= min_n and nd >= min_n:
            drug = f["drug"].to_numpy(dtype=object)[good]
            X, cols = design(f["area"].to_numpy(dtype=object)[good], wk[good], treated,
                             during_w[good], after_w[good], drug)
            beta, cov, dof, rank = ols_hc1(X, np.log(v[good]))
            if rank == X.shape[1] and dof > 0:
                j = cols.index("during")
                eff = _effect(beta[j], np.sqrt(cov[j, j]), dof, level)
                if "after" in cols:
                    ja = cols.index("after")
                    after_eff = _effect(beta[ja], np.sqrt(cov[ja, ja]), dof, level).as_json()
            else:
                warn = ("too few observations to separate the operation from the area and week "
                        "effects")
        else:
            warn = (f"too few {m.replace('_', ' ')} observations in {treated} before ({nb}) or "
                    f"during ({nd}) the operation (at least {min_n} each)")
        out[m] = {**eff.as_json(), **_counts_line(nb, nd, na if window.end_given else None, nc),
                  "method": method, "warning": warn or None}
        if after_eff is not None and window.end_given:
            out[m]["after"] = after_eff
    return out


def _parse_date(text: str, what: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(dt.date.fromisoformat(str(text).strip()))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO date (YYYY-MM-DD).") from None


@dataclass
class EvaluationRun:
    evaluation: dict           # evaluation.json
    weekly: pd.DataFrame       # weekly.csv: area, week, week_start, role, measures


def weekly_series(frame: pd.DataFrame, areas: dict[str, str], start: pd.Timestamp) -> pd.DataFrame:
    """Per area and week: seizures, median price per gram and per pure gram, median purity, with
    the area's role (target, comparison, adjacent)."""
    f = frame[frame["area"].isin(areas)]
    wk = _week(f["seized_on"], start)
    f = f.assign(week=wk).loc[np.isfinite(wk)]
    if not len(f):
        return pd.DataFrame(columns=["area", "role", "week", "week_start", "n_seizures", "n_priced",
                                     "median_price_per_g", "median_price_per_pure_g",
                                     "median_purity"])
    g = f.groupby(["area", "week"])
    out = pd.DataFrame({
        "n_seizures": g["seizure"].nunique(),
        "n_priced": g["price_per_g"].count(),
        "median_price_per_g": g["price_per_g"].median(),
        "median_price_per_pure_g": g["price_per_pure_g"].median(),
        "median_purity": g["purity"].median(),
    }).reset_index()
    weeks = np.arange(int(f["week"].min()), int(f["week"].max()) + 1)
    grid = pd.MultiIndex.from_product([sorted(areas), weeks], names=["area", "week"])
    out = out.set_index(["area", "week"]).reindex(grid).reset_index()
    out["n_seizures"] = out["n_seizures"].fillna(0).astype(np.int64)
    out["n_priced"] = out["n_priced"].fillna(0).astype(np.int64)
    step = int(config("market.toml")["evaluation"]["week_days"])
    out["week"] = out["week"].astype(np.int64)
    out["week_start"] = (start + pd.to_timedelta(out["week"] * step, unit="D")).dt.strftime("%Y-%m-%d")
    out["role"] = out["area"].map(areas)
    return out[["area", "role", "week", "week_start", "n_seizures", "n_priced",
                "median_price_per_g", "median_price_per_pure_g", "median_purity"]]


def run_evaluate(source, out, area: str, start: str, end: str | None = None,
                 compare: list[str] | None = None, adjacency: str | Path | None = None,
                 drug: str = "all", level: str = "1", mapping=None, as_of=None,
                 progress=None) -> EvaluationRun:
    """`profile evaluate`: write evaluation.json, weekly.csv and evaluation.html into ``out``.
    ``drug`` and ``level`` select the seizures (default: every drug, street level)."""
    from profiling.market.levels import select_level
    from profiling.market.outputs import write_csv, write_json
    from profiling.market.pages import evaluation_page

    advance = progress or (lambda n: None)
    cfg = config("market.toml")["evaluation"]
    confidence, min_n = float(cfg["level"]), int(cfg["min_n"])
    t0 = _parse_date(start, "--start")
    src = open_source(source, mapping=mapping, as_of=as_of)
    advance(1)
    rec, level_note = select_level(select_drug(src.data.records, drug), src.library, level)
    rec = rec[pd.to_datetime(rec["seized_on"]).notna().to_numpy()]
    areas_present = sorted(set(src.data.records["area"].tolist()) - {""})
    if area not in areas_present:
        raise ValueError(f"area {area!r} has no seizures in the data; areas are: "
                         + (", ".join(areas_present) or "none") + ".")
    dates = pd.to_datetime(rec["seized_on"])
    last_day = dates.max() if len(dates) else t0
    if end:
        t1 = _parse_date(end, "--end")
        if t1 < t0:
            raise ValueError(f"--end {end} is before --start {start}.")
    else:
        t1 = max(last_day, t0)
    window = Window(t0, t1, bool(end))
    adj = read_adjacency(adjacency)
    neighbours = sorted(adj.get(area, set()) & set(areas_present))
    warnings = []
    if area not in adj:
        warnings.append(f"{area} is not in the adjacency file: no displacement measured")
    if compare:
        unknown = [c for c in compare if c not in areas_present]
        if unknown:
            raise ValueError("comparison area(s) " + ", ".join(map(repr, unknown)) +
                             " have no seizures in the data; areas are: " +
                             ", ".join(areas_present) + ".")
        comparison = [c for c in compare if c != area]
    else:
        comparison = [a for a in areas_present if a != area and a not in neighbours]
    if not comparison:
        warnings.append("no comparison area: segmented regression of the target area alone")
    ex = exhibit_prices(rec, "area", "month")
    frame = pd.DataFrame({"area": rec["area"].to_numpy(dtype=object),
                          "seized_on": pd.to_datetime(rec["seized_on"]).to_numpy(),
                          "seizure": seizure_keys(rec), "drug": rec["drug"].to_numpy(dtype=object),
                          "price_per_g": ex["price_per_g"].to_numpy(),
                          "price_per_pure_g": ex["price_per_pure_g"].to_numpy(),
                          "purity": rec["purity"].to_numpy(dtype=float)})
    if not (dates >= t0).any():
        warnings.append(f"no seizures on or after {t0.date()} in the data: nothing during the "
                        "operation to compare")
    effects = estimate(frame, area, comparison, window, confidence, min_n)
    advance(1)
    displacement = {}
    for b in neighbours:
        if compare and b in comparison:
            continue
        displacement[b] = estimate(frame, b, [c for c in comparison if c != b], window,
                                   confidence, min_n)
    advance(1)
    for name, e in [("target", effects), *displacement.items()]:
        for m, v in e.items():
            if v.get("warning"):
                warnings.append(f"{area if name == 'target' else name} {m}: {v['warning']}")
    evaluation = {
        "area": area, "start": t0.date().isoformat(), "end": t1.date().isoformat(),
        "end_given": bool(end), "comparison": comparison, "adjacent": neighbours,
        "drug": drug, "supply_level": level_note, "level": confidence,
        "effects": effects, "displacement": displacement, "warnings": warnings,
        "method": ("difference in differences: area and week fixed effects, area trends; "
                   "Poisson on weekly seizure counts, least squares with HC1 errors on log "
                   "price and purity per exhibit" if comparison else
                   "segmented regression of the target area alone"),
    }
    roles = {area: "target", **{c: "comparison" for c in comparison},
             **{b: "adjacent" for b in neighbours if b not in comparison}}
    weekly = weekly_series(frame, roles, t0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "evaluation.json", evaluation)
    write_csv(out / "weekly.csv", weekly)
    evaluation_page(out / "evaluation.html", evaluation, weekly)
    advance(1)
    return EvaluationRun(evaluation, weekly)
