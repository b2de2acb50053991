"""The ``memp`` command line (typer).

Commands live in :mod:`memp_core.commands` modules, one per area, each with a
``register(app, bench)`` function; this module owns the app, the shared options and the
translation of :class:`MempError` into one readable line and exit code 1.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, is_dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from pydantic import BaseModel
from rich.console import Console
from sqlmodel import SQLModel
from typer.core import TyperGroup

from memp_core.config import PROJECT_ROOT, Settings, get_settings, safe_url
from memp_core.credentials import NETWORK_OPT_OUT_ENV, load_credentials
from memp_core.errors import ConfigError, MempError
from memp_core.opener import display_available
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
    from memp_core.actor import system
    from memp_core.outcomes import forget_assumed

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


HostOpt = Annotated[
    str,
    typer.Option(
        help="Address to listen on. Without MEMP_AUTH_FILE only the loopback (127.0.0.1, ::1, "
        "localhost) is allowed: with no sign-in every visitor is admin"
    ),
]


@app.command()
def dashboard(
    db: DbOpt = None,
    port: Annotated[int, typer.Option(help="Port to serve on", min=1, max=65535)] = 8501,
    headless: Annotated[
        bool,
        typer.Option("--no-browser", "--headless", help="Do not open a browser (servers, scripts)"),
    ] = False,
    host: HostOpt = "127.0.0.1",
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure-no-sign-in-on-network",
            help="Serve a non-loopback --host with NO sign-in: anyone who reaches it is admin",
        ),
    ] = False,
) -> None:
    """Launch the Streamlit dashboard on app.py (this machine only unless signed in)."""
    settings = settings_for(db)
    plan = dashboard_plan(settings, host=host, port=port, headless=headless, insecure=insecure)
    Store.from_settings(settings)  # fail here, readably, if the database cannot be opened
    for line in plan.banner:
        out_console.print(line, highlight=False, soft_wrap=True)
    sys.stdout.flush()
    sys.stderr.flush()
    if not headless and display_available():
        # Streamlit runs headless (no first-run prompt); this helper opens the page once it
        # answers. It is this process's child, so it becomes Streamlit's after the exec.
        subprocess.Popen(
            [sys.executable, "-m", "memp_core.opener", plan.local_url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    # exec, not a child process: a SIGTERM or Ctrl-C to `memp dashboard` reaches Streamlit
    # itself, so stopping the command never leaves a server running.
    os.chdir(PROJECT_ROOT)
    os.execve(plan.argv[0], plan.argv, plan.env)


@dataclass(frozen=True)
class Launch:
    """What `memp dashboard` runs: Streamlit's command line, its environment, what to say."""

    argv: list[str]
    env: dict[str, str]
    banner: list[str]
    local_url: str = ""  # what a browser on this machine opens


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def dashboard_plan(
    settings: Settings, *, host: str, port: int, headless: bool, insecure: bool
) -> Launch:
    """Check the sign-in set-up against the address, then build Streamlit's command line.

    Refusals are ConfigErrors (one line, exit 1): a non-loopback address without
    credentials unless the operator opts out by name, and any credentials file the
    dashboard would refuse at page load (placeholder cookie key, plaintext password, ...).
    """
    env = dict(os.environ, MEMP_DATABASE_URL=settings.resolved_database_url())
    env.pop(NETWORK_OPT_OUT_ENV, None)  # only this run's flag may open it, never the shell
    if settings.auth_file is not None:
        creds = load_credentials(settings.auth_file)
        env["MEMP_AUTH_FILE"] = str(creds.path.resolve())  # Streamlit runs from the project
        signin = f"sign-in required ({len(creds.users)} people in {creds.path})"
    elif is_loopback(host):
        signin = "no sign-in (MEMP_AUTH_FILE unset): single local admin, this machine only"
    elif insecure:
        env[NETWORK_OPT_OUT_ENV] = "1"
        signin = "WARNING: no sign-in on a network address: every visitor is admin"
    else:
        raise ConfigError(
            f"--host {host} would let anyone who reaches this machine act as admin: there is "
            "no sign-in without MEMP_AUTH_FILE; set MEMP_AUTH_FILE (see README, People and "
            "roles) or, knowingly, pass --insecure-no-sign-in-on-network"
        )
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    where = f"http://{shown}:{port}"
    if bare in ("0.0.0.0", "::"):
        where = f"every network interface, port {port} (e.g. http://{socket.gethostname()}:{port})"
    argv = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"),
        "--server.address", bare, "--server.port", str(port),
        # Always headless: Streamlit's own browser opening asks for an e-mail on first run
        # and exits 255 without a terminal; memp_core.opener opens the browser instead.
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    banner = [f"Dashboard on {where} (database {safe_url(settings.resolved_database_url())})"]
    local = f"http://{'127.0.0.1' if bare in ('0.0.0.0', '::') else shown}:{port}"
    return Launch(argv=argv, env=env, banner=[*banner, signin], local_url=local)


def main() -> None:
    """Console-script entry point."""
    app()


def _register_commands() -> None:
    from memp_core.commands import demo, engine, mcp, runs, serve, transfer

    for module in (engine, runs, transfer, demo, serve, mcp):
        module.register(app, bench)


_register_commands()
