"""`memp mcp`: the agents' door as an MCP server over stdio, for desktop clients and IDEs.

The client starts ``memp mcp`` and speaks MCP on its stdin/stdout; the agent's identity
comes from the ``MEMP_API_KEY`` environment variable (a key made with `memp keys create`).
Stdout is the protocol: everything this command says goes to stderr.
"""

from __future__ import annotations

import os
import sys

import typer

from memp_core.commands.options import DbOpt, err_console, settings_for
from memp_core.errors import ConfigError

KEY_ENV = "MEMP_API_KEY"


def mcp(db: DbOpt = None) -> None:
    """Serve MCP over stdio for one agent (key in MEMP_API_KEY); logs go to stderr."""
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise ConfigError(
            f"{KEY_ENV} is not set: put an agent's key there (an admin makes one with "
            "`memp keys create --agent NAME --scopes procedures:read,runs:write`)"
        )
    # Imported here: the service stack (FastAPI, the MCP SDK) is not needed by other commands.
    import logging  # stdout is the protocol: logs go to stderr

    from memp_core.agents.operations import AgentDoor
    from memp_core.config import safe_url
    from memp_core.memory import ProceduralMemory
    from memp_core.service.mcp_door import serve_stdio
    from memp_core.store import Store

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    settings = settings_for(db)
    door = AgentDoor(ProceduralMemory(Store.from_settings(settings), settings=settings))
    who = door.verify(key)  # a missing, unknown or revoked key stops here, in one line
    err_console.print(
        f"memp mcp: agent {who.agent} (key {who.key_id}; {', '.join(sorted(who.scopes))}) "
        f"on {safe_url(settings.resolved_database_url())}, MCP over stdio",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    serve_stdio(door, key)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command(name="mcp")(mcp)
