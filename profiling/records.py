"""The canonical exhibit record: every field, its type and unit, defined once.

Everything else (readers, the library, exports, reports) iterates over ``FIELDS`` instead of
naming columns again. Missing values: ``""`` for text, NaN for floats, ``-1`` for counts, NaT for
dates. Token-list fields (``adulterants``, ``packaging``, ``flags``) hold sorted canonical tokens
joined with ``;`` — the same form every CSV output uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "date", "float", "count", "tokens"]


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    doc: str
    derived: bool = False
    internal: bool = False  # bookkeeping, not a fact about the exhibit


FIELDS: tuple[Field, ...] = (
    Field("exhibit_id", "text", "laboratory exhibit reference; unique in a library"),
    Field("seizure_id", "text", "police seizure/occurrence reference"),
    Field("force", "text", "police force"),
    Field("area", "text", "basic command unit, borough or district"),
    Field("seized_on", "date", "date of seizure"),
    Field("analysed_on", "date", "date of analysis"),
    Field("drug", "text", "crack_cocaine | cocaine_hcl | heroin | other"),
    Field("seizure_type", "text", "test_purchase | stop_search | warrant | border | other"),
    Field("weight_before_g", "float", "weight before analysis, grams (> 0)"),
    Field("weight_after_g", "float", "weight after analysis, grams (>= 0)"),
    Field("analysis_loss_g", "float", "weight_before_g - weight_after_g, grams", derived=True),
    Field("rock_count", "count", "rocks counted (-1 unknown)"),
    Field("mean_rock_g", "float", "weight_before_g / rock_count, grams", derived=True),
    Field("purity", "float", "drug content as a fraction in [0, 1]; NaN if not measured or censored"),
    Field("purity_censored", "text", "'' | trace | below (purity reported only as a bound)"),
    Field("purity_limit", "float", "upper bound of a censored purity ('<1%' -> 0.01)", derived=True),
    Field("pure_mass_g", "float", "weight_before_g * purity, grams", derived=True),
    Field("adulterants", "tokens", "canonical adulterant names, sorted, ';'-joined"),
    Field("adulterant_fractions", "tokens", "name=fraction for adulterants given an amount"),
    Field("packaging", "tokens", "canonical packaging tokens (material, colour, closure)"),
    Field("price_gbp", "float", "test-purchase price paid, GBP"),
    Field("flags", "tokens", "evidence flags, sorted, ';'-joined"),
    Field("unknown_vocabulary", "text", "raw text of unrecognised vocabulary, 'field=text' joined by ' | '"),
    Field("source_file", "text", "file name the record came from", internal=True),
    Field("source_line", "count", "physical line in the source file", internal=True),
    Field("import_id", "count", "import that wrote this version", internal=True),
)

FIELD_BY_NAME = {f.name: f for f in FIELDS}

#: Fields an export can supply (not derived, not bookkeeping).
INPUT_FIELDS = tuple(f.name for f in FIELDS if not f.derived and not f.internal
                     and f.name not in ("flags", "unknown_vocabulary", "purity_censored",
                                        "adulterant_fractions"))

#: Fields whose values define an exhibit's content (used to tell duplicates from conflicts).
CONTENT_FIELDS = tuple(f.name for f in FIELDS if not f.internal)

#: Evidence-flag tokens (SPEC: Bad input).
FLAGS = ("weight_gain", "analysis_loss", "rock_mass", "seized_after_analysed", "future_date",
         "unknown_vocabulary")

DRUGS = ("crack_cocaine", "cocaine_hcl", "heroin", "other")
SEIZURE_TYPES = ("test_purchase", "stop_search", "warrant", "border", "other")

PROFILE_PREFIX = "p_"
ATTRIBUTE_PREFIX = "attr_"
MISSING_COUNT = -1
