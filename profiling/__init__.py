"""profiling: forensic drug profiling and market intelligence.

Pipeline: export -> ingest (read, map, normalise, check) -> library -> link -> market/returns.
"""

__version__ = "0.1.0"
