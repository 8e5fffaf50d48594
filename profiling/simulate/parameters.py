"""Parameters of the simulated supply network: defaults in ``reference_data/simulate.toml``,
overridden key by key from a user's TOML file and checked against the vocabularies.
"""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

from profiling.ingest.vocabulary import reference_path
from profiling.simulate.vocabulary import Vocabulary

DEFAULTS = "simulate.toml"  # in reference_data/

# Tables whose keys are tokens (a distribution or a list of choices): an override replaces the
# whole table, so that "cut_tokens = { lidocaine = 1.0 }" means only lidocaine.
_REPLACED = {
    ("levels", "1", "seizure_types"),
    ("levels", "2", "seizure_types"),
    ("levels", "3", "seizure_types"),
    ("adulterants", "cut_tokens"),
    ("adulterants", "diluent_tokens"),
    ("packaging", "street_crack"),
    ("packaging", "street_powder"),
    ("packaging", "middle"),
    ("packaging", "import"),
}
# Tables whose keys are open (checked against a vocabulary afterwards), merged key by key.
_OPEN = {("profile", "compounds")}


class ParameterError(ValueError):
    """A simulation parameter is unknown, of the wrong kind or out of range."""


def _merge(base: dict, override: dict, path: tuple[str, ...]) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        here = path + (key,)
        if path in _OPEN or here in _REPLACED:
            if here in _REPLACED and not isinstance(value, dict):
                raise ParameterError(f"parameter {'.'.join(here)} must be a table")
            out[key] = (
                copy.deepcopy(value)
                if here in _REPLACED or key not in out
                else (_merge(out[key], value, here) if isinstance(value, dict) else value)
            )
            continue
        if key not in base:
            raise ParameterError(f"unknown simulation parameter {'.'.join(here)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ParameterError(f"parameter {'.'.join(here)} must be a table")
            out[key] = _merge(base[key], value, here)
        else:
            if isinstance(base[key], (int, float)) and not isinstance(base[key], bool):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ParameterError(f"parameter {'.'.join(here)} must be a number")
            elif type(value) is not type(base[key]):
                raise ParameterError(
                    f"parameter {'.'.join(here)} must be a {type(base[key]).__name__}"
                )
            out[key] = copy.deepcopy(value)
    return out


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ParameterError(f"cannot read parameter file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"parameter file {path} is not valid TOML: {exc}") from exc


def load_parameters(overrides: dict | Path | None, vocabulary: Vocabulary) -> dict:
    """Defaults merged with ``overrides`` (a dict or a TOML file), validated."""
    with reference_path(DEFAULTS).open("rb") as fh:
        params = tomllib.load(fh)
    if overrides is not None:
        if not isinstance(overrides, dict):
            overrides = read_toml(Path(overrides))
        params = _merge(params, overrides, ())
    _validate(params, vocabulary)
    return params


def _range(params: dict, *path: str, lo: float = 0.0, hi: float = float("inf")) -> None:
    node: Any = params
    for p in path:
        node = node[p]
    name = ".".join(path)
    if not (isinstance(node, list) and len(node) == 2):
        raise ParameterError(f"parameter {name} must be a [low, high] pair")
    if not (lo <= node[0] <= node[1] <= hi):
        raise ParameterError(f"parameter {name} = {node} must satisfy {lo} <= low <= high <= {hi}")


def _distribution(table: dict, name: str, known: set[str], what: str) -> None:
    if not table:
        raise ParameterError(f"parameter {name} must not be empty")
    for key, weight in table.items():
        if key not in known:
            raise ParameterError(f"parameter {name}: {key!r} is not a {what} of reference_data")
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ParameterError(f"parameter {name}.{key} must be a non-negative number")
    if sum(table.values()) <= 0:
        raise ParameterError(f"parameter {name} has no positive weight")


def _validate(params: dict, vocabulary: Vocabulary) -> None:
    start, end = params["period"]["start"], params["period"]["end"]
    if not (isinstance(start, dt.date) and isinstance(end, dt.date) and start < end):
        raise ParameterError("period.start and period.end must be dates, start before end")
    geo = params["geography"]
    if geo["forces"] < 1 or geo["areas_per_force"] < 1:
        raise ParameterError("geography.forces and geography.areas_per_force must be at least 1")
    if not 1 <= geo["port_areas_per_force"] <= geo["areas_per_force"]:
        raise ParameterError("geography.port_areas_per_force must be between 1 and areas_per_force")
    shares = [params["levels"][k]["share"] for k in ("1", "2", "3")]
    if min(shares) <= 0 or abs(sum(shares) - 1.0) > 1e-9:
        raise ParameterError("levels.*.share must be positive and sum to 1")
    types = set(vocabulary.seizure_types)
    for level in ("1", "2", "3"):
        _distribution(
            params["levels"][level]["seizure_types"],
            f"levels.{level}.seizure_types",
            types,
            "seizure type",
        )
    if set(params["levels"]["3"]["seizure_types"]) - {"border", "warrant", "other"}:
        raise ParameterError("levels.3.seizure_types may only use border, warrant, other")
    for kind in ("extra_rocks", "stash_share"):
        table = params["quantities"][kind]
        missing = {t for level in ("1",) for t in params["levels"][level]["seizure_types"]} - set(
            table
        )
        if missing:
            raise ParameterError(f"quantities.{kind} lacks seizure types {sorted(missing)}")
    net = params["network"]
    for name in ("batch_lifetime_months",):
        _range(params, "network", name, lo=0.5)
    for name in (
        "lot_start_fraction",
        "lot_duration_fraction",
        "dealer_start_fraction",
        "dealer_duration_fraction",
    ):
        _range(params, "network", name, hi=1.0)
    if net["min_batches"] < 1 or net["exhibits_per_lot"] <= 0 or net["exhibits_per_dealer"] <= 0:
        raise ParameterError("network counts must be positive")
    for name in ("import", "lot_cut_factor", "dealer_cut_factor", "trace_range", "below_range"):
        _range(params, "purity", name, hi=1.0)
    if params["purity"]["below_range"][1] >= 0.01:
        raise ParameterError('purity.below_range must stay under 1 % (it is written "<1%")')
    _range(params, "quantities", "middle_range_g", lo=1e-3)
    _range(params, "quantities", "package_range", lo=0.1)
    _range(params, "quantities", "small_package_range_g", lo=1e-3)
    _range(params, "adulterants", "amount_range", hi=1.0)
    _range(params, "laboratory", "consumption_g", lo=1e-3)
    adulterants = set(vocabulary.adulterants)
    _distribution(
        params["adulterants"]["cut_tokens"], "adulterants.cut_tokens", adulterants, "adulterant"
    )
    _distribution(
        params["adulterants"]["diluent_tokens"],
        "adulterants.diluent_tokens",
        adulterants,
        "adulterant",
    )
    if len(params["adulterants"]["count_weights"]) > len(params["adulterants"]["cut_tokens"]):
        raise ParameterError("adulterants.count_weights allows more adulterants than cut_tokens")
    materials = set(vocabulary.packaging["material"])
    closures = set(vocabulary.packaging["closure"]) | {""}
    for form in ("street_crack", "street_powder", "middle", "import"):
        table = params["packaging"][form]
        _distribution({k: 1 for k in table}, f"packaging.{form}", materials, "packaging material")
        for material, allowed in table.items():
            if not allowed or set(allowed) - closures:
                raise ParameterError(
                    f"packaging.{form}.{material} must list closures of vocabulary/packaging.toml"
                    ' (or "" for none)'
                )
    compounds = set(vocabulary.compounds)
    unknown = set(params["profile"]["compounds"]) - compounds
    if unknown:
        raise ParameterError(f"profile.compounds: {sorted(unknown)} not in compounds.toml")
    unknown = set(params["profile"]["hydrolysis"]) - compounds
    if unknown:
        raise ParameterError(f"profile.hydrolysis: {sorted(unknown)} not in compounds.toml")
    for name, entry in params["profile"]["compounds"].items():
        if set(entry) - {"ratio", "between_batch_sd"} or entry.get("ratio", 1) <= 0:
            raise ParameterError(f"profile.compounds.{name} takes ratio > 0, between_batch_sd")
    if not set(params["operation"]["levels"]) <= {1, 2, 3}:
        raise ParameterError("operation.levels must be among 1, 2, 3")
    for key, value in params["messy"].items():
        if key.endswith("_share") and not 0 <= value <= 1:
            raise ParameterError(f"messy.{key} must be a share between 0 and 1")
