"""The reference vocabularies the simulator writes from (``reference_data/``).

The simulator never holds its own lists of compound, adulterant, packaging, drug or seizure-type
names: it reads the same files, through the same loader and matching key, as the ingest, so
every spelling it writes is one the ingest knows. Only spellings that read back unambiguously are
offered (see ``Vocabulary.packaging_phrases``).
"""

from __future__ import annotations

from dataclasses import dataclass

from profiling.ingest.vocabulary import key, load_toml

normalise = key  # one matching key for writing and reading


@dataclass(frozen=True)
class Vocabulary:
    """Canonical tokens and their spellings, as ``reference_data/`` defines them."""

    compounds: dict[str, list[str]]  # cocaine target compound -> header spellings
    compound_prefixes: list[str]
    adulterants: dict[str, list[str]]  # canonical INN token -> spellings
    none_phrases: list[str]
    packaging: dict[str, dict[str, list[str]]]  # kind -> token -> spellings
    packaging_fillers: list[str]
    drugs: dict[str, list[str]]
    seizure_types: dict[str, list[str]]
    columns: dict[str, list[str]]  # canonical field -> header synonyms
    evidence: dict

    def packaging_phrases(self, kind: str, token: str) -> list[str]:
        """Spellings of a packaging token that read back as that token alone.

        A phrase is offered only if none of its words, taken alone, names another token (e.g.
        "plastic wrap" is left out: "plastic" alone is a bag, "wrap" alone a paper wrap), so the
        text reads back the same whether a reader matches phrases or single words.
        """
        single: dict[str, str] = {}
        for k, tokens in self.packaging.items():
            for t, spellings in tokens.items():
                for s in spellings:
                    word = normalise(s)
                    if " " not in word:
                        single[word] = f"{k}:{t}"
        fillers = {normalise(w) for w in self.packaging_fillers}
        me = f"{kind}:{token}"
        out = []
        for s in self.packaging[kind][token]:
            words = normalise(s).split()
            if all(w in fillers or single.get(w, me) == me for w in words):
                out.append(s)
        return out


def load_vocabulary() -> Vocabulary:
    compounds = load_toml("compounds.toml")
    adulterants = load_toml("vocabulary/adulterants.toml")
    packaging = dict(load_toml("vocabulary/packaging.toml"))
    fillers = packaging.pop("filler")["words"]
    return Vocabulary(
        compounds=dict(compounds["cocaine"]["compounds"]),
        compound_prefixes=list(compounds["header_prefixes"]),
        adulterants=dict(adulterants["names"]),
        none_phrases=list(adulterants["none"]["phrases"]),
        packaging=packaging,
        packaging_fillers=fillers,
        drugs=dict(load_toml("vocabulary/drugs.toml")),
        seizure_types=dict(load_toml("vocabulary/seizure_types.toml")),
        columns=dict(load_toml("columns.toml")),
        evidence=dict(load_toml("evidence.toml")),
    )
