"""Vocabularies from ``reference_data/``: drug, seizure type, adulterant and packaging terms.

Matching ignores case, punctuation and repeated spaces (:func:`key`). Unknown text is never
dropped: lookups report it so the row keeps the raw text and carries ``unknown_vocabulary``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

_NON_ALNUM = re.compile(r"[^0-9a-zµ%£]+")


def key(text: str) -> str:
    """Normalised matching key: lower case, punctuation and runs of space -> one space.

    A cell of punctuation only ("-") keys as itself, so it can still be looked up.
    """
    k = _NON_ALNUM.sub(" ", text.lower()).strip()
    return k if k or not text else text.strip().lower()


def reference_path(name: str):
    """A file in reference_data/ (installed as the package ``profiling.reference_data``)."""
    return resources.files("profiling.reference_data").joinpath(name)


@cache
def load_toml(name: str) -> dict:
    with reference_path(name).open("rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class Terms:
    """A synonym table: matching key -> canonical token."""

    table: dict[str, str]

    @classmethod
    def from_mapping(cls, canonical_to_synonyms: dict[str, list[str]]) -> Terms:
        table: dict[str, str] = {}
        for canonical, synonyms in canonical_to_synonyms.items():
            for term in [canonical, canonical.replace("_", " "), *synonyms]:
                table.setdefault(key(term), canonical)
        return cls(table)

    def lookup(self, text: str) -> str | None:
        return self.table.get(key(text))


@cache
def drugs() -> Terms:
    return Terms.from_mapping(load_toml("vocabulary/drugs.toml"))


@cache
def seizure_types() -> Terms:
    return Terms.from_mapping(load_toml("vocabulary/seizure_types.toml"))


@cache
def units() -> dict:
    return load_toml("vocabulary/units.toml")


@cache
def weight_units() -> dict[str, float]:
    """Unit word -> grams per unit."""
    return {k.lower(): float(v) for k, v in units()["weight_g"].items()}


@cache
def profile_not_detected() -> frozenset[str]:
    return frozenset(key(w) for w in units()["profile"]["not_detected"])


@cache
def purity_words() -> tuple[frozenset[str], frozenset[str]]:
    """(words meaning trace, words meaning not measured)."""
    p = units()["purity"]
    return frozenset(key(w) for w in p["trace"]), frozenset(key(w) for w in p["missing"])


# --- adulterants -----------------------------------------------------------------------------

_ADULTERANT_SPLIT = re.compile(r"\s*(?:[,;/+&\n|]|\band\b|\bwith\b)\s*", re.IGNORECASE)
_AMOUNT = re.compile(
    r"^(?P<name>.*?)[\s:\-–]*(?:\(\s*(?P<p1>[<~]?\s*\d+(?:[.,]\d+)?)\s*%?\s*\)|"
    r"(?P<p2>[<~]?\s*\d+(?:[.,]\d+)?)\s*%)\s*$"
)


@cache
def adulterant_terms() -> Terms:
    return Terms.from_mapping(load_toml("vocabulary/adulterants.toml")["names"])


@cache
def adulterant_none() -> frozenset[str]:
    return frozenset(key(p) for p in load_toml("vocabulary/adulterants.toml")["none"]["phrases"])


@dataclass(frozen=True)
class Adulterants:
    names: tuple[str, ...]                    # sorted canonical tokens
    fractions: tuple[tuple[str, float], ...]  # (name, fraction) for those given an amount
    unknown: tuple[str, ...]                  # raw pieces that matched nothing


def parse_adulterants(text: str) -> Adulterants:
    """'Lignocaine, benzocaine' / 'lidocaine; phenacetin (5%)' / 'none detected' -> tokens."""
    if not text or not text.strip() or key(text) in adulterant_none():
        return Adulterants((), (), ())
    names: set[str] = set()
    fractions: dict[str, float] = {}
    unknown: list[str] = []
    for piece in _ADULTERANT_SPLIT.split(text.strip()):
        if not piece or not piece.strip():
            continue
        amount = None
        m = _AMOUNT.match(piece.strip())
        if m and m.group("name").strip():
            raw = (m.group("p1") or m.group("p2")).replace(",", ".").lstrip("<~ ")
            amount = float(raw) / 100.0
            piece = m.group("name")
        canonical = adulterant_terms().lookup(piece)
        if canonical is None:
            if key(piece) in adulterant_none():
                continue
            unknown.append(piece.strip())
            continue
        names.add(canonical)
        if amount is not None:
            fractions[canonical] = amount
    return Adulterants(tuple(sorted(names)), tuple(sorted(fractions.items())), tuple(unknown))


# --- packaging -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackagingVocabulary:
    phrases: tuple[tuple[tuple[str, ...], str], ...]  # (words of a phrase, token), longest first
    fillers: frozenset[str]


@cache
def packaging_vocabulary() -> PackagingVocabulary:
    data = load_toml("vocabulary/packaging.toml")
    phrases: dict[tuple[str, ...], str] = {}
    for kind in ("material", "colour", "closure"):
        for token, synonyms in data[kind].items():
            for term in [token.replace("_", " "), *synonyms]:
                phrases.setdefault(tuple(key(term).split()), token)
    ordered = tuple(sorted(phrases.items(), key=lambda item: (-len(item[0]), item[0])))
    return PackagingVocabulary(ordered, frozenset(key(w) for w in data["filler"]["words"]))


_COUNT_WORD = re.compile(r"^x?\d+x?$")


@dataclass(frozen=True)
class Packaging:
    tokens: tuple[str, ...]
    unknown: tuple[str, ...]


def parse_packaging(text: str) -> Packaging:
    """'Clear plastic bag, knotted' -> ('clear', 'knotted', 'plastic_bag'); longest phrase wins."""
    vocab = packaging_vocabulary()
    words = key(text).split()
    tokens: set[str] = set()
    unknown: list[str] = []
    i = 0
    while i < len(words):
        for phrase, token in vocab.phrases:
            if tuple(words[i : i + len(phrase)]) == phrase:
                tokens.add(token)
                i += len(phrase)
                break
        else:
            if words[i] not in vocab.fillers and not _COUNT_WORD.match(words[i]):
                unknown.append(words[i])
            i += 1
    return Packaging(tuple(sorted(tokens)), tuple(unknown))


# --- target compounds ------------------------------------------------------------------------


@cache
def compound_terms() -> Terms:
    """Header spelling -> canonical compound name, over every drug's target list."""
    data = load_toml("compounds.toml")
    table: dict[str, list[str]] = {}
    for section in data.values():
        if isinstance(section, dict) and "compounds" in section:
            for name, synonyms in section["compounds"].items():
                table[name] = synonyms
    return Terms.from_mapping(table)


@cache
def compound_header_prefixes() -> tuple[str, ...]:
    prefixes = [key(p) for p in load_toml("compounds.toml")["header_prefixes"]]
    return tuple(sorted(prefixes, key=len, reverse=True))


def compound_for_header(header: str) -> str | None:
    """'Peak Area: Tropacocaine' -> 'tropacocaine'; 'p_xyz' -> 'xyz'; otherwise None."""
    stripped = header.strip()
    if stripped.lower().startswith("p_") and len(stripped) > 2:
        return key(stripped[2:]).replace(" ", "_")
    k = key(stripped)
    found = compound_terms().table.get(k)
    if found:
        return found
    for prefix in compound_header_prefixes():
        if k.startswith(prefix + " "):
            found = compound_terms().table.get(k[len(prefix) + 1 :])
            if found:
                return found
    return None
