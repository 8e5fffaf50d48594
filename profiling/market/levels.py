"""Supply level of every seizure: probabilities of level 1 (street), 2 (middle market) and 3
(import), with the evidence that drove each answer.

The model is naive Bayes: ``log P(level | evidence) = log prior + sum of log likelihoods + c``
with one likelihood per piece of evidence —

- quantity: log10 of the seizure's total weight, normal per level;
- purity: the seizure's median purity (a censored purity counts as its limit), normal per level;
- form: rocks counted with a retail mean rock mass, rocks of another mass, or no rock count;
- seizure type (test purchase, stop and search, warrant, border, other);
- drug (crack is made in the consuming country and seldom imported as crack);
- adulterant load: number of adulterants found (0, 1, 2, 3+);
- chemical class (when ``profile link`` stored classes): purity as a fraction of the purity of
  the import seizures of the same class — a street seizure that shares a class with a border
  seizure is two cuts away from it.

Missing evidence contributes nothing. Default parameters come from ``reference_data/levels.toml``
(with their sources); :func:`fit` re-estimates them from seizures whose level is known.
Each reason is the evidence's log-likelihood ratio between the chosen level and the runner-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.errors import InputError
from profiling.market.outputs import write_csv, write_json
from profiling.market.seizures import config, open_source, seizure_table
from profiling.records import MISSING_COUNT, SEIZURE_TYPES

LEVELS = (1, 2, 3)
FORMS = ("rocks", "other_rocks", "uncounted")
ADULTERANT_BINS = ("0", "1", "2", "3+")
LEVEL_COLUMNS = ("seizure_id", "p_level1", "p_level2", "p_level3", "level", "reasons")
LEVELS_GROUP = "levels"


def _per_level(table: dict, key: str | None = None) -> np.ndarray:
    return np.array([float(table[f"level{k}"] if key is None else table[f"level{k}"][key])
                     for k in LEVELS])


@dataclass
class LevelModel:
    """Parameters of the naive Bayes model; arrays are indexed by level - 1."""

    prior: np.ndarray
    log10_g_mean: np.ndarray
    log10_g_sd: np.ndarray
    purity_mean: np.ndarray
    purity_sd: np.ndarray
    retail_rock_g: tuple[float, float]
    form: dict[str, np.ndarray]              # form -> P(form | level)
    seizure_type: dict[str, np.ndarray]
    drug: dict[str, np.ndarray]
    adulterants: np.ndarray                  # [bin, level] P(bin | level)
    ratio_mean: np.ndarray
    ratio_sd: np.ndarray
    reference_p3: float
    fitted_on: dict[str, int] = field(default_factory=dict)  # known seizures per level (refit)

    @classmethod
    def default(cls) -> LevelModel:
        c = config("levels.toml")
        return cls(
            prior=_normalise(_per_level(c["prior"])),
            log10_g_mean=_per_level(c["quantity"]["mean_log10_g"]),
            log10_g_sd=_per_level(c["quantity"]["sd_log10_g"]),
            purity_mean=_per_level(c["purity"]["mean"]),
            purity_sd=_per_level(c["purity"]["sd"]),
            retail_rock_g=tuple(c["form"]["retail_rock_g"]),
            form={f: _per_level(c["form"], f) for f in FORMS},
            seizure_type={t: _per_level(c["seizure_type"], t) for t in SEIZURE_TYPES},
            drug={d: _per_level(c["drug"], d) for d in c["drug"]["level1"]},
            adulterants=np.array([c["adulterants"][f"level{k}"] for k in LEVELS], float).T,
            ratio_mean=_per_level(c["class"]["mean_log_ratio"]),
            ratio_sd=_per_level(c["class"]["sd_log_ratio"]),
            reference_p3=float(c["class"]["reference_p3"]),
        )

    def as_json(self) -> dict:
        def arr(a):
            return [round(float(x), 6) for x in a]
        return {
            "prior": arr(self.prior),
            "quantity": {"mean_log10_g": arr(self.log10_g_mean), "sd_log10_g": arr(self.log10_g_sd)},
            "purity": {"mean": arr(self.purity_mean), "sd": arr(self.purity_sd)},
            "form": {"retail_rock_g": list(self.retail_rock_g),
                     **{k: arr(v) for k, v in self.form.items()}},
            "seizure_type": {k: arr(v) for k, v in self.seizure_type.items()},
            "drug": {k: arr(v) for k, v in self.drug.items()},
            "adulterants": {b: arr(self.adulterants[i]) for i, b in enumerate(ADULTERANT_BINS)},
            "class": {"mean_log_ratio": arr(self.ratio_mean), "sd_log_ratio": arr(self.ratio_sd),
                      "reference_p3": self.reference_p3},
            "fitted_on": self.fitted_on,
        }


def _normalise(p: np.ndarray, axis: int = 0) -> np.ndarray:
    return p / p.sum(axis=axis, keepdims=True)


# --- evidence -------------------------------------------------------------------------------


@dataclass
class Evidence:
    """One piece of evidence for every seizure: log likelihood per level (0 where absent) and
    the words that describe the seizure's value of it."""

    name: str
    loglik: np.ndarray          # (n, 3)
    present: np.ndarray         # (n,) bool
    describe: Callable[[int], str]


def _normal_loglik(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    z = (x[:, None] - mean[None, :]) / sd[None, :]
    return -0.5 * z * z - np.log(sd)[None, :]


def _table_loglik(values: np.ndarray, table: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros((len(values), 3))
    present = np.zeros(len(values), bool)
    for key, p in table.items():
        rows = values == key
        out[rows] = np.log(p)
        present |= rows
    return out, present


def _weight_text(g: float) -> str:
    if g >= 1000:
        return f"{g / 1000:.3g} kg"
    if g < 1:
        return f"{g * 1000:.0f} mg"
    return f"{g:.3g} g"


def form_of(seizures: pd.DataFrame, retail: tuple[float, float]) -> np.ndarray:
    counted = seizures["rock_count"].to_numpy() != MISSING_COUNT
    m = seizures["mean_rock_g"].to_numpy(dtype=float)
    retail_ok = counted & (m >= retail[0]) & (m <= retail[1])
    return np.where(~counted, "uncounted", np.where(retail_ok, "rocks", "other_rocks")).astype(object)


def adulterant_bin(seizures: pd.DataFrame) -> np.ndarray:
    return np.minimum(seizures["n_adulterants"].to_numpy(dtype=np.int64), len(ADULTERANT_BINS) - 1)


def evidence(seizures: pd.DataFrame, model: LevelModel,
             class_ratio: pd.DataFrame | None = None) -> list[Evidence]:
    """Every piece of evidence for the seizures (``seizure_table`` rows)."""
    n = len(seizures)
    out: list[Evidence] = []

    w = seizures["weight_g"].to_numpy(dtype=float)
    ok = np.isfinite(w) & (w > 0)
    ll = np.zeros((n, 3))
    ll[ok] = _normal_loglik(np.log10(w[ok]), model.log10_g_mean, model.log10_g_sd)
    out.append(Evidence("quantity", ll, ok, lambda i: f"{_weight_text(w[i])} in total"))

    p = seizures["purity"].to_numpy(dtype=float)
    cens = seizures["purity_censored"].to_numpy(dtype=bool)
    ok = np.isfinite(p)
    ll = np.zeros((n, 3))
    ll[ok] = _normal_loglik(p[ok], model.purity_mean, model.purity_sd)
    out.append(Evidence("purity", ll, ok, lambda i: (f"purity below {p[i]:.0%}" if cens[i]
                                                     else f"purity {p[i]:.0%}")))

    form = form_of(seizures, model.retail_rock_g)
    rocks = seizures["rock_count"].to_numpy()
    mean_rock = seizures["mean_rock_g"].to_numpy(dtype=float)
    ll, ok = _table_loglik(form, model.form)
    out.append(Evidence("form", ll, ok, lambda i: (
        "no rock count" if form[i] == "uncounted"
        else f"{rocks[i]} rock{'s' if rocks[i] != 1 else ''} of {mean_rock[i]:.2f} g on average")))

    stype = seizures["seizure_type"].to_numpy(dtype=object)
    ll, ok = _table_loglik(stype, model.seizure_type)
    out.append(Evidence("seizure_type", ll, ok,
                        lambda i: f"{str(stype[i]).replace('_', ' ')} seizure"))

    drug = seizures["drug"].to_numpy(dtype=object)
    ll, ok = _table_loglik(drug, model.drug)
    out.append(Evidence("drug", ll, ok, lambda i: str(drug[i]).replace("_", " ")))

    b = adulterant_bin(seizures)
    ll = np.log(model.adulterants[b])
    out.append(Evidence("adulterants", ll, np.ones(n, bool), lambda i: (
        "no adulterants found" if b[i] == 0 else
        f"{ADULTERANT_BINS[b[i]]} adulterant{'s' if b[i] != 1 else ''}")))

    if class_ratio is not None:
        r = class_ratio["log_ratio"].to_numpy(dtype=float)
        cls = class_ratio["class_id"].to_numpy(dtype=object)
        refs = class_ratio["references"].to_numpy(dtype=object)
        ok = np.isfinite(r)
        ll = np.zeros((n, 3))
        ll[ok] = _normal_loglik(r[ok], model.ratio_mean, model.ratio_sd)
        out.append(Evidence("class", ll, ok, lambda i: (
            f"purity {np.exp(r[i]):.0%} of the import seizures of chemical class {cls[i]} "
            f"({refs[i]})")))
    return out


def class_ratios(seizures: pd.DataFrame, classes: pd.DataFrame | None, records: pd.DataFrame,
                 reference: np.ndarray) -> pd.DataFrame | None:
    """For each seizure, log(purity / median purity of the other reference seizures of its
    chemical class), or NaN. ``reference`` marks the seizures that stand for import.

    A seizure's class is the most frequent class among its exhibits (smallest id on a tie)."""
    if classes is None or not len(classes):
        return None
    from profiling.market.seizures import seizure_keys

    key = pd.Series(seizure_keys(records), index=records["exhibit_id"].to_numpy())
    cls = classes[["exhibit_id", "class_id"]].astype(str)
    cls = cls[cls["exhibit_id"].isin(key.index)]
    pairs = pd.DataFrame({"seizure_id": key.loc[cls["exhibit_id"]].to_numpy(),
                          "class_id": cls["class_id"].to_numpy()})
    counts = pairs.value_counts().reset_index(name="n")
    counts = counts.sort_values(["seizure_id", "n", "class_id"], ascending=[True, False, True])
    best = counts.drop_duplicates("seizure_id").set_index("seizure_id")["class_id"]
    class_of = seizures["seizure_id"].map(best).fillna("").to_numpy(dtype=object)
    purity = seizures["purity"].to_numpy(dtype=float)
    censored = seizures["purity_censored"].to_numpy(dtype=bool)
    sid = seizures["seizure_id"].to_numpy(dtype=object)
    log_ratio = np.full(len(seizures), np.nan)
    refs_text = np.full(len(seizures), "", dtype=object)
    usable_ref = reference & np.isfinite(purity) & ~censored
    for c in np.unique(class_of[usable_ref]):
        if c == "":
            continue
        members = np.flatnonzero((class_of == c) & np.isfinite(purity) & ~censored)
        ref_rows = members[usable_ref[members]]
        for i in members:
            others = ref_rows[ref_rows != i]
            if len(others) == 0:
                continue
            log_ratio[i] = np.log(purity[i] / np.median(purity[others]))
            shown = ", ".join(map(str, sid[others[:3]])) + (" …" if len(others) > 3 else "")
            refs_text[i] = shown
    return pd.DataFrame({"class_id": class_of, "log_ratio": log_ratio, "references": refs_text})


# --- posterior ------------------------------------------------------------------------------


@dataclass
class Levels:
    """Posterior probabilities and reasons for a set of seizures."""

    seizures: pd.DataFrame          # seizure_table rows
    proba: np.ndarray               # (n, 3)
    reasons: np.ndarray             # (n,) str
    model: LevelModel

    @property
    def level(self) -> np.ndarray:
        return np.argmax(self.proba, axis=1) + 1 if len(self.proba) else np.zeros(0, np.int64)

    def frame(self, known: pd.Series | None = None) -> pd.DataFrame:
        """SPEC levels.csv columns, then context columns."""
        s = self.seizures
        out = pd.DataFrame({
            "seizure_id": s["seizure_id"].to_numpy(dtype=object),
            "p_level1": np.round(self.proba[:, 0], 4), "p_level2": np.round(self.proba[:, 1], 4),
            "p_level3": np.round(self.proba[:, 2], 4), "level": self.level.astype(np.int64),
            "reasons": self.reasons,
            "area": s["area"].to_numpy(dtype=object), "force": s["force"].to_numpy(dtype=object),
            "seized_on": pd.to_datetime(s["seized_on"]).dt.strftime("%Y-%m-%d").fillna("").to_numpy(),
            "drug": s["drug"].to_numpy(dtype=object),
            "seizure_type": s["seizure_type"].to_numpy(dtype=object),
            "n_exhibits": s["n_exhibits"].to_numpy(dtype=np.int64),
            "weight_g": s["weight_g"].to_numpy(dtype=float),
            "purity": s["purity"].to_numpy(dtype=float),
        })
        if known is not None:
            k = s["seizure_id"].map(known)
            out["known_level"] = k.fillna(0).astype(np.int64).astype(str).replace("0", "").to_numpy()
        return out


def _posterior(model: LevelModel, ev: list[Evidence]) -> np.ndarray:
    n = len(ev[0].loglik) if ev else 0
    logp = np.tile(np.log(model.prior), (n, 1))
    for e in ev:
        logp += e.loglik
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def _reasons(proba: np.ndarray, ev: list[Evidence]) -> np.ndarray:
    """For each seizure: the evidence that most favours its level over the runner-up, then the
    strongest evidence against (log-likelihood ratios, natural log, shown as LR)."""
    c = config("levels.toml")["reasons"]
    top, floor = int(c["max_reasons"]), float(c["min_log_ratio"])
    n = len(proba)
    out = np.empty(n, dtype=object)
    order = np.argsort(-proba, axis=1, kind="stable")
    best, second = order[:, 0], order[:, 1]
    rows = np.arange(n)
    contrib = np.stack([e.loglik[rows, best] - e.loglik[rows, second] for e in ev], axis=1) \
        if ev else np.zeros((n, 0))
    present = np.stack([e.present for e in ev], axis=1) if ev else np.zeros((n, 0), bool)
    masked = np.where(present, contrib, np.nan)
    # strongest evidence for the chosen level first; absent evidence last
    order = np.argsort(-np.nan_to_num(masked, nan=-np.inf), axis=1, kind="stable")
    for i in range(n):
        lv, rv = best[i] + 1, second[i] + 1
        row = masked[i]
        parts = [f"{ev[j].describe(i)} (favours {lv} over {rv}, LR {_lr(row[j])})"
                 for j in order[i, :top] if row[j] >= floor]
        against = np.flatnonzero(row <= -floor)
        if len(against):
            j = against[np.argmin(row[against])]
            parts.append(f"{ev[j].describe(i)} (favours {rv}, LR {_lr(-row[j])})")
        if not parts:
            parts.append("weak evidence only" if present[i].any()
                         else "no strong evidence: prior shares of the levels")
        out[i] = "; ".join(parts)
    return out


def _lr(log_ratio: float) -> str:
    v = float(np.exp(min(log_ratio, 700.0)))
    return f"{v:.3g}" if v < 1e4 else f"{v:.1e}"


def infer(seizures: pd.DataFrame, model: LevelModel, records: pd.DataFrame | None = None,
          classes: pd.DataFrame | None = None, known: pd.Series | None = None,
          reasons: bool = True) -> Levels:
    """Level probabilities and reasons. With chemical ``classes`` (exhibit_id, class_id) the
    import references of each class are the seizures known to be level 3 (``known``) or, among
    the rest, those whose level-3 probability without the class evidence reaches the model's
    ``reference_p3``."""
    ev = evidence(seizures, model)
    proba = _posterior(model, ev)
    if classes is not None and records is not None and len(seizures):
        ref = proba[:, 2] >= model.reference_p3
        if known is not None:
            k = seizures["seizure_id"].map(known).to_numpy()
            has = pd.notna(k)
            ref = np.where(has, k == 3, ref)
        ratios = class_ratios(seizures, classes, records, ref)
        if ratios is not None and np.isfinite(ratios["log_ratio"]).any():
            ev = evidence(seizures, model, ratios)
            proba = _posterior(model, ev)
    words = _reasons(proba, ev) if reasons else np.full(len(proba), "", dtype=object)
    return Levels(seizures, proba, words, model)


# --- re-fitting on known levels -------------------------------------------------------------


def fit(seizures: pd.DataFrame, known: pd.Series, base: LevelModel | None = None,
        records: pd.DataFrame | None = None, classes: pd.DataFrame | None = None) -> LevelModel:
    """Re-estimate every parameter from the seizures whose level is known (``known``: seizure
    key -> 1/2/3). Categorical tables are smoothed towards ``base`` with the pseudo-count of
    levels.toml; a normal with fewer than two observations at a level keeps ``base``'s values."""
    base = base or LevelModel.default()
    c = config("levels.toml")["fit"]
    a = float(c["pseudo_count"])
    lv = seizures["seizure_id"].map(known).to_numpy()
    has = pd.notna(lv)
    s = seizures.loc[has].reset_index(drop=True)
    y = lv[has].astype(np.int64) - 1
    if len(y) == 0:
        raise InputError("no seizure of the data has a known level: nothing to fit on.")
    counts = np.bincount(y, minlength=3).astype(float)

    def normal(x, base_mean, base_sd, floor):
        mean, sd = base_mean.copy(), base_sd.copy()
        for k in range(3):
            v = x[(y == k) & np.isfinite(x)]
            if len(v) >= 2:
                mean[k] = float(np.mean(v))
                sd[k] = max(float(np.std(v, ddof=1)), floor)
        return mean, sd

    def table(values, base_table):
        out = {}
        for key, p in base_table.items():
            hit = np.array([np.sum((values == key) & (y == k)) for k in range(3)], float)
            out[key] = hit + a * p
        total = np.sum(list(out.values()), axis=0)
        return {k: v / total for k, v in out.items()}

    w = s["weight_g"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lw = np.where(w > 0, np.log10(w), np.nan)
    g_mean, g_sd = normal(lw, base.log10_g_mean, base.log10_g_sd, float(c["min_sd_log10_g"]))
    p_mean, p_sd = normal(s["purity"].to_numpy(dtype=float), base.purity_mean, base.purity_sd,
                          float(c["min_sd_purity"]))
    bins = adulterant_bin(s)
    adu = np.zeros_like(base.adulterants)
    for b in range(len(ADULTERANT_BINS)):
        adu[b] = [np.sum((bins == b) & (y == k)) for k in range(3)]
    adu = _normalise(adu + a * base.adulterants, axis=0)
    model = LevelModel(
        prior=_normalise(counts + a * base.prior),
        log10_g_mean=g_mean, log10_g_sd=g_sd, purity_mean=p_mean, purity_sd=p_sd,
        retail_rock_g=base.retail_rock_g,
        form=table(form_of(s, base.retail_rock_g), base.form),
        seizure_type=table(s["seizure_type"].to_numpy(dtype=object), base.seizure_type),
        drug=table(s["drug"].to_numpy(dtype=object), base.drug),
        adulterants=adu, ratio_mean=base.ratio_mean.copy(), ratio_sd=base.ratio_sd.copy(),
        reference_p3=base.reference_p3,
        fitted_on={str(k + 1): int(counts[k]) for k in range(3)},
    )
    if classes is not None and records is not None:
        all_known = seizures["seizure_id"].map(known).to_numpy()
        ratios = class_ratios(seizures, classes, records, all_known == 3)
        if ratios is not None:
            r = ratios["log_ratio"].to_numpy(dtype=float)[has]
            model.ratio_mean, model.ratio_sd = normal(r, base.ratio_mean, base.ratio_sd,
                                                      float(c["min_sd_log_ratio"]))
    return model


# --- known levels and checking ----------------------------------------------------------------


def read_known(spec: str | Path, data_records: pd.DataFrame, attributes: pd.DataFrame) -> pd.Series:
    """Known levels as seizure key -> 1/2/3, from an export column (its header, or the
    ``attr_<name>`` form) or from a CSV file with ``level`` and ``seizure_id`` (or
    ``exhibit_id``) columns, such as the simulator's truth.csv. Blank and unreadable levels are
    unknown; a seizure whose exhibits disagree takes the highest level named."""
    from profiling.ingest.mapping import attribute_name
    from profiling.market.seizures import seizure_keys

    text = str(spec)
    name = attribute_name(text.removeprefix("attr_"))
    keys = seizure_keys(data_records)
    if name in attributes.columns:
        raw = pd.Series(attributes[name].to_numpy(dtype=object), index=keys)
    elif Path(text).is_file():
        try:
            table = pd.read_csv(text, dtype=str, keep_default_na=False)
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read known levels from {text}: {err}.") from None
        if "level" not in table.columns:
            raise InputError(f"known-level file {text} has no 'level' column.")
        if "exhibit_id" in table.columns:
            by_exhibit = dict(zip(table["exhibit_id"], table["level"]))
            raw = pd.Series(data_records["exhibit_id"].map(by_exhibit).to_numpy(dtype=object),
                            index=keys)
        elif "seizure_id" in table.columns:
            raw = pd.Series(table["level"].to_numpy(dtype=object), index=table["seizure_id"])
        else:
            raise InputError(f"known-level file {text} needs a seizure_id or exhibit_id column.")
    else:
        cols = ", ".join(sorted(attributes.columns)) or "none"
        raise InputError(f"--known/--fit-known {text!r} is neither a column of the data "
                         f"(extra columns: {cols}) nor a CSV file.")
    level = pd.to_numeric(raw.astype(str).str.strip().str.removeprefix("level").str.strip(),
                          errors="coerce")
    level = level[level.isin(LEVELS)].astype(np.int64)
    return level.groupby(level.index).max()


def confusion(true: np.ndarray, predicted: np.ndarray) -> dict:
    """Counts (rows true level, columns predicted), accuracy overall and per true level."""
    m = np.zeros((3, 3), dtype=np.int64)
    np.add.at(m, (true - 1, predicted - 1), 1)
    per = {str(k): (int(m[k - 1, k - 1]), int(m[k - 1].sum())) for k in LEVELS}
    return {
        "matrix": m.tolist(),
        "n": int(m.sum()),
        "accuracy": float(np.trace(m) / m.sum()) if m.sum() else None,
        "recall": {k: (v[0] / v[1] if v[1] else None) for k, v in per.items()},
        "n_per_level": {k: v[1] for k, v in per.items()},
    }


def cross_validated(seizures: pd.DataFrame, known: pd.Series, records, classes) -> dict:
    """Confusion of refitted models on held-out folds of the known seizures (seeded folds)."""
    c = config("levels.toml")["fit"]
    ids = seizures["seizure_id"][seizures["seizure_id"].isin(known.index)].to_numpy(dtype=object)
    folds = min(int(c["folds"]), len(ids))
    if folds < 2:
        return {}
    rng = np.random.default_rng(int(c["seed"]))
    fold = rng.permutation(len(ids)) % folds
    true, pred = [], []
    for f in range(folds):
        train = known.loc[ids[fold != f]]
        test = ids[fold == f]
        model = fit(seizures, train, records=records, classes=classes)
        res = infer(seizures, model, records, classes, train, reasons=False)
        at = seizures["seizure_id"].isin(test).to_numpy()
        true.append(known.loc[seizures["seizure_id"][at]].to_numpy())
        pred.append(res.level[at])
    return confusion(np.concatenate(true), np.concatenate(pred))


# --- the command ----------------------------------------------------------------------------


@dataclass
class LevelsRun:
    levels: Levels
    table: pd.DataFrame             # levels.csv
    summary: dict                   # levels.json
    stored: bool


def run_levels(source: str | Path, out: str | Path, known: str | None = None,
               fit_known: str | None = None, mapping=None, as_of=None,
               progress: Callable[[int], None] | None = None, redactor=None) -> LevelsRun:
    """`profile levels`: infer levels, write levels.csv, levels.json and levels.html into
    ``out``, and store a ``levels`` table in the library when the source is one. With a
    :class:`~profiling.redact.Redactor` the files (and the returned table and summary) carry
    pseudonyms and coarsened areas, no source file name, and ``redaction.json`` beside them;
    the library keeps the real references."""
    from profiling.library import read_frame

    advance = progress or (lambda n: None)
    src = open_source(source, mapping=mapping, as_of=as_of)
    advance(1)
    records = src.data.records
    seizures = seizure_table(records)
    classes = read_frame(src.library, "classes") if src.library is not None else None
    spec = fit_known or known
    known_levels = read_known(spec, records, src.data.attributes) if spec else None
    default = LevelModel.default()
    result = infer(seizures, default, records, classes, None)
    checks: dict = {}
    if known_levels is not None:
        at = seizures["seizure_id"].isin(known_levels.index).to_numpy()
        checks["default_model"] = confusion(known_levels.loc[seizures["seizure_id"][at]].to_numpy(),
                                            result.level[at])
    if fit_known:
        model = fit(seizures, known_levels, default, records, classes)
        checks["refitted_cross_validated"] = cross_validated(seizures, known_levels, records, classes)
        result = infer(seizures, model, records, classes, known_levels)
    advance(1)
    table = result.frame(known_levels)
    summary = {
        "source": Path(source).name,
        "seizures": len(table),
        "by_level": {str(k): int((table["level"] == k).sum()) for k in LEVELS},
        "classes_used": classes is not None,
        "model": "refitted" if fit_known else "default",
        "parameters": result.model.as_json(),
        "checks": checks,
    }
    stored = False
    if src.library is not None:
        store(src.library, table)
        stored = True
    if redactor is not None:
        table = table.copy()
        table["seizure_id"] = redactor.seizure_keys(table["seizure_id"], records["seizure_id"])
        table["area"] = redactor.area(table["area"], table["force"])
        summary = redactor.summary(summary)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "levels.csv", table)
    write_json(out / "levels.json", summary)
    from profiling.market.pages import levels_page

    levels_page(out / "levels.html", table, summary)
    if redactor is not None:
        redactor.write_manifest(out, ["levels.csv", "levels.json", "levels.html"])
    advance(1)
    return LevelsRun(result, table, summary, stored)


def store(library: Path, table: pd.DataFrame) -> None:
    """Replace the library's ``levels`` table (seizure_id, p_level1..3, level)."""
    from profiling.library import replace_groups, write_frame, write_lock

    frame = table[["seizure_id", "p_level1", "p_level2", "p_level3", "level"]].copy()
    kinds = {"seizure_id": "text", "p_level1": "float", "p_level2": "float",
             "p_level3": "float", "level": "count"}
    with write_lock(library):
        replace_groups(library, {LEVELS_GROUP: lambda g: write_frame(g, frame, kinds)})


def levels_for(records: pd.DataFrame, library: Path | None) -> tuple[pd.Series, str]:
    """Most probable level per seizure key, and where it came from: the library's stored
    ``levels`` table (written by `profile levels`) where it covers a seizure, else the default
    model."""
    from profiling.library import read_frame

    seizures = seizure_table(records)
    inferred = pd.Series(infer(seizures, LevelModel.default(), reasons=False).level
                         if len(seizures) else
                         np.zeros(0, np.int64), index=seizures["seizure_id"].to_numpy())
    stored = read_frame(library, LEVELS_GROUP) if library is not None else None
    if stored is None or not len(stored):
        return inferred, "inferred with the default model (run `profile levels` to store them)"
    table = pd.Series(stored["level"].to_numpy(dtype=np.int64), index=stored["seizure_id"].to_numpy())
    table = table[~table.index.duplicated()]
    covered = inferred.index.isin(table.index)
    out = inferred.copy()
    out[covered] = table.loc[inferred.index[covered]].to_numpy()
    note = "stored by `profile levels`"
    if not covered.all():
        note += f"; {int((~covered).sum())} newer seizures inferred with the default model"
    return out, note


def select_level(records: pd.DataFrame, library: Path | None, level: str) -> tuple[pd.DataFrame, str]:
    """The exhibits of seizures at one supply level ('1', '2', '3') or all ('all')."""
    from profiling.market.seizures import seizure_keys

    if level == "all":
        return records, "all levels"
    if level not in ("1", "2", "3"):
        raise InputError(f"--level must be 1, 2, 3 or all, not {level!r}.")
    if not len(records):
        return records, f"level {level}"
    lv, note = levels_for(records, library)
    keep = pd.Series(seizure_keys(records)).map(lv).to_numpy() == int(level)
    return records[keep], f"level {level} ({note})"
