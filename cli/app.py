"""The typer application behind the console command ``profile``.

Each command lives in its own module of this package and registers itself on ``app``; this module
only assembles them and turns the library's known errors into one clear sentence.
"""

import typer

app = typer.Typer(
    name="profile",
    help="Forensic drug profiling: ingest lab exports, link seizures, market intelligence, returns.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules: importing one registers its commands on ``app``.
COMMAND_MODULES = [
    "library",
    "returns",
    "link",
    "simulate",
    "market",
]


def _load_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"profiling_cli.{name}")


def main() -> None:
    _load_commands()
    app()
