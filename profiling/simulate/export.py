"""How a laboratory writes the simulated exhibits down: the export file, its mapping, and the
truth file that says what a correct ingest must do with every row.

``plan_rows`` makes every decision that changes a value (row order, identifiers, injected faults
and evidence flags, duplicated rows, adulterant amounts written, profile cells in scientific
notation). Rendering (``export_columns``, ``truth_columns``) only chooses spellings, separators
and units, from a random stream seeded per chunk of rows, so the same seed gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from profiling.simulate.laboratory import CENSORED_BELOW, CENSORED_TRACE, Exhibits
from profiling.simulate.market import Calendar, Geography, Network, Seizures
from profiling.simulate.vocabulary import Vocabulary, normalise

CANONICAL_FIELDS = [
    "exhibit_id",
    "seizure_id",
    "force",
    "area",
    "seized_on",
    "analysed_on",
    "drug",
    "seizure_type",
    "weight_before_g",
    "weight_after_g",
    "rock_count",
    "purity",
    "adulterants",
    "packaging",
    "price_gbp",
]

TRUTH_COLUMNS = [
    "line",
    "exhibit_id",
    "seizure_id",
    "batch_id",
    "lot_id",
    "dealer_id",
    "level",
    "area",
    "force",
    "drug",
    "seizure_type",
    "seized_on",
    "analysed_on",
    "weight_before_g",
    "weight_after_g",
    "rock_count",
    "purity",
    "purity_censored",
    "adulterants",
    "adulterant_fractions",
    "packaging",
    "price_gbp",
    "expected",
    "expected_reason",
    "expected_flags",
    "duplicate_of",
]

# Faults that make a row unreadable: the ingest must quarantine the row with this reason.
QUARANTINE_REASONS = [
    "exhibit_id:missing",
    "weight_before_g:missing",
    "weight_before_g:unreadable",
    "weight_before_g:negative",
    "weight_before_g:not_positive",
    "weight_after_g:negative",
    "weight_after_g:unreadable",
    "purity:above_100",
    "purity:unreadable",
    "seized_on:unreadable",
]
# Readable rows that break a rule of evidence: accepted, carrying this flag.
FLAGS = ["weight_gain", "analysis_loss", "rock_mass", "seized_after_analysed", "future_date"]

RENDER_CHUNK = 65536
_RENDER_STREAM = 7  # SeedSequence key of the rendering stream (the model uses 0-6)
_FUTURE_YEAR = 2099


@dataclass
class Rows:
    """The export's data rows (R = exhibits + duplicated rows), in file order."""

    exhibit: np.ndarray  # (R,) index into Exhibits
    duplicate_of: np.ndarray  # (R,) line of the row this one repeats, or -1
    fault: np.ndarray  # (R,) index into QUARANTINE_REASONS + 1, 0 = none
    flags: list[str]  # (R,) expected ;-joined flag tokens ("" for none / not accepted)
    exhibit_ids: list[str]  # per exhibit
    seizure_ids: list[str]  # per seizure
    amount_written: np.ndarray  # (N,) bool: adulterant amounts written in the export
    headers: list[str]  # export header, canonical fields then profile columns
    mapping: dict | None  # mapping.toml content (None when headers are canonical)
    counts: dict = field(default_factory=dict)

    @property
    def duplicated_lines(self) -> set[int]:
        """Lines that a later row repeats."""
        return set(self.duplicate_of[self.duplicate_of >= 0].tolist())


# --------------------------------------------------------------------------- number text


def grams_text(mg: np.ndarray) -> list[str]:
    """Exact grams with three decimals ("0.230", "1234.500") from whole milligrams."""
    g, f = np.divmod(np.abs(mg), 1000)
    sign = np.where(mg < 0, "-", "")
    return [f"{s}{a}.{b:03d}" for s, a, b in zip(sign.tolist(), g.tolist(), f.tolist())]


def _strip(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def purity_fraction_text(permille: np.ndarray) -> list[str]:
    return [f"{p // 1000}.{p % 1000:03d}" for p in permille.tolist()]


def iso_dates(start: dt.date, days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(np.datetime64(start) + days.astype("timedelta64[D]"), unit="D")


# --------------------------------------------------------------------------- evidence rules


def expected_flags(
    vocabulary: Vocabulary, before_mg, after_mg, rocks, seized_day, analysed_day, horizon_day
) -> list[str]:
    """Flags the rules of evidence.toml give to rows with these values (SPEC: Bad input)."""
    ev = vocabulary.evidence
    gain = after_mg > before_mg + round(ev["weight_gain"]["tolerance_g"] * 1000)
    tol_mg = np.maximum(
        ev["analysis_loss"]["max_loss_g"] * 1000,
        ev["analysis_loss"]["max_loss_fraction"] * before_mg,
    )
    loss = (before_mg - after_mg) > tol_mg
    counted = rocks >= 1
    mean_g = np.where(counted, before_mg / 1000 / np.maximum(rocks, 1), 0.0)
    rock = counted & ((mean_g < ev["rock_mass"]["min_g"]) | (mean_g > ev["rock_mass"]["max_g"]))
    order = seized_day > analysed_day
    future = (seized_day > horizon_day) | (analysed_day > horizon_day)
    columns = [
        (gain, "weight_gain"),
        (loss, "analysis_loss"),
        (rock, "rock_mass"),
        (order, "seized_after_analysed"),
        (future, "future_date"),
    ]
    out = [[] for _ in range(len(before_mg))]
    for mask, token in columns:
        for i in np.flatnonzero(mask):
            out[i].append(token)
    return [";".join(sorted(x)) for x in out]


# --------------------------------------------------------------------------- headers


def _title(text: str) -> str:
    words = text.split()
    out = " ".join(w[:1].upper() + w[1:] for w in words)
    return out + "." if words and words[-1] == "no" else out


_UNIT_WORDS = {"g", "percent", "fraction", "gbp", "mg", "kg"}


def _messy_headers(vocabulary: Vocabulary, rng: np.random.Generator):
    columns: dict[str, str] = {}
    for f in CANONICAL_FIELDS:
        options = [
            s
            for s in vocabulary.columns[f]
            if " " in s and not (set(s.split()) & _UNIT_WORDS) and "_" not in s
        ]
        header = _title(options[rng.integers(0, len(options))])
        if f == "price_gbp" and rng.uniform() < 0.5:
            header += " (£)"
        columns[f] = header
    prefixes = [p for p in vocabulary.compound_prefixes if len(p) > 2]
    prefix = _title(prefixes[rng.integers(0, len(prefixes))])
    profile: dict[str, str] = {}
    for compound, spellings in vocabulary.compounds.items():
        spelling = spellings[rng.integers(0, len(spellings))]
        profile[f"{prefix}: {spelling[:1].upper() + spelling[1:]}"] = compound
    return columns, profile


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mapping_toml(mapping: dict) -> str:
    """mapping.toml in SPEC's layout ([columns], [profile], [options])."""
    lines = ["# Written by `profile simulate --messy`: how to read export.csv.", "[columns]"]
    lines += [f"{k} = {_toml_string(v)}" for k, v in mapping["columns"].items()]
    lines += ["", "[profile]"]
    lines += [f"{_toml_string(k)} = {_toml_string(v)}" for k, v in mapping["profile"].items()]
    lines += ["", "[options]"]
    lines += [f"{k} = {_toml_string(v)}" for k, v in mapping["options"].items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- row plan


def _count(share: float, minimum: int, n: int) -> int:
    return max(int(minimum), round(share * n))


def plan_rows(
    params: dict,
    vocabulary: Vocabulary,
    geography: Geography,
    calendar: Calendar,
    network: Network,
    seizures: Seizures,
    exhibits: Exhibits,
    messy: bool,
    rng: np.random.Generator,
) -> Rows:
    """Decide the export's rows. Modifies ``exhibits`` where a flag is injected (the written,
    wrong value is then the truth an ingest must read)."""
    n = len(exhibits.seizure)
    s = exhibits.seizure
    analysed = exhibits.analysed_day.copy()
    seized = exhibits.seized_day

    # Exhibit order: as the laboratory reports them, by analysis date, seizure by seizure.
    order = np.lexsort((exhibits.within, s, analysed))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    years = np.asarray(iso_dates(calendar.start, analysed))
    width = max(6, len(str(n)))
    exhibit_ids = [f"FS{y[2:4]}-{r + 1:0{width}d}" for y, r in zip(years.tolist(), rank.tolist())]
    # Seizure references: force code / year seized / running number within force and year.
    syear = np.array([int(y[:4]) for y in iso_dates(calendar.start, seizures.day).tolist()])
    sforce = geography.area_force[seizures.area]
    sorder = np.lexsort((np.arange(len(syear)), seizures.day, syear, sforce))
    seq = np.empty(len(syear), dtype=np.int64)
    key = sforce[sorder] * 10000 + syear[sorder]
    starts = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    run = np.arange(len(sorder)) - np.repeat(starts, np.diff(np.r_[starts, len(sorder)]))
    seq[sorder] = run + 1
    swidth = max(5, len(str(int(seq.max()) if len(seq) else 1)))
    seizure_ids = [
        f"{geography.force_codes[f]}/{y % 100:02d}/{k:0{swidth}d}"
        for f, y, k in zip(sforce.tolist(), syear.tolist(), seq.tolist())
    ]

    fault = np.zeros(n, dtype=np.int64)
    injected = np.zeros(n, dtype=bool)
    m = params["messy"]
    ev = vocabulary.evidence
    horizon = calendar.n_days - 1 + int(params["laboratory"]["delay_max_days"])
    n_dup = 0
    dup_src = np.empty(0, dtype=np.int64)
    if messy:
        free = np.ones(n, dtype=bool)

        def take(eligible: np.ndarray, k: int) -> np.ndarray:
            pool = np.flatnonzero(eligible & free)
            picked = rng.choice(pool, size=min(k, len(pool)), replace=False)
            free[picked] = False
            return np.sort(picked)

        k_fault = _count(m["fault_share"], m["fault_min_count"], n)
        uncensored = exhibits.purity_permille >= 0
        for code, reason in enumerate(QUARANTINE_REASONS, start=1):
            eligible = uncensored if reason.startswith("purity") else np.ones(n, bool)
            fault[take(eligible, k_fault)] = code
        k_flag = _count(m["flag_share"], m["flag_min_count"], n)
        before, after = exhibits.weight_before_mg, exhibits.weight_after_mg
        # weight_gain: the after-weight recorded above the before-weight.
        rows = take(np.ones(n, bool), k_flag)
        gain = np.maximum(
            10 * round(ev["weight_gain"]["tolerance_g"] * 1000), np.ceil(0.05 * before[rows])
        )
        after[rows] = before[rows] + _round_up_to_resolution(before[rows], gain)
        injected[rows] = True
        # analysis_loss: three times the tolerance gone.
        tol = np.maximum(
            ev["analysis_loss"]["max_loss_g"] * 1000,
            ev["analysis_loss"]["max_loss_fraction"] * before,
        )
        rows = take(3 * tol <= 0.8 * before, k_flag)
        after[rows] = before[rows] - _round_up_to_resolution(before[rows], 3 * tol[rows])
        injected[rows] = True
        # rock_mass: a rock count mistyped (a hundred times too many rocks).
        rows = take(exhibits.rock_count >= 1, k_flag)
        min_g = ev["rock_mass"]["min_g"]
        exhibits.rock_count[rows] = np.maximum(
            exhibits.rock_count[rows] * 100,
            np.ceil(before[rows] / 1000 / (min_g / 2)).astype(np.int64),
        )
        injected[rows] = True
        # seized_after_analysed: the analysis date typed before the seizure date.
        rows = take(np.ones(n, bool), k_flag)
        analysed[rows] = seized[rows] - rng.integers(1, 21, len(rows))
        injected[rows] = True
        # future_date: the analysis year typed as 2099.
        rows = take(np.ones(n, bool), k_flag)
        analysed[rows] = _in_year(calendar, analysed[rows], _FUTURE_YEAR)
        injected[rows] = True
        n_dup = _count(m["duplicate_share"], m["duplicate_min_count"], n)
        dup_src = take(np.ones(n, bool), n_dup)
        n_dup = len(dup_src)

    # File order: exhibits by rank; a duplicated row follows its original a little later.
    pos = rank.astype(float)
    dup_pos = pos[dup_src] + rng.integers(1, 40, n_dup) + 0.5
    row_exhibit = np.concatenate([order, dup_src[np.argsort(dup_pos, kind="stable")]])
    row_pos = np.concatenate([np.arange(n, dtype=float), np.sort(dup_pos)])
    file_order = np.argsort(row_pos, kind="stable")
    row_exhibit = row_exhibit[file_order]
    is_dup = file_order >= n
    first_line = np.full(n, -1, dtype=np.int64)
    duplicate_of = np.full(len(row_exhibit), -1, dtype=np.int64)
    for r, e in enumerate(row_exhibit.tolist()):
        if is_dup[r]:
            duplicate_of[r] = first_line[e]
        else:
            first_line[e] = r + 2

    flags_per_exhibit = expected_flags(
        vocabulary,
        exhibits.weight_before_mg,
        exhibits.weight_after_mg,
        exhibits.rock_count,
        seized,
        analysed,
        horizon,
    )
    unexpected = [i for i, f in enumerate(flags_per_exhibit) if f and not injected[i]]
    if unexpected:
        raise AssertionError(
            f"simulation bug: {len(unexpected)} normal rows break a rule of evidence"
        )
    row_fault = np.where(is_dup, 0, fault[row_exhibit])
    flags = [
        "" if (d or fault[e]) else flags_per_exhibit[e]
        for e, d in zip(row_exhibit.tolist(), is_dup.tolist())
    ]

    amount_written = np.zeros(n, dtype=bool)
    if messy:
        amount_written = rng.uniform(0, 1, n) < m["adulterant_amount_share"]
        sci = rng.uniform(0, 1, exhibits.profile.shape) < m["profile_scientific_share"]
        sci &= exhibits.profile > 0
        values = exhibits.profile[sci]
        exhibits.profile[sci] = np.array([float(f"{v:.4E}") for v in values.tolist()])
        exhibits.scientific = sci
    # The written (possibly wrong) dates are the truth the ingest must read.
    exhibits.analysed_day = analysed

    if messy:
        columns, profile = _messy_headers(vocabulary, rng)
        mapping = {
            "columns": columns,
            "profile": profile,
            "options": {"date_order": "dmy", "weight_unit": "g", "purity_unit": "fraction"},
        }
        headers = [columns[f] for f in CANONICAL_FIELDS] + list(profile)
    else:
        mapping = None
        headers = CANONICAL_FIELDS + [f"p_{c}" for c in vocabulary.compounds]

    n_quarantined = int(np.count_nonzero(row_fault))
    flag_counts: dict[str, int] = {}
    for f in flags:
        for token in filter(None, f.split(";")):
            flag_counts[token] = flag_counts.get(token, 0) + 1
    counts = {
        "rows": len(row_exhibit),
        "accepted": len(row_exhibit) - n_quarantined - n_dup,
        "quarantined": n_quarantined,
        "duplicates": n_dup,
        "conflicts": 0,
        "flags": dict(sorted(flag_counts.items())),
    }
    return Rows(
        row_exhibit,
        duplicate_of,
        row_fault,
        flags,
        exhibit_ids,
        seizure_ids,
        amount_written,
        headers,
        mapping,
        counts,
    )


def _round_up_to_resolution(before_mg: np.ndarray, amount_mg: np.ndarray) -> np.ndarray:
    res = np.where(before_mg < 100_000, 1, np.where(before_mg < 1_000_000, 10, 100))
    return (np.ceil(amount_mg / res) * res).astype(np.int64)


def _in_year(calendar: Calendar, days: np.ndarray, year: int) -> np.ndarray:
    """The same day of the year in ``year`` (29 February becomes 28 February)."""
    out = np.empty(len(days), dtype=np.int64)
    for i, d in enumerate(days.tolist()):
        date = calendar.start + dt.timedelta(days=d)
        day = min(date.day, 28) if date.month == 2 else date.day
        out[i] = (dt.date(year, date.month, day) - calendar.start).days
    return out


# --------------------------------------------------------------------------- rendering


@dataclass
class _Context:
    vocabulary: Vocabulary
    geography: Geography
    calendar: Calendar
    network: Network
    seizures: Seizures
    exhibits: Exhibits
    rows: Rows
    params: dict
    messy: bool
    seed: int


def _render_rng(seed: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _RENDER_STREAM, chunk]))


def _variants(spellings: list[str]) -> list[str]:
    """Each spelling as written, lower case, upper case and capitalised (distinct ones)."""
    out: list[str] = []
    for t in spellings:
        for v in (t, t.lower(), t.upper(), t[:1].upper() + t[1:]):
            if v not in out:
                out.append(v)
    return out


def _pick_text(options: list[str], draws: np.ndarray) -> list[str]:
    """options[draw % len(options)] for each pre-drawn integer."""
    return [options[d] for d in (draws % len(options)).tolist()]


def _spellings(table: dict[str, list[str]]) -> dict[str, list[str]]:
    """Spellings of each token that read back as it (whole-cell matching after normalising)."""
    keys: dict[str, str] = {}
    for token, spellings in table.items():
        for s in spellings:
            keys.setdefault(normalise(s), token)
    return {
        token: [s for s in spellings if keys[normalise(s)] == token] or [token]
        for token, spellings in table.items()
    }


def _bitmask(present: np.ndarray) -> np.ndarray:
    """(k, T) bool -> (k,) int64 with bit j set when column j is present."""
    return present.astype(np.int64) @ (np.int64(1) << np.arange(present.shape[1], dtype=np.int64))


def _columns_of(mask: int) -> list[int]:
    return [j for j in range(mask.bit_length()) if mask >> j & 1]


def canonical_packaging(ctx: _Context, codes: np.ndarray) -> list[str]:
    """Sorted ;-joined packaging tokens ("" when not recorded)."""
    voc = ctx.vocabulary
    tokens = [list(voc.packaging[k]) for k in ("material", "colour", "closure")]
    cache: dict[tuple, str] = {}
    out = []
    for key in map(tuple, codes.tolist()):
        text = cache.get(key)
        if text is None:
            m, c, cl = key
            parts = (
                []
                if m < 0
                else ([tokens[0][m], tokens[1][c]] + ([tokens[2][cl]] if cl >= 0 else []))
            )
            text = cache[key] = ";".join(sorted(parts))
        out.append(text)
    return out


def _packaging_text(ctx: _Context, codes: np.ndarray, rng: np.random.Generator) -> list[str]:
    if not ctx.messy:
        return canonical_packaging(ctx, codes)
    voc = ctx.vocabulary
    kinds = ["material", "colour", "closure"]
    phrases = [
        [voc.packaging_phrases(k, t) or [t.replace("_", " ")] for t in voc.packaging[k]]
        for k in kinds
    ]
    fillers = {normalise(w) for w in voc.packaging_fillers}
    leads = [w for w in ("small", "piece of", "wrapped in") if set(w.split()) <= fillers] or [""]
    draws = rng.integers(0, 1 << 30, (len(codes), 6)).tolist()
    out = []
    for (m, c, cl), (dm, dc, dcl, style, dlead, cap) in zip(codes.tolist(), draws):
        if m < 0:
            out.append("")
            continue
        mat = phrases[0][m][dm % len(phrases[0][m])]
        col = phrases[1][c][dc % len(phrases[1][c])]
        clo = phrases[2][cl][dcl % len(phrases[2][cl])] if cl >= 0 else ""
        style %= 4
        if style == 0:
            text = f"{col} {mat}" + (f", {clo}" if clo else "")
        elif style == 1:
            text = f"{mat}, {col}" + (f", {clo}" if clo else "")
        elif style == 2:
            text = (f"{clo} " if clo else "") + f"{col} {mat}"
        else:
            text = f"{leads[dlead % len(leads)]} {col} {mat}".strip() + (f" {clo}" if clo else "")
        out.append(text[:1].upper() + text[1:] if cap % 10 < 7 else text)
    return out


def _adulterant_text(ctx: _Context, idx: np.ndarray, rng: np.random.Generator) -> list[str]:
    tokens = ctx.network.adulterant_tokens
    amounts = ctx.exhibits.amounts[idx]
    masks = _bitmask(amounts > 0).tolist()
    if not ctx.messy:
        cache: dict[int, str] = {}
        out = []
        for mask in masks:
            text = cache.get(mask)
            if text is None:
                text = cache[mask] = ";".join(sorted(tokens[j] for j in _columns_of(mask)))
            out.append(text)
        return out
    spell = _spellings({t: ctx.vocabulary.adulterants[t] for t in tokens})
    variants = [_variants(spell[t]) for t in tokens]
    none = _variants(ctx.vocabulary.none_phrases)
    seps = [", ", "; ", " / ", ",", ";"]
    written = ctx.rows.amount_written[idx].tolist()
    draws = rng.integers(0, 1 << 30, (len(idx), 6)).tolist()
    columns: dict[int, list[int]] = {}
    out = []
    for i, (mask, w, d) in enumerate(zip(masks, written, draws)):
        if mask == 0:
            out.append(none[d[0] % len(none)])
            continue
        cols = columns.get(mask)
        if cols is None:
            cols = columns[mask] = _columns_of(mask)
        if len(cols) > 1 and d[1] % 2:
            cols = cols[::-1]
        parts = []
        for k, j in enumerate(cols):
            name = variants[j][d[2 + k % 3] % len(variants[j])]
            if w:
                name += f" ({_strip(f'{amounts[i, j] * 100:.1f}')}%)"
            parts.append(name)
        out.append(seps[d[5] % len(seps)].join(parts))
    return out


def _weight_text(mg: np.ndarray, messy: bool, rng: np.random.Generator, share: float):
    plain = grams_text(mg)
    if not messy:
        return plain
    unit = rng.uniform(0, 1, len(mg)) < share
    glued = rng.uniform(0, 1, len(mg)) < 0.5
    out = []
    for text, v, u, gl in zip(plain, mg.tolist(), unit.tolist(), glued.tolist()):
        if not u:
            out.append(text)
        elif v < 1000:
            out.append(f"{v}mg" if gl else f"{v} mg")
        elif v >= 1_000_000:
            kg = _strip(f"{v // 1_000_000}.{v % 1_000_000:06d}")
            out.append(f"{kg}kg" if gl else f"{kg} kg")
        else:
            g = _strip(text)
            out.append(f"{g}g" if gl else f"{g} g")
    return out


def _date_text(iso: np.ndarray, messy: bool, rng: np.random.Generator, share: float):
    iso = iso.tolist()
    if not messy:
        return iso
    keep = rng.uniform(0, 1, len(iso)) < share
    return [t if k else f"{t[8:10]}/{t[5:7]}/{t[0:4]}" for t, k in zip(iso, keep.tolist())]


def export_columns(ctx: _Context, lo: int, hi: int, memo: dict) -> list[list[str]]:
    """Cells of export rows [lo, hi), column by column (header order).

    ``memo`` carries the cells of rows that are duplicated later in the file (a duplicate
    repeats its original cell for cell); pass the same dict for every chunk, in order.
    """
    rng = _render_rng(ctx.seed, lo // RENDER_CHUNK)
    rows, ex, sz, geo, voc = ctx.rows, ctx.exhibits, ctx.seizures, ctx.geography, ctx.vocabulary
    m = ctx.params["messy"]
    messy = ctx.messy
    idx = rows.exhibit[lo:hi]
    k = len(idx)
    s = ex.seizure[idx]
    cols: dict[str, list[str]] = {}
    cols["exhibit_id"] = [rows.exhibit_ids[i] for i in idx.tolist()]
    cols["seizure_id"] = [rows.seizure_ids[i] for i in s.tolist()]
    area = sz.area[s]
    cols["force"] = [geo.forces[f] for f in geo.area_force[area].tolist()]
    cols["area"] = [geo.areas[a] for a in area.tolist()]
    cols["seized_on"] = _date_text(
        iso_dates(ctx.calendar.start, ex.seized_day[idx]), messy, rng, m["iso_date_share"]
    )
    cols["analysed_on"] = _date_text(
        iso_dates(ctx.calendar.start, ex.analysed_day[idx]), messy, rng, m["iso_date_share"]
    )
    drugs = list(voc.drugs)
    types = list(voc.seizure_types)
    if messy:
        for name, table, codes in (
            ("drug", voc.drugs, ex.drug[idx]),
            ("seizure_type", voc.seizure_types, sz.seizure_type[s]),
        ):
            spell = _spellings(table)
            options = [_variants(spell[t]) for t in table]
            draws = rng.integers(0, 1 << 30, k).tolist()
            cols[name] = [options[c][d % len(options[c])] for c, d in zip(codes.tolist(), draws)]
    else:
        cols["drug"] = [drugs[d] for d in ex.drug[idx].tolist()]
        cols["seizure_type"] = [types[t] for t in sz.seizure_type[s].tolist()]
    cols["weight_before_g"] = _weight_text(
        ex.weight_before_mg[idx], messy, rng, m["weight_unit_share"]
    )
    cols["weight_after_g"] = _weight_text(
        ex.weight_after_mg[idx], messy, rng, m["weight_unit_share"]
    )
    rocks = ex.rock_count[idx].tolist()
    if messy:
        word = rng.uniform(0, 1, k) < m["rock_word_share"]
        cols["rock_count"] = [
            "" if r < 0 else (f"{r} rock" if r == 1 else f"{r} rocks") if w else str(r)
            for r, w in zip(rocks, word.tolist())
        ]
    else:
        cols["rock_count"] = ["" if r < 0 else str(r) for r in rocks]
    cols["purity"] = _purity_text(ctx, idx, rng)
    cols["adulterants"] = _adulterant_text(ctx, idx, rng)
    cols["packaging"] = _packaging_text(ctx, ex.packaging[idx], rng)
    cols["price_gbp"] = _price_text(ex.price_pence[idx], messy, rng, m["price_pound_sign_share"])

    _apply_faults(ctx, cols, lo, hi, rng)

    out = [cols[f] for f in CANONICAL_FIELDS]
    profile = ex.profile[idx]
    sci = ex.scientific[idx]
    for j in range(profile.shape[1]):
        v = profile[:, j]
        ints = v.astype(np.int64).tolist()
        if messy:
            blank = (rng.uniform(0, 1, k) < m["profile_blank_share"]).tolist()
            text = [str(x) if x else "" if b else "<LOQ" for x, b in zip(ints, blank)]
            for i in np.flatnonzero(sci[:, j]).tolist():
                text[i] = f"{v[i]:.4E}"
        else:
            text = [str(x) for x in ints]
        out.append(text)
    _repeat_duplicates(ctx, out, lo, hi, memo)
    return out


def _repeat_duplicates(ctx: _Context, out: list[list[str]], lo: int, hi: int, memo: dict):
    rows = ctx.rows
    dup = rows.duplicate_of[lo:hi]
    wanted = rows.duplicated_lines
    for i in range(hi - lo):  # in file order: an original always comes before its duplicate
        if dup[i] >= 0:
            for col, value in zip(out, memo.pop(int(dup[i]))):
                col[i] = value
        elif lo + i + 2 in wanted:
            memo[lo + i + 2] = [col[i] for col in out]


def _purity_text(ctx: _Context, idx: np.ndarray, rng: np.random.Generator) -> list[str]:
    m = ctx.params["messy"]
    p = ctx.exhibits.purity_permille[idx]
    cen = ctx.exhibits.censored[idx]
    if not ctx.messy:
        out = purity_fraction_text(np.maximum(p, 0))
    else:
        u = rng.uniform(0, 1, len(idx))
        a = m["purity_percent_sign_share"]
        b = a + m["purity_bare_percent_share"]
        space = rng.uniform(0, 1, len(idx)) < 0.3
        out = []
        for v, x, sp in zip(p.tolist(), u.tolist(), space.tolist()):
            pct = f"{v // 10}.{v % 10}"
            if x < a:
                out.append(f"{_strip(pct)} %" if sp else f"{_strip(pct)}%")
            elif x < b and v > 10:  # a bare percent must exceed 1 to read as one
                out.append(pct)
            else:
                out.append(_strip(f"{v // 1000}.{v % 1000:03d}"))
    for i in np.flatnonzero(cen == CENSORED_TRACE).tolist():
        out[i] = "trace" if not ctx.messy or rng.uniform() < 0.5 else "Trace"
    for i in np.flatnonzero(cen == CENSORED_BELOW).tolist():
        out[i] = "<1%"
    return out


def _price_text(pence: np.ndarray, messy: bool, rng: np.random.Generator, share: float):
    out = []
    style = rng.integers(0, 3, len(pence)) if messy else np.zeros(len(pence), np.int64)
    sign = rng.uniform(0, 1, len(pence)) < share if messy else np.zeros(len(pence), bool)
    for p, st, sg in zip(pence.tolist(), style.tolist(), sign.tolist()):
        if p < 0:
            out.append("")
            continue
        text = f"{p // 100}.{p % 100:02d}"
        if st == 1 and p % 100 == 0:
            text = str(p // 100)
        elif st == 2:
            text = _strip(text)
        out.append(("£" if sg else "") + text)
    return out


_UNREADABLE_WEIGHT = ["12..3", "abc g", "0.2.5g"]


def _apply_faults(ctx: _Context, cols: dict, lo: int, hi: int, rng: np.random.Generator):
    fault = ctx.rows.fault[lo:hi]
    for i in np.flatnonzero(fault).tolist():
        reason = QUARANTINE_REASONS[fault[i] - 1]
        field_name, code = reason.split(":")
        if code == "missing":
            cols[field_name][i] = ""
        elif code == "unreadable" and field_name.startswith("weight"):
            cols[field_name][i] = _UNREADABLE_WEIGHT[rng.integers(0, len(_UNREADABLE_WEIGHT))]
        elif code == "negative":
            text = cols[field_name][i]
            cols[field_name][i] = "-" + text
        elif code == "not_positive":
            cols[field_name][i] = ["0", "0.000", "0 g", "0mg"][rng.integers(0, 4)]
        elif reason == "purity:above_100":
            cols[field_name][i] = f"{100 + rng.integers(5, 60)}.{rng.integers(0, 10)}%"
        elif reason == "purity:unreadable":
            cols[field_name][i] = ["12..5%", "1.2.5 %"][rng.integers(0, 2)]
        elif reason == "seized_on:unreadable":
            year = ctx.calendar.start.year + rng.integers(0, 2)
            cols[field_name][i] = [f"45/13/{year}", f"31/02/{year}"][rng.integers(0, 2)]


# --------------------------------------------------------------------------- truth


def truth_columns(ctx: _Context, lo: int, hi: int) -> list[list[str]]:
    rows, ex, sz, geo, net = ctx.rows, ctx.exhibits, ctx.seizures, ctx.geography, ctx.network
    voc = ctx.vocabulary
    idx = rows.exhibit[lo:hi]
    s = ex.seizure[idx]
    k = len(idx)
    fault = rows.fault[lo:hi]
    dup = rows.duplicate_of[lo:hi]
    damaged = [QUARANTINE_REASONS[f - 1].split(":")[0] if f else "" for f in fault.tolist()]

    def wid(prefix: str, values: np.ndarray, total: int) -> list[str]:
        w = max(4, len(str(total)))
        return ["" if v < 0 else f"{prefix}{v + 1:0{w}d}" for v in values.tolist()]

    cols: dict[str, list[str]] = {}
    cols["line"] = [str(lo + i + 2) for i in range(k)]
    cols["exhibit_id"] = [rows.exhibit_ids[i] for i in idx.tolist()]
    cols["seizure_id"] = [rows.seizure_ids[i] for i in s.tolist()]
    cols["batch_id"] = wid("B", sz.batch[s], len(net.batch_first))
    cols["lot_id"] = wid("L", sz.lot[s], len(net.lot_batch))
    cols["dealer_id"] = wid("D", sz.dealer[s], len(net.dealer_lot))
    cols["level"] = [str(v) for v in sz.level[s].tolist()]
    area = sz.area[s]
    cols["area"] = [geo.areas[a] for a in area.tolist()]
    cols["force"] = [geo.forces[f] for f in geo.area_force[area].tolist()]
    drugs, types = list(voc.drugs), list(voc.seizure_types)
    cols["drug"] = [drugs[d] for d in ex.drug[idx].tolist()]
    cols["seizure_type"] = [types[t] for t in sz.seizure_type[s].tolist()]
    cols["seized_on"] = iso_dates(ctx.calendar.start, ex.seized_day[idx]).tolist()
    cols["analysed_on"] = iso_dates(ctx.calendar.start, ex.analysed_day[idx]).tolist()
    cols["weight_before_g"] = grams_text(ex.weight_before_mg[idx])
    cols["weight_after_g"] = grams_text(ex.weight_after_mg[idx])
    cols["rock_count"] = ["" if r < 0 else str(r) for r in ex.rock_count[idx].tolist()]
    p = ex.purity_permille[idx]
    cols["purity"] = [
        "" if v < 0 else t for v, t in zip(p.tolist(), purity_fraction_text(np.maximum(p, 0)))
    ]
    cen = ex.censored[idx].tolist()
    cols["purity_censored"] = [
        "trace" if c == CENSORED_TRACE else "below" if c == CENSORED_BELOW else "" for c in cen
    ]
    tokens = net.adulterant_tokens
    amounts = ex.amounts[idx]
    masks = _bitmask(amounts > 0).tolist()
    written = rows.amount_written[idx].tolist()
    names: dict[int, list[tuple[str, int]]] = {}
    adulterants, fractions = [], []
    for i, (mask, w) in enumerate(zip(masks, written)):
        present = names.get(mask)
        if present is None:
            present = names[mask] = sorted((tokens[j], j) for j in _columns_of(mask))
        adulterants.append(";".join(t for t, _ in present))
        fractions.append(";".join(f"{t}={amounts[i, j]:.3f}" for t, j in present) if w else "")
    cols["adulterants"], cols["adulterant_fractions"] = adulterants, fractions
    cols["packaging"] = canonical_packaging(ctx, ex.packaging[idx])
    cols["price_gbp"] = [
        "" if v < 0 else f"{v // 100}.{v % 100:02d}" for v in ex.price_pence[idx].tolist()
    ]
    for i, name in enumerate(damaged):
        if name and name != "exhibit_id":
            cols[name][i] = ""
        if name == "exhibit_id":
            cols["exhibit_id"][i] = ""
    cols["expected"] = [
        "duplicate" if d >= 0 else "quarantined" if f else "accepted"
        for d, f in zip(dup.tolist(), fault.tolist())
    ]
    cols["expected_reason"] = [QUARANTINE_REASONS[f - 1] if f else "" for f in fault.tolist()]
    cols["expected_flags"] = rows.flags[lo:hi]
    cols["duplicate_of"] = ["" if d < 0 else str(d) for d in dup.tolist()]
    return [cols[c] for c in TRUTH_COLUMNS]


def chunks(n_rows: int):
    for lo in range(0, n_rows, RENDER_CHUNK):
        yield lo, min(n_rows, lo + RENDER_CHUNK)
