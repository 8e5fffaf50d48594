"""Where each canonical field is in an export: a ``--mapping`` TOML file or header synonyms.

The mapping file's format is fixed by SPEC (``[columns]``, ``[profile]``, ``[options]``).
Without one, headers are matched against ``reference_data/columns.toml``; a unit written in
brackets after a header ("Weight (mg)", "Purity (%)") is remembered as that column's unit.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from profiling.errors import MappingError
from profiling.ingest.vocabulary import compound_for_header, key, load_toml
from profiling.records import INPUT_FIELDS

DATE_ORDERS = ("dmy", "mdy", "ymd")
PURITY_UNITS = ("percent", "fraction")
REQUIRED = ("exhibit_id", "weight_before_g")

_BRACKET_UNIT = re.compile(r"^(?P<name>.*?)\s*[\(\[]\s*(?P<unit>[^\)\]]*?)\s*[\)\]]\s*$")
_TRAILING_UNITS = ("%", "£", "g", "mg", "kg", "gbp", "percent", "pct")

@dataclass(frozen=True)
class Mapping:
    columns: dict[str, str] = field(default_factory=dict)   # canonical field -> source header
    profile: dict[str, str] = field(default_factory=dict)   # source header -> compound
    date_order: str = "dmy"
    weight_unit: str = "g"
    purity_unit: str | None = None                           # None: bare number <= 1 is a fraction
    personal: tuple[str, ...] = ()                           # source headers holding personal data
    source: Path | None = None

def load_mapping(path: str | Path) -> Mapping:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise MappingError(f"mapping file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as err:
        raise MappingError(f"mapping file {path.name} is not valid TOML: {err}.") from None
    except UnicodeDecodeError:
        raise MappingError(f"mapping file {path.name} is not UTF-8 text.") from None
    unknown_sections = set(data) - {"columns", "profile", "options"}
    if unknown_sections:
        raise MappingError(
            f"mapping file {path.name} has unknown section(s) {sorted(unknown_sections)}; "
            "expected [columns], [profile], [options]."
        )
    columns = data.get("columns", {})
    bad = sorted(set(columns) - set(INPUT_FIELDS))
    if bad:
        raise MappingError(
            f"mapping file {path.name}: [columns] names unknown field(s) {bad}; canonical fields "
            f"are {', '.join(INPUT_FIELDS)}."
        )
    for section in ("columns", "profile"):
        for k, v in data.get(section, {}).items():
            if not isinstance(v, str):
                raise MappingError(f"mapping file {path.name}: [{section}] {k} must be a string.")
    options = data.get("options", {})
    unknown_options = set(options) - {"date_order", "weight_unit", "purity_unit", "personal"}
    if unknown_options:
        raise MappingError(f"mapping file {path.name}: unknown option(s) {sorted(unknown_options)}.")
    date_order = options.get("date_order", "dmy")
    if date_order not in DATE_ORDERS:
        raise MappingError(f"mapping file {path.name}: date_order must be one of {DATE_ORDERS}.")
    purity_unit = options.get("purity_unit")
    if purity_unit is not None and purity_unit not in PURITY_UNITS:
        raise MappingError(f"mapping file {path.name}: purity_unit must be one of {PURITY_UNITS}.")
    weight_unit = str(options.get("weight_unit", "g")).lower()
    from profiling.ingest.vocabulary import weight_units

    if weight_unit not in weight_units():
        raise MappingError(
            f"mapping file {path.name}: weight_unit {weight_unit!r} is not a known unit "
            f"({', '.join(sorted(weight_units()))})."
        )
    personal = options.get("personal", [])
    if not isinstance(personal, list) or not all(isinstance(p, str) for p in personal):
        raise MappingError(f"mapping file {path.name}: personal must be a list of headers.")
    return Mapping(dict(columns), {k: key(v).replace(" ", "_") for k, v in
                                   data.get("profile", {}).items()},
                   date_order, weight_unit, purity_unit, tuple(personal), path)

@cache
def _header_synonyms() -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, synonyms in load_toml("columns.toml").items():
        for term in [canonical, *synonyms]:
            table.setdefault(key(term), canonical)
    return table

def split_unit(header: str) -> tuple[str, str | None]:
    """'Weight before (mg)' -> ('weight before', 'mg'); 'Purity %' -> ('purity', '%')."""
    m = _BRACKET_UNIT.match(header.strip())
    if m and m.group("name"):
        return key(m.group("name")), m.group("unit").strip().lower() or None
    k = key(header)
    for unit in _TRAILING_UNITS:
        if k.endswith(" " + unit):
            return k[: -len(unit) - 1].strip(), unit
    return k, None

@dataclass
class ColumnPlan:
    """Where each field of the record is, column by column."""

    fields: dict[str, int]                    # canonical field -> column index
    units: dict[str, str]                     # canonical field -> unit written in its header
    profile: list[tuple[int, str]]            # (column index, compound)
    attributes: list[tuple[int, str]]         # (column index, attribute name without prefix)
    personal: set[int]                        # columns the user marked as personal

def attribute_name(header: str) -> str:
    return key(header).replace(" ", "_") or "unnamed"

def plan_columns(headers: list[str], mapping: Mapping, source: str) -> ColumnPlan:
    """Resolve every header. Raises MappingError when a required field cannot be found, or when
    two headers claim one field."""
    positions = {h: i for i, h in reversed(list(enumerate(headers)))}
    fields: dict[str, int] = {}
    units: dict[str, str] = {}
    profile: list[tuple[int, str]] = []
    claimed: set[int] = set()
    for canonical, header in mapping.columns.items():
        if header not in positions:
            raise MappingError(
                f"{source}: the mapping says {canonical} is in column {header!r}, but the export "
                f"has no such header (headers: {', '.join(repr(h) for h in headers)})."
            )
        fields[canonical] = positions[header]
        claimed.add(positions[header])
        unit = split_unit(header)[1]
        if unit:
            units[canonical] = unit
    for header, compound in mapping.profile.items():
        if header not in positions:
            raise MappingError(
                f"{source}: the mapping's [profile] names column {header!r}, which the export "
                "does not have."
            )
        profile.append((positions[header], compound))
        claimed.add(positions[header])
    synonyms = _header_synonyms()
    seen_by_field: dict[str, list[str]] = {}
    for i, header in enumerate(headers):
        if i in claimed:
            continue
        name, unit = split_unit(header)
        canonical = synonyms.get(name) or synonyms.get(key(header))
        if canonical and canonical not in mapping.columns:
            seen_by_field.setdefault(canonical, []).append(header)
            if canonical in fields:
                continue
            fields[canonical] = i
            claimed.add(i)
            if unit:
                units[canonical] = unit
            continue
        compound = compound_for_header(header)
        if compound and not mapping.profile:
            profile.append((i, compound))
            claimed.add(i)
    for canonical, found in seen_by_field.items():
        if len(found) > 1:
            raise MappingError(
                f"{source}: columns {', '.join(repr(h) for h in found)} all look like "
                f"{canonical}; say which one with a --mapping file ([columns] {canonical} = ...)."
            )
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        raise MappingError(
            f"{source}: no column for the required field(s) {', '.join(missing)} "
            f"(headers: {', '.join(repr(h) for h in headers[:40])}); pass a --mapping file "
            "whose [columns] section names them."
        )
    compounds = [c for _, c in profile]
    dup = sorted({c for c in compounds if compounds.count(c) > 1})
    if dup:
        raise MappingError(f"{source}: several columns are profile compound(s) {dup}.")
    attributes = []
    used_names: set[str] = set()
    for i, header in enumerate(headers):
        if i in claimed:
            continue
        name = attribute_name(header)
        base, n = name, 2
        while name in used_names:
            name, n = f"{base}_{n}", n + 1
        used_names.add(name)
        attributes.append((i, name))
    personal = {positions[h] for h in mapping.personal if h in positions}
    return ColumnPlan(fields, units, sorted(profile), attributes, personal)
