"""The `profile` command line (installed as the package ``profiling_cli``)."""
