"""`memp demo`: fill a database from real runs of the loop, then open the dashboard."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from memp_core.commands.options import (
    DbOpt,
    JsonOpt,
    err_console,
    open_store,
    print_json,
    settings_for,
)


def demo(
    db: DbOpt = None,
    no_launch: Annotated[
        bool, typer.Option("--no-launch", help="Fill the database, do not start the dashboard")
    ] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Half as many tasks per run")] = False,
    reset: Annotated[
        bool, typer.Option("--reset", help="Delete the (SQLite) database first and rebuild it")
    ] = False,
    open_existing: Annotated[
        bool,
        typer.Option(
            "--open-existing",
            help="If the database already holds data, open the dashboard on it instead of "
            "refusing (what `make demo` does, so running it twice is harmless)",
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="Dashboard port")] = 8501,
    json_: JsonOpt = False,
) -> None:
    """Build a demo database from real runs (several policies, strong and weak agents,
    reflections, a review queue) and simulator runs imported as ALFWorld, ReAct and chat logs,
    then launch the dashboard."""
    from tqdm import tqdm

    from memp_core.commands.runs import single_thread_torch
    from memp_core.config import safe_url
    from memp_core.demo import build_demo, ensure_empty, is_empty, reset_sqlite

    settings = settings_for(db)
    store = open_store(db)
    if reset:
        path = reset_sqlite(store)
        err_console.print(f"Deleted {path}; rebuilding the demo database.")
        store = open_store(db)
    if open_existing and not reset and not is_empty(store):
        err_console.print(
            f"{safe_url(store.url)} already holds demo data: opening it (--reset rebuilds)."
        )
        if not no_launch:
            from memp_core.commands.dashboard import dashboard

            dashboard(db=db, port=port, headless=False)
        return
    ensure_empty(store)  # refuse before loading models
    single_thread_torch()
    bars: list[Any] = []

    def on_task(title: str, done: int, total: int) -> None:
        """One bar for the whole demo (its estimate is the demo's), naming the current run."""
        if not bars:
            bars.append(tqdm(total=total, unit="task", file=sys.stderr, dynamic_ncols=True,
                             disable=not sys.stderr.isatty()))  # fmt: skip
        bars[0].set_description(title[:44], refresh=False)
        bars[0].update(done - bars[0].n)

    report = build_demo(store, settings, scale=0.5 if quick else 1.0, on_task=on_task)
    for bar in bars:
        bar.close()
    if json_:
        print_json(report)
    else:
        err_console.print(
            f"Demo database {report.database}: {len(report.runs)} runs, {report.tasks} "
            f"simulated tasks, {report.imported.get('trajectories', 0)} imported "
            f"trajectories ({report.unknown_outcomes} with unknown outcome), "
            f"{report.built_for_review} procedures built for review, "
            f"in {report.seconds:.0f}s."
        )
    if not no_launch:
        from memp_core.commands.dashboard import dashboard

        dashboard(db=db, port=port, headless=False)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command("demo")(demo)
