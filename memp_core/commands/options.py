"""What `memp_core.cli` and every command module share: the group class that turns a
MempError into one line, the ``--db``/``--json`` options, the consoles, settings and store
openers, and JSON printing.

This module stays light on purpose (typer, rich and the standard library): it is imported
for `memp --help`, so the database layer, numpy and pydantic are imported only when a
command runs (see tests/test_cli_startup.py).
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

from memp_core.errors import MempError

if TYPE_CHECKING:
    from memp_core.config import Settings
    from memp_core.store import Store


class LazyConsole:
    """A rich Console made on first use: importing rich's console costs about 12 ms of
    CPU, which `memp --help` (plain click help) never needs."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return getattr(self._console, name)


def Table(*columns: str, **kw: Any) -> Any:  # noqa: N802 (stands for rich.table.Table)
    """A rich table, imported when a command prints one (not for `memp --help`)."""
    from rich.table import Table as RichTable

    return RichTable(*columns, **kw)


err_console = LazyConsole(stderr=True)
out_console = LazyConsole()


class MempGroup(TyperGroup):
    """Turns every MempError raised by a command into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MempError as exc:
            err_console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: MEMP_DATABASE_URL or sqlite:///data/memp.db)"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def settings_for(db: str | None) -> Settings:
    """Settings from the environment with ``--db`` taking precedence."""
    from memp_core.config import get_settings

    return get_settings(database_url=db)


def open_store(db: str | None) -> Store:
    from memp_core.store import Store

    return Store.from_settings(settings_for(db))


def to_jsonable(obj: Any) -> Any:
    """SQLModel rows, pydantic models and dataclasses as plain JSON values."""
    from datetime import date, datetime

    # Only a value that came from the database layer can be a pydantic model, so pydantic
    # is loaded by then: no import here keeps `memp --help` from paying for it.
    base_model = sys.modules.get("pydantic")
    if base_model is not None and isinstance(obj, base_model.BaseModel):
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
    import json

    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def is_loopback(host: str) -> bool:
    """Whether a listening address is this machine only (`memp dashboard`, `memp serve`)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface
