"""The supply network: areas and time, import batches (level 3), middle-market lots (level 2),
street dealers (level 1), and the seizures made from them.

Everything here is the *true* state of the simulated market. Laboratory effects (weighing,
analysis, peak areas) are in ``laboratory``; how an export writes it down is in ``export``.
Days are integers counted from ``period.start``; a "month" is a calendar month of the period.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from profiling.simulate.vocabulary import Vocabulary

DAYS_PER_MONTH = 365.25 / 12
LEVELS = (1, 2, 3)


class OperationError(ValueError):
    """An --operation specification that does not fit the simulated areas or period."""


@dataclass(frozen=True)
class Operation:
    """An enforcement operation: ``weeks`` weeks from ``start`` in ``area``."""

    area: str
    start: dt.date
    weeks: int

    @classmethod
    def parse(cls, text: str) -> Operation:
        """Read ``AREA:DATE:WEEKS`` (the area name may contain spaces; DATE is ISO)."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0].strip():
            raise OperationError(f"operation {text!r} is not AREA:DATE:WEEKS")
        area, date_text, weeks_text = parts
        try:
            start = dt.date.fromisoformat(date_text.strip())
        except ValueError:
            raise OperationError(f"operation date {date_text!r} is not an ISO date") from None
        try:
            weeks = int(weeks_text)
        except ValueError:
            raise OperationError(f"operation weeks {weeks_text!r} is not a whole number") from None
        if weeks < 1:
            raise OperationError("an operation lasts at least one week")
        return cls(area.strip(), start, weeks)


@dataclass
class Geography:
    """Forces and their areas, adjacency, ports, activity and price trends."""

    forces: list[str]
    force_codes: list[str]
    areas: list[str]
    area_force: np.ndarray  # (A,) index into forces
    adjacent: list[list[int]]  # area -> adjacent areas (sorted)
    port: np.ndarray  # (A,) bool
    activity: np.ndarray  # (A,) relative seizure rate
    trend: np.ndarray  # (A,) price change a month (relative)


@dataclass
class Calendar:
    start: dt.date
    n_days: int
    month_of_day: np.ndarray  # (n_days,) month index
    month_first: np.ndarray  # (M,) first day of each month
    month_last: np.ndarray  # (M,) last day of each month

    @classmethod
    def of(cls, start: dt.date, end: dt.date) -> Calendar:
        n_days = (end - start).days + 1
        days = np.datetime64(start) + np.arange(n_days)
        months = days.astype("datetime64[M]").astype(np.int64)
        month_of_day = months - months[0]
        n_months = int(month_of_day[-1]) + 1
        first = np.searchsorted(month_of_day, np.arange(n_months), side="left")
        last = np.searchsorted(month_of_day, np.arange(n_months), side="right") - 1
        return cls(start, n_days, month_of_day, first, last)


@dataclass
class ActiveOperation:
    area: int
    first_day: int
    last_day: int
    displaced: list[int]
    spec: Operation


@dataclass
class Network:
    """Batches, lots and dealers; windows are [first, last] days (may reach before the period)."""

    compounds: list[str]
    adulterant_tokens: list[str]  # columns of the amount tables
    # import batches
    batch_first: np.ndarray
    batch_last: np.ndarray
    batch_purity: np.ndarray
    batch_signature: np.ndarray  # (B, d) ln ratio to cocaine
    batch_activity: np.ndarray
    batch_packaging: np.ndarray  # (B, 3) material, colour, closure (-1 none)
    # middle-market lots
    lot_batch: np.ndarray
    lot_first: np.ndarray
    lot_last: np.ndarray
    lot_hub: np.ndarray
    lot_crack: np.ndarray  # bool: converted to crack
    lot_purity: np.ndarray
    lot_drift: np.ndarray  # (L, d) ln shift from the batch signature
    lot_moisture: np.ndarray  # (L,) multiplier of the hydrolysis rate
    hydrolysis: np.ndarray  # (d,) bool: compound is a hydrolysis product
    lot_amounts: np.ndarray  # (L, T) fraction of each adulterant (0 = absent)
    lot_activity: np.ndarray
    lot_packaging: np.ndarray
    # street dealers
    dealer_lot: np.ndarray
    dealer_area: np.ndarray
    dealer_first: np.ndarray
    dealer_last: np.ndarray
    dealer_cut: np.ndarray  # purity factor applied to the lot's purity
    dealer_drift: np.ndarray  # (D, d)
    dealer_unit_price: np.ndarray  # £ a rock (crack) or a deal (powder)
    dealer_mass: np.ndarray  # multiplier of the unit mass
    dealer_activity: np.ndarray
    dealer_packaging: np.ndarray


@dataclass
class Seizures:
    level: np.ndarray  # (S,) 1, 2, 3
    seizure_type: np.ndarray  # (S,) index into Vocabulary.seizure_types keys
    area: np.ndarray
    day: np.ndarray
    analysed_day: np.ndarray
    batch: np.ndarray
    lot: np.ndarray  # -1 for level 3
    dealer: np.ndarray  # -1 for levels 2, 3
    n_exhibits: np.ndarray


def _u(rng: np.random.Generator, pair, size=None):
    return rng.uniform(pair[0], pair[1], size)


def _choice_weights(table: dict) -> tuple[list[str], np.ndarray]:
    keys = list(table)
    w = np.array([float(table[k]) for k in keys])
    return keys, w / w.sum()


# --------------------------------------------------------------------------- geography


def _name(names: list[str], i: int, fallback: str) -> str:
    return names[i] if i < len(names) else f"{fallback} {i + 1}"


def build_geography(params: dict, rng: np.random.Generator) -> Geography:
    geo = params["geography"]
    n_forces, per_force = int(geo["forces"]), int(geo["areas_per_force"])
    forces = [_name(geo["force_names"], f, "Force") for f in range(n_forces)]
    codes: list[str] = []
    for name in forces:
        letters = "".join(ch for ch in name.upper() if ch.isalpha())[:2] or "FX"
        code, k = letters, 1
        while code in codes:
            k += 1
            code = f"{letters}{k}"
        codes.append(code)
    n_areas = n_forces * per_force
    areas = [_name(geo["area_names"], a, "Area") for a in range(n_areas)]
    if len(set(areas)) != n_areas:
        raise ValueError("geography.area_names must be distinct")
    # Areas of a force fill a 2-row block of the grid; forces sit side by side.
    cols_per_force = math.ceil(per_force / 2)
    area_force = np.repeat(np.arange(n_forces), per_force)
    within = np.tile(np.arange(per_force), n_forces)
    row = within % 2
    col = area_force * cols_per_force + within // 2
    adjacent = [
        [int(b) for b in np.flatnonzero(np.abs(row - row[a]) + np.abs(col - col[a]) == 1)]
        for a in range(n_areas)
    ]
    port = within < int(geo["port_areas_per_force"])
    activity = np.exp(rng.normal(0.0, geo["area_activity_sd"], n_areas))
    prices = params["prices"]
    trend = rng.normal(prices["trend_mean_per_month"], prices["trend_sd_per_month"], n_areas)
    trend = np.round(trend, 5)  # written in scenario.json: keep the injected value exact
    return Geography(forces, codes, areas, area_force, adjacent, port, activity, trend)


def activate_operation(
    op: Operation | None, geography: Geography, calendar: Calendar
) -> ActiveOperation | None:
    if op is None:
        return None
    if op.area not in geography.areas:
        raise OperationError(
            f"operation area {op.area!r} is not a simulated area; areas are: "
            + ", ".join(geography.areas)
        )
    first = (op.start - calendar.start).days
    last = first + 7 * op.weeks - 1
    if first < 0 or last >= calendar.n_days:
        end = calendar.start + dt.timedelta(days=calendar.n_days - 1)
        raise OperationError(
            f"operation {op.start.isoformat()} + {op.weeks} weeks falls outside the simulated "
            f"period {calendar.start.isoformat()} to {end.isoformat()}"
        )
    area = geography.areas.index(op.area)
    return ActiveOperation(area, first, last, list(geography.adjacent[area]), op)


def price_index(
    geography: Geography,
    calendar: Calendar,
    op: ActiveOperation | None,
    params: dict,
    area: np.ndarray,
    day: np.ndarray,
) -> np.ndarray:
    """Relative price level in ``area`` on ``day``: 1 at the middle of the period (so the base
    prices of simulate.toml are the period's typical prices), changing by the area's trend a
    month, times 1 + the operation's price effect while it runs."""
    middle = (calendar.n_days - 1) / 2
    index = (1.0 + geography.trend[area]) ** ((day - middle) / DAYS_PER_MONTH)
    if op is not None:
        during = (area == op.area) & (day >= op.first_day) & (day <= op.last_day)
        index = np.where(during, index * (1.0 + params["operation"]["price_effect"]), index)
    return index


# --------------------------------------------------------------------------- network


def _signatures(params: dict, compounds: list[str], n: int, rng: np.random.Generator):
    prof = params["profile"]
    entries = [prof["compounds"].get(c, prof["default"]) for c in compounds]
    base = np.log([e.get("ratio", prof["default"]["ratio"]) for e in entries])
    sd = np.array([e.get("between_batch_sd", prof["default"]["between_batch_sd"]) for e in entries])
    d = len(compounds)
    min_sep = float(prof["min_batch_separation"])
    out = np.empty((n, d))
    for b in range(n):
        for _ in range(200):
            candidate = base + rng.normal(0.0, 1.0, d) * sd
            if b == 0:
                break
            rms = np.sqrt(np.mean((out[:b] - candidate) ** 2, axis=1))
            if rms.min() >= min_sep:
                break
        out[b] = candidate
    return out


def _assign_parents(n_children: int, weights: np.ndarray, rng: np.random.Generator):
    """Every parent gets one child first (if there are enough children), the rest by weight."""
    n_parents = len(weights)
    first = rng.permutation(n_parents)[: min(n_parents, n_children)]
    rest = rng.choice(n_parents, size=n_children - len(first), p=weights / weights.sum())
    return rng.permutation(np.concatenate([first, rest]).astype(np.int64))


def _stratified_share(parent: np.ndarray, n_parents: int, share: float, rng) -> np.ndarray:
    """Mark ``share`` of each parent's children (randomly rounded), in random order: a batch
    with several lots has both crack and powder lots about as often as the share says."""
    out = np.zeros(len(parent), bool)
    order = rng.permutation(len(parent))
    ranked = order[np.argsort(parent[order], kind="stable")]
    counts = np.bincount(parent, minlength=n_parents)
    marked = np.floor(counts * share + rng.uniform(0, 1, n_parents)).astype(np.int64)
    start = 0
    for p in range(n_parents):
        out[ranked[start : start + marked[p]]] = True
        start += counts[p]
    return out


def _packaging(table: dict, n: int, vocabulary: Vocabulary, rng: np.random.Generator):
    materials = list(vocabulary.packaging["material"])
    colours = list(vocabulary.packaging["colour"])
    closures = list(vocabulary.packaging["closure"])
    options = [(m, c) for m, allowed in table.items() for c in allowed]
    pick = rng.integers(0, len(options), n)
    out = np.empty((n, 3), dtype=np.int64)
    out[:, 0] = [materials.index(options[k][0]) for k in pick]
    out[:, 1] = rng.integers(0, len(colours), n)
    out[:, 2] = [closures.index(options[k][1]) if options[k][1] else -1 for k in pick]
    return out


def _windows(parent_first, parent_last, start_frac, dur_frac, rng):
    span = (parent_last - parent_first + 1).astype(float)
    first = parent_first + np.floor(_u(rng, start_frac, len(span)) * span).astype(np.int64)
    last = np.minimum(
        first + np.ceil(_u(rng, dur_frac, len(span)) * span).astype(np.int64), parent_last
    )
    return first, np.maximum(last, first)


def build_network(
    params: dict,
    vocabulary: Vocabulary,
    geography: Geography,
    calendar: Calendar,
    n_exhibits: int,
    rng: np.random.Generator,
) -> Network:
    net = params["network"]
    compounds = list(vocabulary.compounds)
    n_areas = len(geography.areas)
    n_batches = max(
        int(net["min_batches"]), round(net["batches_per_sqrt_exhibit"] * math.sqrt(n_exhibits))
    )
    n_lots = max(
        n_batches * int(net["min_lots_per_batch"]), round(n_exhibits / net["exhibits_per_lot"])
    )
    n_dealers = max(n_lots, round(n_exhibits / net["exhibits_per_dealer"]))
    act_sd = net["activity_sd"]

    # Import batches: arrivals spread evenly over the period (each in its own stratum) so that
    # some batch is on the market every day; lifetimes overlap.
    life = np.round(_u(rng, net["batch_lifetime_months"], n_batches) * DAYS_PER_MONTH)
    life = life.astype(np.int64)
    lo = -int(life.max())
    span = calendar.n_days - lo
    strata = rng.permutation(n_batches)
    batch_first = lo + np.floor((strata + rng.uniform(0, 1, n_batches)) * span / n_batches)
    batch_first = batch_first.astype(np.int64)
    batch_last = batch_first + life
    batch_purity = _u(rng, params["purity"]["import"], n_batches)
    signature = _signatures(params, compounds, n_batches, rng)
    batch_activity = np.exp(rng.normal(0, act_sd, n_batches))
    batch_packaging = _packaging(params["packaging"]["import"], n_batches, vocabulary, rng)

    # Middle-market lots.
    lot_batch = _assign_parents(n_lots, batch_activity, rng)
    lot_first, lot_last = _windows(
        batch_first[lot_batch],
        batch_last[lot_batch],
        net["lot_start_fraction"],
        net["lot_duration_fraction"],
        rng,
    )
    lot_hub = rng.choice(n_areas, size=n_lots, p=geography.activity / geography.activity.sum())
    lot_crack = _stratified_share(lot_batch, n_batches, net["crack_lot_share"], rng)
    lot_purity = batch_purity[lot_batch] * _u(rng, params["purity"]["lot_cut_factor"], n_lots)
    prof = params["profile"]
    d = len(compounds)
    hyd = np.array([c in prof["hydrolysis"] for c in compounds])
    drift = rng.normal(0, prof["lot_drift_sd"], (n_lots, d))
    crack_shift = prof["crack_shift"] + rng.normal(0, prof["crack_shift_sd"], (n_lots, d))
    crack_other = rng.normal(0, prof["crack_other_sd"], (n_lots, d))
    drift += lot_crack[:, None] * np.where(hyd, crack_shift, crack_other)

    lot_moisture = _u(rng, prof["lot_moisture"], n_lots)

    adu = params["adulterants"]
    cut_tokens, cut_p = _choice_weights(adu["cut_tokens"])
    dil_tokens, dil_p = _choice_weights(adu["diluent_tokens"])
    tokens = cut_tokens + [t for t in dil_tokens if t not in cut_tokens]
    amounts = np.zeros((n_lots, len(tokens)))
    count_p = np.asarray(adu["count_weights"], float)
    counts = 1 + rng.choice(len(count_p), size=n_lots, p=count_p / count_p.sum())
    for i in range(n_lots):
        picked = rng.choice(len(cut_tokens), size=counts[i], replace=False, p=cut_p)
        amounts[i, picked] = _u(rng, adu["amount_range"], counts[i])
    diluted = (~lot_crack) & (rng.uniform(0, 1, n_lots) < adu["diluent_share"])
    dil_pick = rng.choice(len(dil_tokens), size=n_lots, p=dil_p)
    dil_col = np.array([tokens.index(t) for t in dil_tokens])[dil_pick]
    dil_amount = _u(rng, adu["amount_range"], n_lots)
    rows = np.flatnonzero(diluted)
    amounts[rows, dil_col[rows]] = np.maximum(amounts[rows, dil_col[rows]], dil_amount[rows])
    lot_activity = np.exp(rng.normal(0, act_sd, n_lots))
    lot_packaging = _packaging(params["packaging"]["middle"], n_lots, vocabulary, rng)

    # Street dealers: each supplied by one lot, in its hub area or an adjacent one.
    dealer_lot = _assign_parents(n_dealers, lot_activity, rng)
    hub = lot_hub[dealer_lot]
    move = rng.uniform(0, 1, n_dealers) >= net["dealer_in_hub_area"]
    dealer_area = hub.copy()
    for i in np.flatnonzero(move):
        options = geography.adjacent[hub[i]]
        if options:
            dealer_area[i] = options[rng.integers(0, len(options))]
    dealer_first, dealer_last = _windows(
        lot_first[dealer_lot],
        lot_last[dealer_lot],
        net["dealer_start_fraction"],
        net["dealer_duration_fraction"],
        rng,
    )
    dealer_cut = _u(rng, params["purity"]["dealer_cut_factor"], n_dealers)
    dealer_drift = rng.normal(0, prof["dealer_drift_sd"], (n_dealers, d))
    prices = params["prices"]
    crack = lot_crack[dealer_lot]
    rock = rng.choice(
        prices["rock_prices_gbp"],
        size=n_dealers,
        p=np.divide(prices["rock_price_weights"], sum(prices["rock_price_weights"])),
    )
    deal = rng.choice(
        prices["powder_deal_prices_gbp"],
        size=n_dealers,
        p=np.divide(prices["powder_deal_weights"], sum(prices["powder_deal_weights"])),
    )
    dealer_unit_price = np.where(crack, rock, deal)
    dealer_mass = np.exp(rng.normal(0, prices["dealer_mass_sd"], n_dealers))
    dealer_activity = np.exp(rng.normal(0, act_sd, n_dealers))
    pk = params["packaging"]
    crack_pack = _packaging(pk["street_crack"], n_dealers, vocabulary, rng)
    powder_pack = _packaging(pk["street_powder"], n_dealers, vocabulary, rng)
    dealer_packaging = np.where(crack[:, None], crack_pack, powder_pack)

    return Network(
        compounds,
        tokens,
        batch_first,
        batch_last,
        batch_purity,
        signature,
        batch_activity,
        batch_packaging,
        lot_batch,
        lot_first,
        lot_last,
        lot_hub,
        lot_crack,
        lot_purity,
        drift,
        lot_moisture,
        hyd,
        amounts,
        lot_activity,
        lot_packaging,
        dealer_lot,
        dealer_area,
        dealer_first,
        dealer_last,
        dealer_cut,
        dealer_drift,
        dealer_unit_price,
        dealer_mass,
        dealer_activity,
        dealer_packaging,
    )


# --------------------------------------------------------------------------- seizures


def _seizure_counts(params: dict, n_exhibits: int, rng: np.random.Generator):
    """Levels and exhibit counts of seizures whose exhibits add up to exactly ``n_exhibits``."""
    share = np.array([params["levels"][str(k)]["share"] for k in LEVELS])
    extra = np.array([params["levels"][str(k)]["extra_exhibits_mean"] for k in LEVELS])
    # Levels of up to n_exhibits seizures in the exact shares, shuffled: a small sample keeps
    # close to the level mix (a plain draw can leave a 300-exhibit sample with no import seizure).
    exact = share / share.sum() * n_exhibits
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact)[: n_exhibits - counts.sum()]] += 1
    level = rng.permutation(np.repeat(np.array(LEVELS), counts))
    n_ex = 1 + rng.poisson(extra[level - 1])
    total = np.cumsum(n_ex)
    n_seizures = int(np.searchsorted(total, n_exhibits) + 1)
    level, n_ex = level[:n_seizures], n_ex[:n_seizures].copy()
    n_ex[-1] -= int(total[n_seizures - 1] - n_exhibits)
    return level, n_ex


def _pick(
    want_area: np.ndarray,
    want_month: np.ndarray,
    area_of: np.ndarray | None,
    first: np.ndarray,
    last: np.ndarray,
    activity: np.ndarray,
    geography: Geography,
    calendar: Calendar,
    rng: np.random.Generator,
) -> np.ndarray:
    """For each request (area, month), an entity active that month in that area, else in an
    adjacent area, else anywhere that month, else the nearest in time; chosen by activity."""
    out = np.empty(len(want_area), dtype=np.int64)
    cells = want_area * len(calendar.month_first) + want_month
    order = np.argsort(cells, kind="stable")
    bounds = np.flatnonzero(np.diff(cells[order])) + 1
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        a, m = int(want_area[group[0]]), int(want_month[group[0]])
        live = (first <= calendar.month_last[m]) & (last >= calendar.month_first[m])
        cands = np.empty(0, dtype=np.int64)
        if area_of is not None:
            cands = np.flatnonzero(live & (area_of == a))
            if len(cands) == 0:
                cands = np.flatnonzero(live & np.isin(area_of, geography.adjacent[a]))
        if len(cands) == 0:
            cands = np.flatnonzero(live)
        if len(cands) == 0:
            mid = (calendar.month_first[m] + calendar.month_last[m]) / 2
            gap = np.maximum(first - mid, mid - last)
            cands = np.flatnonzero(gap == gap.min())
        w = activity[cands]
        out[group] = cands[rng.choice(len(cands), size=len(group), p=w / w.sum())]
    return out


def make_seizures(
    params: dict,
    vocabulary: Vocabulary,
    geography: Geography,
    calendar: Calendar,
    network: Network,
    op: ActiveOperation | None,
    n_exhibits: int,
    rng: np.random.Generator,
) -> Seizures:
    level, n_ex = _seizure_counts(params, n_exhibits, rng)
    n = len(level)
    type_names = list(vocabulary.seizure_types)
    seizure_type = np.empty(n, dtype=np.int64)
    for k in LEVELS:
        rows = np.flatnonzero(level == k)
        keys, p = _choice_weights(params["levels"][str(k)]["seizure_types"])
        seizure_type[rows] = np.array([type_names.index(t) for t in keys])[
            rng.choice(len(keys), size=len(rows), p=p)
        ]

    n_areas, n_days = len(geography.areas), calendar.n_days
    area = np.empty(n, dtype=np.int64)
    day = np.empty(n, dtype=np.int64)
    opp = params["operation"]
    for k in LEVELS:
        rows = np.flatnonzero(level == k)
        if k == 3:
            continue
        # Seizure intensity over days x areas; an operation raises it in its area and, through
        # displacement, in the adjacent ones.
        rate = np.tile(geography.activity, (n_days, 1))
        if op is not None and k in opp["levels"]:
            window = slice(op.first_day, op.last_day + 1)
            rate[window, op.area] *= 1.0 + opp["seizure_rate_effect"]
            rate[window, op.displaced] *= 1.0 + opp["displacement_effect"]
        flat = rng.choice(n_days * n_areas, size=len(rows), p=(rate / rate.sum()).ravel())
        day[rows], area[rows] = np.divmod(flat, n_areas)
    rows = np.flatnonzero(level == 3)
    border = seizure_type[rows] == type_names.index("border")
    ports = np.flatnonzero(geography.port)
    w_port = geography.activity[ports] / geography.activity[ports].sum()
    w_all = geography.activity / geography.activity.sum()
    area[rows] = np.where(
        border,
        ports[rng.choice(len(ports), size=len(rows), p=w_port)],
        rng.choice(n_areas, size=len(rows), p=w_all),
    )
    month = calendar.month_of_day

    batch = np.full(n, -1, dtype=np.int64)
    lot = np.full(n, -1, dtype=np.int64)
    dealer = np.full(n, -1, dtype=np.int64)
    # Level 3: a batch at import time; the seizure falls inside its import window.
    net = params["network"]
    imp_last = network.batch_first + np.ceil(
        (network.batch_last - network.batch_first) * net["import_window_fraction"]
    ).astype(np.int64)
    batch[rows] = _choose_batches(network, imp_last, calendar, len(rows), rng)
    lo = np.clip(network.batch_first[batch[rows]], 0, n_days - 1)
    hi = np.clip(imp_last[batch[rows]], lo, n_days - 1)
    day[rows] = lo + np.floor(rng.uniform(0, 1, len(rows)) * (hi - lo + 1)).astype(np.int64)
    # Level 2: a lot distributed in (or next to) the seizure's area.
    rows = np.flatnonzero(level == 2)
    lot[rows] = _pick(
        area[rows],
        month[day[rows]],
        network.lot_hub,
        network.lot_first,
        network.lot_last,
        network.lot_activity,
        geography,
        calendar,
        rng,
    )
    batch[rows] = network.lot_batch[lot[rows]]
    # Level 1: a dealer of the area; during an operation, the extra seizures of the displaced
    # areas are the operation area's dealers who moved there.
    rows = np.flatnonzero(level == 1)
    lookup = area[rows].copy()
    if op is not None and 1 in opp["levels"]:
        e = opp["displacement_effect"]
        moved = (
            np.isin(lookup, op.displaced)
            & (day[rows] >= op.first_day)
            & (day[rows] <= op.last_day)
            & (rng.uniform(0, 1, len(rows)) < e / (1.0 + e))
        )
        lookup[moved] = op.area
    dealer[rows] = _pick(
        lookup,
        month[day[rows]],
        network.dealer_area,
        network.dealer_first,
        network.dealer_last,
        network.dealer_activity,
        geography,
        calendar,
        rng,
    )
    lot[rows] = network.dealer_lot[dealer[rows]]
    batch[rows] = network.lot_batch[lot[rows]]

    lab = params["laboratory"]
    delay = np.exp(rng.normal(np.log(lab["delay_median_days"]), lab["delay_sd"], n))
    delay = np.clip(np.round(delay), 1, lab["delay_max_days"]).astype(np.int64)
    return Seizures(level, seizure_type, area, day, day + delay, batch, lot, dealer, n_ex)


def _choose_batches(network: Network, imp_last, calendar: Calendar, n: int, rng):
    """Batches seized at import: any batch whose import window meets the period, by activity."""
    meets = (imp_last >= 0) & (network.batch_first <= calendar.n_days - 1)
    cands = np.flatnonzero(meets)
    if len(cands) == 0:
        cands = np.arange(len(network.batch_first))
    w = network.batch_activity[cands]
    return cands[rng.choice(len(cands), size=n, p=w / w.sum())]
