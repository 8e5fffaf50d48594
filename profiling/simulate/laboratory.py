"""Exhibits as the laboratory records them: weights before and after analysis, rocks, purity,
adulterants with their amounts, packaging, test-purchase prices and the impurity profile.

Weights are kept as whole milligrams, purity as whole tenths of a per cent (per mille) and prices
as whole pence, so that what the export writes is exactly the truth, with no float rounding
between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profiling.simulate.market import (
    DAYS_PER_MONTH,
    ActiveOperation,
    Calendar,
    Geography,
    Network,
    Seizures,
    price_index,
)
from profiling.simulate.vocabulary import Vocabulary

CENSORED_NONE, CENSORED_TRACE, CENSORED_BELOW = 0, 1, 2


@dataclass
class Exhibits:
    """One entry per exhibit (N), in seizure order."""

    seizure: np.ndarray
    within: np.ndarray  # position of the exhibit in its seizure (0, 1, ...)
    drug: np.ndarray  # index into Vocabulary.drugs keys
    weight_before_mg: np.ndarray
    weight_after_mg: np.ndarray
    rock_count: np.ndarray  # -1 = not counted
    purity_permille: np.ndarray  # -1 = censored (see censored)
    censored: np.ndarray  # CENSORED_*
    amounts: np.ndarray  # (N, T) fraction of each adulterant token, 0 = absent
    packaging: np.ndarray  # (N, 3) material, colour, closure; -1 = none / not recorded
    price_pence: np.ndarray  # -1 = not a purchase
    profile: np.ndarray  # (N, d) peak areas; 0 = below the limit of quantification
    seized_day: np.ndarray  # (N,) as written (days from the start of the period)
    analysed_day: np.ndarray  # (N,)
    scientific: np.ndarray  # (N, d) bool: profile cell written in scientific notation


def _resolution_mg(weight_g: np.ndarray) -> np.ndarray:
    """Balance resolution: 1 mg under 100 g, 10 mg under 1 kg, 0.1 g above."""
    return np.where(weight_g < 100, 1, np.where(weight_g < 1000, 10, 100))


def _to_mg(weight_g: np.ndarray) -> np.ndarray:
    res = _resolution_mg(weight_g)
    return (np.maximum(np.round(weight_g * 1000 / res), 1) * res).astype(np.int64)


def make_exhibits(
    params: dict,
    vocabulary: Vocabulary,
    geography: Geography,
    calendar: Calendar,
    network: Network,
    seizures: Seizures,
    op: ActiveOperation | None,
    rng: np.random.Generator,
) -> Exhibits:
    s = np.repeat(np.arange(len(seizures.level)), seizures.n_exhibits)
    starts = np.cumsum(seizures.n_exhibits) - seizures.n_exhibits
    within = np.arange(len(s)) - np.repeat(starts, seizures.n_exhibits)
    n = len(s)
    level = seizures.level[s]
    lot, dealer, batch = seizures.lot[s], seizures.dealer[s], seizures.batch[s]
    area, day = seizures.area[s], seizures.day[s]
    type_names = list(vocabulary.seizure_types)
    stype = np.array(type_names)[seizures.seizure_type[s]]
    street, middle, imported = level == 1, level == 2, level == 3
    crack = np.zeros(n, bool)
    crack[~imported] = network.lot_crack[lot[~imported]]
    drugs = list(vocabulary.drugs)
    drug = np.where(crack, drugs.index("crack_cocaine"), drugs.index("cocaine_hcl"))

    # ---- quantity and price
    q, pr = params["quantities"], params["prices"]
    stash_p = np.array([q["stash_share"].get(t, 0.0) for t in type_names])[seizures.seizure_type[s]]
    stash = street & (rng.uniform(0, 1, n) < stash_p)
    # A crack stash is either a bag of counted rocks or an uncounted lump.
    counted_stash = stash & crack & (rng.uniform(0, 1, n) < q["stash_counted_share"])
    lump = stash & ~counted_stash
    extra = np.array([q["extra_rocks"].get(t, 0.0) for t in type_names])[seizures.seizure_type[s]]
    rocks = np.full(n, -1, dtype=np.int64)
    street_rocks = street & crack & ~lump
    rocks[street_rocks] = (
        1 + rng.poisson(np.where(stash, q["stash_extra_rocks"], extra))[street_rocks]
    )
    index = price_index(geography, calendar, op, params, area, day)
    d_safe = np.where(dealer >= 0, dealer, 0)
    unit_price = network.dealer_unit_price[d_safe]
    per_g = np.where(crack, pr["crack_price_per_g_gbp"], pr["powder_price_per_g_gbp"])
    unit_mass = unit_price / (per_g * index) * network.dealer_mass[d_safe]
    weight_g = np.zeros(n)
    nr = np.maximum(rocks, 1)
    weight_g[street] = (
        nr * unit_mass * np.exp(rng.normal(0, 1, n) * pr["rock_mass_sd"] / np.sqrt(nr))
    )[street]
    weight_g[lump] = np.exp(rng.normal(np.log(q["stash_median_g"]), q["stash_sd"], n))[lump]
    mid = np.exp(rng.normal(np.log(q["middle_median_g"]), q["middle_sd"], n))
    weight_g[middle] = np.clip(mid, *q["middle_range_g"])[middle]
    # Some middle-market crack comes already cut into rocks (of the cheapest street size).
    rock_g = min(pr["rock_prices_gbp"]) / (pr["crack_price_per_g_gbp"] * index)
    bagged = middle & crack & (rng.uniform(0, 1, n) < q["middle_counted_share"])
    rocks[bagged] = np.maximum(1, np.round(weight_g / rock_g)).astype(np.int64)[bagged]
    small = rng.uniform(0, 1, n) < q["small_package_share"]
    package = q["package_g"] * rng.uniform(*q["package_range"], n)
    parcel = np.clip(
        np.exp(rng.normal(np.log(q["small_package_median_g"]), q["small_package_sd"], n)),
        *q["small_package_range_g"],
    )
    weight_g[imported] = np.where(small, parcel, package)[imported]
    before_mg = _to_mg(weight_g)
    # Only test purchases are paid for; a deal is a whole number of rocks or one wrap.
    bought = street & ~stash & (stype == "test_purchase")
    price_pence = np.where(bought, np.round(np.where(crack, nr, 1) * unit_price * 100), -1).astype(
        np.int64
    )

    # ---- analysis consumes a little of the exhibit
    lab = params["laboratory"]
    used_g = np.minimum(
        rng.uniform(*lab["consumption_g"], n), lab["consumption_max_fraction"] * before_mg / 1000
    )
    after_mg = _to_mg(np.maximum(before_mg / 1000 - used_g, 1e-3))
    after_mg = np.minimum(after_mg, before_mg)

    # ---- purity: the source's purity, a little exhibit-to-exhibit variation
    pur = params["purity"]
    source = np.empty(n)
    source[imported] = network.batch_purity[batch[imported]]
    source[middle] = network.lot_purity[lot[middle]]
    source[street] = (network.lot_purity[lot] * network.dealer_cut[d_safe])[street]
    purity = np.clip(source * (1 + rng.normal(0, pur["exhibit_relative_sd"], n)), 0.011, 0.99)
    censored = np.zeros(n, dtype=np.int8)
    inert = street & ~stash & (rng.uniform(0, 1, n) < pur["censored_share"])
    trace = inert & (rng.uniform(0, 1, n) < 0.5)
    below = inert & ~trace
    purity[trace] = rng.uniform(*pur["trace_range"], n)[trace]
    purity[below] = rng.uniform(*pur["below_range"], n)[below]
    censored[trace], censored[below] = CENSORED_TRACE, CENSORED_BELOW
    permille = np.where(inert, -1, np.round(purity * 1000)).astype(np.int64)

    # ---- adulterants: the lot's cut, diluted further by the street dealer
    amounts = np.zeros((n, len(network.adulterant_tokens)))
    lot_rows = ~imported
    amounts[lot_rows] = network.lot_amounts[lot[lot_rows]]
    amounts[street] *= network.dealer_cut[d_safe][street, None]
    amounts *= np.exp(rng.normal(0, 0.05, amounts.shape))
    amounts = np.round(amounts, 3)

    # ---- packaging of the seller: dealer (street), lot (middle market), batch (import)
    packaging = np.empty((n, 3), dtype=np.int64)
    packaging[street] = network.dealer_packaging[dealer[street]]
    packaging[middle] = network.lot_packaging[lot[middle]]
    packaging[imported] = network.batch_packaging[batch[imported]]
    unrecorded = rng.uniform(0, 1, n) < params["packaging"]["unrecorded_share"]
    packaging[unrecorded] = -1

    # ---- impurity profile: peak areas scale with the cocaine injected
    d = len(network.compounds)
    log_ratio = network.batch_signature[batch].copy()
    log_ratio[lot_rows] += network.lot_drift[lot[lot_rows]]
    log_ratio[street] += network.dealer_drift[dealer[street]]
    # Hydrolysis products keep rising after import, faster in a damp lot (DOMAIN: they drift
    # with age and moisture within a batch).
    age_months = np.maximum(day - network.batch_first[batch], 0) / DAYS_PER_MONTH
    moisture = np.where(lot_rows, network.lot_moisture[np.where(lot_rows, lot, 0)], 1.0)
    log_ratio += np.outer(
        params["profile"]["ageing_per_month"] * age_months * moisture, network.hydrolysis
    )
    log_ratio += rng.normal(0, params["profile"]["exhibit_noise_sd"], (n, d))
    cocaine = (
        lab["cocaine_area_median"] * purity / 0.4 * np.exp(rng.normal(0, lab["injection_sd"], n))
    )
    areas = np.round(cocaine[:, None] * np.exp(log_ratio))
    areas[areas < lab["loq_area"]] = 0.0

    return Exhibits(
        s,
        within,
        drug,
        before_mg,
        after_mg,
        rocks,
        permille,
        censored,
        amounts,
        packaging,
        price_pence,
        areas,
        day.copy(),
        seizures.analysed_day[s].copy(),
        np.zeros(areas.shape, dtype=bool),
    )
