"""Redacted sharing: outputs a force can give partners.

- exhibit and seizure references become keyed pseudonyms: HMAC-SHA256 with a key file the user
  keeps; the same reference gives the same pseudonym in every file and run with that key, and a
  different key gives unlinkable ones;
- personal and free-text columns are removed (those the mapping marks ``personal``, and extra
  columns whose name says they are personal or free text, ``reference_data/redaction.toml``),
  with the record's source fields (file, line, raw unknown text);
- areas may be coarsened (to the force, or by a user's area -> coarser-area table);
- every redacted output set carries ``redaction.json`` saying what was removed and replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from profiling.errors import ProfilingError
from profiling.files import private_open
from profiling.ingest.vocabulary import load_toml

KEY_BYTES = 32
#: The coarse area of an area that the user's area table does not list.
UNMAPPED_AREA = "other"


class RedactionError(ProfilingError):
    """The redaction key or the area table cannot be used."""


@cache
def _config() -> dict:
    return load_toml("redaction.toml")


def is_personal(column: str, marked: list[str]) -> bool:
    """An attr_ column is personal if the mapping marked it, or its name says so."""
    if column in marked:
        return True
    words = set(re.split(r"[^a-z0-9]+", column.lower().removeprefix("attr_")))
    return bool(words & set(_config()["personal_words"]))


def load_key(path: str | Path, create: bool = True) -> tuple[bytes, bool]:
    """The key file's bytes; created (owner-only, 32 random bytes, hex) when absent and allowed.
    Returns (key, created)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise RedactionError(f"redaction key file {path} does not exist.")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(KEY_BYTES) + "\n")
        return bytes.fromhex(path.read_text().strip()), True
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise RedactionError(f"redaction key file {path} does not hold a hex key.") from None
    if len(key) < 16:
        raise RedactionError(f"redaction key in {path} is too short ({len(key)} bytes; need 16+).")
    return key, False


@dataclass
class Redactor:
    key: bytes
    area_map: dict[str, str] | None = None      # area -> coarser area
    coarsen_to_force: bool = False
    removed: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)

    @property
    def fingerprint(self) -> str:
        """Identifies the key without revealing it (SHA-256 of the key, first 12 hex)."""
        return hashlib.sha256(self.key).hexdigest()[:12]

    def pseudonym(self, kind: str, value: str) -> str:
        if value is None or value == "" or (isinstance(value, float) and np.isnan(value)):
            return ""
        digest = hmac.new(self.key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind[0].upper()}-{digest[:16]}"

    def pseudonyms(self, kind: str, values) -> np.ndarray:
        codes, uniques = pd.factorize(pd.Series(list(values), dtype=object), use_na_sentinel=False)
        mapped = np.array([self.pseudonym(kind, u) for u in uniques], dtype=object)
        self.replaced.add(kind)
        return mapped[codes] if len(codes) else np.array([], dtype=object)

    def area(self, areas, forces=None) -> np.ndarray:
        areas = np.asarray(list(areas), dtype=object)
        if self.coarsen_to_force and forces is not None:
            self.replaced.add("area -> force")
            return np.asarray(list(forces), dtype=object)
        if self.area_map is not None:
            self.replaced.add("area -> coarser area")
            return np.array([self.area_map.get(a, UNMAPPED_AREA) if a else "" for a in areas],
                            dtype=object)
        return areas

    @property
    def coarsens(self) -> bool:
        return self.coarsen_to_force or self.area_map is not None

    def coarse_records(self, records: pd.DataFrame) -> pd.DataFrame:
        """A copy of canonical records with areas coarsened, for analyses by area (market,
        evaluate) whose every table must already be at the coarse level."""
        if not self.coarsens:
            return records
        out = records.copy()
        out["area"] = self.area(records["area"], records["force"])
        return out

    def area_names(self, records: pd.DataFrame) -> dict[str, str]:
        """Area -> its coarse area, for every area of ``records`` (an area seen under several
        forces takes its most common one)."""
        pairs = records.loc[records["area"] != "", ["area", "force"]]
        pairs = pairs.value_counts().reset_index().drop_duplicates("area")
        return dict(zip(pairs["area"], self.area(pairs["area"], pairs["force"])))

    def seizure_keys(self, keys, seizure_ids) -> np.ndarray:
        """Pseudonyms of seizure keys (a seizure's reference, or the exhibit reference of an
        exhibit seized without one): 'S-' for a key in ``seizure_ids``, else 'E-', the same
        pseudonym the exhibit has in every other output."""
        keys = pd.Series(list(keys), dtype=object)
        real = keys.isin(set(seizure_ids) - {""}).to_numpy()
        out = np.empty(len(keys), dtype=object)
        out[real] = self.pseudonyms("seizure", keys[real])
        out[~real] = self.pseudonyms("exhibit", keys[~real])
        return out

    def summary(self, summary: dict, keys=("source",)) -> dict:
        """A copy of a command's summary without the source file names it holds."""
        out = dict(summary)
        for k in keys:
            if out.pop(k, None) is not None:
                self.removed.add(f"summary: {k} file name")
        return out

    def frame(self, frame: pd.DataFrame, personal: list[str] = ()) -> pd.DataFrame:
        """Redact a table of records: references pseudonymised, personal/source columns gone."""
        out = frame.copy(deep=False)       # columns are replaced, never changed in place
        for col in ("exhibit_id", "exhibit_a", "exhibit_b"):
            if col not in out:
                continue
            if isinstance(out[col].dtype, pd.CategoricalDtype):   # links: ids once, not per link
                categories = out[col].cat.categories
                out[col] = out[col].cat.rename_categories(
                    self.pseudonyms("exhibit", categories.to_numpy(dtype=object)))
            else:
                out[col] = self.pseudonyms("exhibit", out[col])
        if "seizure_id" in out:
            out["seizure_id"] = self.pseudonyms("seizure", out["seizure_id"])
        if "area" in out:
            out["area"] = self.area(out["area"], out["force"] if "force" in out else None)
        drop = [c for c in out.columns if c in _config()["source_fields"]
                or (c.startswith("attr_") and is_personal(c, list(personal)))]
        self.removed.update(drop)
        return out.drop(columns=drop)

    def manifest(self) -> dict:
        return {"key_fingerprint": self.fingerprint, "pseudonymised": sorted(self.replaced),
                "removed_columns": sorted(self.removed),
                "method": "HMAC-SHA256 of '<kind>:<reference>' with the user's key, first 16 hex"}

    def write_manifest(self, out_dir: Path, files: list[str]) -> None:
        with private_open(Path(out_dir) / "redaction.json") as fh:
            json.dump({**self.manifest(), "files": sorted(files)}, fh, indent=2, sort_keys=True)
            fh.write("\n")


def redactor(key_file: str | Path, coarsen_area: str | None = None) -> tuple[Redactor, bool]:
    """Build a Redactor from the CLI options. ``coarsen_area``: None, 'force', or a CSV file with
    columns area, coarse_area. Returns (redactor, key_created)."""
    key, created = load_key(key_file)
    if coarsen_area is None or coarsen_area == "none":
        return Redactor(key), created
    if coarsen_area == "force":
        return Redactor(key, coarsen_to_force=True), created
    try:
        table = pd.read_csv(coarsen_area, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise RedactionError(f"cannot read the area table {coarsen_area}: {err}.") from None
    if not {"area", "coarse_area"} <= set(table.columns):
        raise RedactionError(f"area table {coarsen_area} needs columns area and coarse_area.")
    return Redactor(key, dict(zip(table["area"], table["coarse_area"]))), created
