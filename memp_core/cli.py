"""The ``memp`` command line (typer).

Commands live in :mod:`memp_core.commands` modules, one per area, each with a
``register(app, bench)`` function; this module owns the app, the shared options and the
translation of :class:`MempError` into one readable line and exit code 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from pydantic import BaseModel
from rich.console import Console
from sqlmodel import SQLModel
from typer.core import TyperGroup

from memp_core.config import PROJECT_ROOT, Settings, get_settings
from memp_core.errors import MempError
from memp_core.store import Store

err_console = Console(stderr=True)
out_console = Console()


class MempGroup(TyperGroup):
    """Turns every MempError raised by a command into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MempError as exc:
            err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=MempGroup,
    help="Memp Studio: procedural memory for LLM agents (build, retrieve, update, review).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench = typer.Typer(cls=MempGroup, help="Benchmarks that print ratios measured in one run.")
app.add_typer(bench, name="bench")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: MEMP_DATABASE_URL or sqlite:///data/memp.db)"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def settings_for(db: str | None) -> Settings:
    """Settings from the environment with ``--db`` taking precedence."""
    return get_settings(database_url=db)


def open_store(db: str | None) -> Store:
    return Store.from_settings(settings_for(db))


def to_jsonable(obj: Any) -> Any:
    """SQLModel rows, pydantic models and dataclasses as plain JSON values."""
    if isinstance(obj, SQLModel | BaseModel):
        return to_jsonable(obj.model_dump())
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return None  # embeddings are not part of any report
    if isinstance(obj, Path):
        return str(obj)
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


@app.command()
def init(db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Create the database and its tables (idempotent; upgrades an older schema)."""
    store = Store.from_settings(settings_for(db), create=False)
    schema = store.init()
    counts = store.counts()
    if json_:
        print_json({"database": store.url, "schema": schema, "counts": counts})
    else:
        out_console.print(
            f"Database {store.url}: schema {schema}; {counts.trajectories} trajectories, "
            f"{counts.procedures} procedures"
        )


@app.command()
def dashboard(
    db: DbOpt = None,
    port: Annotated[int, typer.Option(help="Port to serve on")] = 8501,
    headless: Annotated[bool, typer.Option(help="Do not open a browser")] = False,
) -> None:
    """Launch the Streamlit dashboard on app.py."""
    settings = settings_for(db)
    Store.from_settings(settings)  # fail here, readably, if the database cannot be opened
    env = dict(os.environ, MEMP_DATABASE_URL=settings.resolved_database_url())
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
        "--server.port", str(port), "--server.headless", str(headless).lower(),
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    out_console.print(f"Dashboard on http://localhost:{port} (database {settings.database_url})")
    raise typer.Exit(subprocess.call(cmd, env=env, cwd=PROJECT_ROOT))


def main() -> None:
    """Console-script entry point."""
    app()


def _register_commands() -> None:
    from memp_core.commands import demo, engine, runs, transfer

    for module in (engine, runs, transfer, demo):
        module.register(app, bench)


_register_commands()
