"""Reference data, installed as the package ``profiling.reference_data`` (see setup.py)."""
