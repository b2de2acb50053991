"""The ``memp`` command line (typer).

Commands live in :mod:`memp_core.commands` modules, one per area, each with a
``register(app, bench)`` function; the options they share (``--db``, ``--json``, the
consoles, the MempGroup that turns a :class:`MempError` into one readable line and exit
code 1) live in :mod:`memp_core.commands.options`, which this module uses too.

`memp --help` imports only typer, rich and these light modules: every command imports the
database layer and what else it needs when it runs (tests/test_cli_startup.py).
"""

from __future__ import annotations

import typer

from memp_core.commands.dashboard import Launch, dashboard_plan
from memp_core.commands.options import (
    DbOpt,
    JsonOpt,
    MempGroup,
    is_loopback,
    out_console,
    print_json,
    settings_for,
)

# `memp dashboard`'s launch plan, kept importable from here for its callers and tests
__all__ = ["Launch", "app", "bench", "dashboard_plan", "is_loopback", "main"]

# Plain click help, not typer's rich panels: rendering them imports rich's markdown and
# traceback stacks, which alone would make `memp --help` cost about 3x `import typer`.
app = typer.Typer(
    cls=MempGroup,
    rich_markup_mode=None,
    help="Memp Studio: procedural memory for LLM agents (build, retrieve, update, review).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench = typer.Typer(
    cls=MempGroup, rich_markup_mode=None, help="Benchmarks that print ratios measured in one run."
)
app.add_typer(bench, name="bench")


@app.command()
def init(db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Create the database and its tables (idempotent; upgrades an older schema)."""
    from memp_core.actor import system
    from memp_core.config import safe_url
    from memp_core.labels import forget_assumed
    from memp_core.store import Store

    store = Store.from_settings(settings_for(db), create=False)
    schema = store.init()
    # Older releases stored runs without a verdict as "assumed success": unknown now.
    relabelled = forget_assumed(store, actor=system("upgrade")) if schema == "upgraded" else 0
    counts = store.counts()
    if json_:
        print_json({"database": safe_url(store.url), "schema": schema, "counts": counts,
                    "assumed_successes_now_unknown": relabelled})  # fmt: skip
    else:
        out_console.print(
            f"Database {safe_url(store.url)}: schema {schema}; {counts.trajectories} "
            f"trajectories, {counts.procedures} procedures"
            + (f"; {relabelled} assumed successes are now unknown" if relabelled else ""),
            highlight=False,
            soft_wrap=True,
        )


def main() -> None:
    """Console-script entry point."""
    app()


def _register_commands() -> None:
    from memp_core.commands import (
        dashboard,
        dedupe,
        demo,
        engine,
        judge,
        mcp,
        runs,
        serve,
        transfer,
    )

    for module in (dashboard, engine, runs, transfer, demo, serve, mcp, judge, dedupe):
        module.register(app, bench)


_register_commands()
