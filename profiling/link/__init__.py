"""The link stage of `profile link`, `profile calibrate` and `profile query`.

- :mod:`~profiling.link.layers` — what is compared: linkable exhibits, the cut and packaging;
- :mod:`~profiling.link.calibration` — the chemical comparison and the layers calibrated;
- :mod:`~profiling.link.search` — top-k search and the threshold that knows the library's size;
- :mod:`~profiling.link.classes` — chemical classes as library entities (build, assign, merge);
- :mod:`~profiling.link.engine` — one run: classes, links, layers, the library's state;
- :mod:`~profiling.link.runs` — the commands: ingest, calibrate, link, commit, write;
- :mod:`~profiling.link.outputs`, :mod:`~profiling.link.chart`, :mod:`~profiling.link.report` —
  the files, the class–seizure link chart and the page.
"""

from profiling.link.calibration import (
    DEFAULT_METRIC,
    DEFAULT_PRETREATMENT,
    PRETREATMENTS,
    PROFILE_METRICS,
    Calibration,
    _pretreated,
    _public_calibration,
    _reference_std,
    calibrate,
    load_calibration,
    store_calibration,
)
from profiling.link.engine import (
    LinkResult,
    Stored,
    link_library,
    read_classes,
)
from profiling.link.layers import Layers, Profiles, linkable
from profiling.link.runs import (
    _link_core,
    redact_result,
    run_calibrate,
    run_link,
    run_query,
)

__all__ = [
    "DEFAULT_METRIC", "DEFAULT_PRETREATMENT", "PRETREATMENTS", "PROFILE_METRICS", "Calibration",
    "Layers", "LinkResult", "Profiles", "Stored", "_link_core", "_pretreated",
    "_public_calibration", "_reference_std", "calibrate", "link_library", "linkable",
    "load_calibration", "read_classes", "redact_result", "run_calibrate", "run_link",
    "run_query", "store_calibration",
]
