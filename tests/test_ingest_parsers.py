"""Property tests for the cell parsers: what they accept round-trips; garbage never raises."""

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiling.ingest.normalise import (
    ABOVE_100,
    MISSING,
    NEGATIVE,
    NOT_POSITIVE,
    OK,
    UNREADABLE,
    parse_counts,
    parse_date_text,
    parse_dates,
    parse_peak_areas,
    parse_prices,
    parse_purity,
    parse_weights,
)
from profiling.ingest.vocabulary import parse_adulterants, parse_packaging

grams = st.floats(min_value=1e-4, max_value=5e5, allow_nan=False, allow_infinity=False)
UNITS = {"g": 1.0, "mg": 1e-3, "kg": 1e3}


@given(grams, st.sampled_from(sorted(UNITS)), st.sampled_from(["", " ", "  "]))
def test_weight_with_unit_round_trips(value_g, unit, space):
    written = repr(value_g / UNITS[unit]) if unit != "g" else repr(value_g)
    cell = f"{written}{space}{unit}"
    parsed = parse_weights([cell])
    assert parsed.problem[0] == OK
    assert math.isclose(parsed.values[0], value_g, rel_tol=1e-12)


@given(grams, st.sampled_from(sorted(UNITS)))
def test_bare_weight_uses_the_default_unit(value, unit):
    parsed = parse_weights([repr(value)], unit)
    assert parsed.problem[0] == OK
    assert math.isclose(parsed.values[0], value * UNITS[unit], rel_tol=1e-12)


def test_weight_examples_from_spec():
    parsed = parse_weights(["0.23g", "230 mg", "1.2 kg", " 1,234.5 g", "0,23", "", "abc",
                            "-2 g", "0", "12..3", "3 furlongs", "<0.1 g"])
    np.testing.assert_allclose(parsed.values[:5], [0.23, 0.23, 1200.0, 1234.5, 0.23])
    assert parsed.values[1] == 0.23  # exactly, not 0.22999999999999998
    assert list(parsed.problem) == [OK] * 5 + [MISSING, UNREADABLE, NEGATIVE, NOT_POSITIVE,
                                               UNREADABLE, UNREADABLE, UNREADABLE]


@given(st.floats(min_value=0, max_value=100, allow_nan=False), st.sampled_from(["%", " %", " percent"]))
def test_percent_purity_round_trips(pct, sign):
    parsed = parse_purity([f"{pct!r}{sign}"])
    assert parsed.problem[0] == OK
    assert math.isclose(parsed.values[0], pct / 100, rel_tol=1e-12, abs_tol=1e-15)


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
def test_fraction_purity_round_trips(frac):
    parsed = parse_purity([repr(frac)], purity_unit="fraction")
    assert parsed.problem[0] == OK and parsed.values[0] == frac


def test_purity_rules_of_spec():
    cells = ["34%", "34 %", "34", "0.34", "trace", "<1%", "n/a", "", "120%", "-3%", "pure-ish"]
    p = parse_purity(cells)
    np.testing.assert_allclose(p.values[:4], [0.34, 0.34, 0.34, 0.34])
    assert list(p.censored[4:6]) == ["trace", "below"]
    assert math.isnan(p.values[4]) and math.isnan(p.values[5])
    assert p.limit[5] == 0.01
    assert list(p.problem) == [OK] * 8 + [ABOVE_100, NEGATIVE, UNREADABLE]
    # a % in the header (or purity_unit = percent) makes bare numbers percent, even below 1
    assert parse_purity(["0.5"], header_percent=True).values[0] == 0.005
    assert parse_purity(["0.5"], purity_unit="percent").values[0] == 0.005
    assert parse_purity(["0.5"]).values[0] == 0.5


@given(st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2069, 12, 31)),
       st.sampled_from(["dmy", "mdy", "ymd"]), st.sampled_from(["/", "-", "."]))
def test_dates_round_trip_in_every_order(day, order, sep):
    parts = {"d": f"{day.day:02d}", "m": f"{day.month:02d}", "y": f"{day.year:04d}"}
    cell = sep.join(parts[c] for c in order)
    assert parse_date_text(cell, order) == day
    # ISO is read whatever the order
    assert parse_date_text(day.isoformat(), order) == day


def test_day_first_is_the_default_and_iso_mixes_in():
    days, problem = parse_dates(["03/02/2025", "2025-02-03", "3 Feb 2025", "Feb 3, 2025", "",
                                 "31/02/2025", "soon"])
    assert [str(d) for d in days[:4]] == ["2025-02-03"] * 4
    assert list(problem) == [OK] * 4 + [MISSING, UNREADABLE, UNREADABLE]


@given(st.integers(min_value=0, max_value=10_000), st.sampled_from(["", " rocks", " rock", "x"]))
def test_rock_counts(count, word):
    cell = f"{count}{word}" if word != "x" else f"{count} x"
    parsed = parse_counts([cell])
    assert parsed.problem[0] == OK and parsed.values[0] == count


def test_counts_reject_fractions_and_text():
    parsed = parse_counts(["2.5", "three", "", "-1"])
    assert list(parsed.problem) == [UNREADABLE, UNREADABLE, MISSING, NEGATIVE]


@given(st.decimals(min_value=0, max_value=100000, places=2))
def test_prices_round_trip(price):
    for cell in (f"£{price}", f"{price}", f"£ {price}", f"{price} GBP"):
        parsed = parse_prices([cell])
        assert parsed.problem[0] == OK and parsed.values[0] == float(price)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_peak_areas_round_trip(area):
    for cell in (repr(area), f"{area:.6E}"):
        parsed = parse_peak_areas([cell])
        assert parsed.problem[0] == OK
        assert parsed.values[0] == float(cell)


def test_not_detected_cells_are_zero():
    parsed = parse_peak_areas(["<LOQ", "", "0", "nd", "n.d.", "<0.05", "bad", "-3"])
    assert list(parsed.values[:6]) == [0.0] * 6
    assert list(parsed.problem) == [OK] * 6 + [UNREADABLE, NEGATIVE]


CELL = st.one_of(st.text(max_size=40), st.none(), st.floats(allow_nan=True),
                 st.text(alphabet="0123456789.,-+eE%<>£ gmkrocs", max_size=20))


@settings(max_examples=300)
@given(st.lists(CELL, max_size=30))
def test_garbage_never_raises(cells):
    n = len(cells)
    for parse in (parse_weights, parse_counts, parse_prices, parse_peak_areas):
        out = parse(cells)
        assert len(out.values) == n and len(out.problem) == n
        # every readable cell has a finite value; every unreadable one has none
        assert np.isfinite(out.values[out.problem == OK]).all()
        assert np.isnan(out.values[out.problem == UNREADABLE]).all()
    p = parse_purity(cells)
    assert len(p.values) == n
    ok = p.problem == OK
    assert ((p.values[ok] >= 0) & (p.values[ok] <= 1) | np.isnan(p.values[ok])).all()
    days, problem = parse_dates(cells)
    assert len(days) == n
    for c in cells:
        if isinstance(c, str):
            parse_adulterants(c)
            parse_packaging(c)


@pytest.mark.parametrize("text,names,fractions", [
    ("Lignocaine, benzocaine", ("benzocaine", "lidocaine"), ()),
    ("lidocaine; phenacetin (5%)", ("lidocaine", "phenacetin"), (("phenacetin", 0.05),)),
    ("Caffeine / Procaine", ("caffeine", "procaine"), ()),
    ("none detected", (), ()),
    ("None", (), ()),
    ("Tetramisole and acetaminophen", ("levamisole", "paracetamol"), ()),
])
def test_adulterant_vocabulary(text, names, fractions):
    parsed = parse_adulterants(text)
    assert parsed.names == names and parsed.fractions == fractions and parsed.unknown == ()


def test_unknown_adulterant_is_kept_raw():
    parsed = parse_adulterants("lidocaine, unobtainium")
    assert parsed.names == ("lidocaine",) and parsed.unknown == ("unobtainium",)


@pytest.mark.parametrize("text,tokens", [
    ("Clear plastic bag, knotted", ("clear", "knotted", "plastic_bag")),
    ("cling-film, white, tied", ("cling_film", "knotted", "white")),
    ("blue heat sealed polythene bag", ("blue", "heat_sealed", "plastic_bag")),
    ("paper fold", ("paper_wrap",)),
    ("Tin foil", ("foil",)),
    ("grip seal bag", ("plastic_bag", "self_seal")),
])
def test_packaging_vocabulary(text, tokens):
    parsed = parse_packaging(text)
    assert parsed.tokens == tokens and parsed.unknown == ()
