"""What a library holds, in counts an analyst reads first (`profile show`)."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from profiling.library import LibraryData


def summarise(data: LibraryData) -> dict:
    """Counts by drug, area, quarter and evidence flag; imports; compounds profiled."""
    rec = data.records
    seized = pd.to_datetime(rec["seized_on"])
    quarters = seized.dt.to_period("Q").astype(str).where(seized.notna(), "unknown")
    flags: Counter = Counter()
    for tokens in rec["flags"]:
        if tokens:
            flags.update(tokens.split(";"))

    def counts(series: pd.Series) -> dict[str, int]:
        s = series.replace("", "unknown").value_counts()
        return {str(k): int(v) for k, v in sorted(s.items())}

    return {
        "exhibits": int(len(rec)),
        "seizures": int(rec.loc[rec["seizure_id"] != "", "seizure_id"].nunique()),
        "by_drug": counts(rec["drug"]),
        "by_area": counts(rec["area"]),
        "by_quarter": counts(quarters),
        "flags": dict(sorted(flags.items())),
        "compounds": list(data.compounds),
        "imports": int(len(data.provenance)),
        "superseded_versions": int(data.history.n) if data.history is not None else 0,
        "date_range": [seized.min().date().isoformat(), seized.max().date().isoformat()]
        if seized.notna().any() else None,
    }
