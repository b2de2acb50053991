"""`memp dashboard`: check the sign-in set-up against the listening address, then exec
Streamlit on app.py (headless always; memp_core.opener opens the browser)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from memp_core.commands.options import DbOpt, is_loopback, out_console, settings_for
from memp_core.errors import ConfigError

if TYPE_CHECKING:
    from memp_core.config import Settings

# memp_core.config.PROJECT_ROOT, without importing pydantic-settings and SQLAlchemy here
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent

HostOpt = Annotated[
    str,
    typer.Option(
        help="Address to listen on. Without MEMP_AUTH_FILE only the loopback (127.0.0.1, ::1, "
        "localhost) is allowed: with no sign-in every visitor is admin"
    ),
]


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
    from memp_core.opener import display_available
    from memp_core.store import Store

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
        import subprocess

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


def dashboard_plan(
    settings: Settings, *, host: str, port: int, headless: bool, insecure: bool
) -> Launch:
    """Check the sign-in set-up against the address, then build Streamlit's command line.

    Refusals are ConfigErrors (one line, exit 1): a non-loopback address without
    credentials unless the operator opts out by name, and any credentials file the
    dashboard would refuse at page load (placeholder cookie key, plaintext password, ...).
    """
    from memp_core.config import safe_url
    from memp_core.credentials import NETWORK_OPT_OUT_ENV, load_credentials

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
        import socket

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


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command()(dashboard)
