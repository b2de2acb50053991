"""`memp serve` (REST, MCP and OTLP for agents), `memp keys create|list|revoke` and
`memp bench serve`.

Who acts: keys are created and revoked by the OS user (:func:`memp_core.actor.os_user`, an
admin of their own files), recorded as ``human:<user>`` in the audit log.
"""

from __future__ import annotations

import socket
import sys
from typing import Annotated

import typer

from memp_core.actor import os_user
from memp_core.commands.options import (
    DbOpt,
    JsonOpt,
    MempGroup,
    Table,
    is_loopback,
    open_store,
    out_console,
    print_json,
    settings_for,
)
from memp_core.errors import ConfigError

# memp_core.models.SCOPES, written out for the help text so that `memp --help` does not load
# the database layer (tests/test_cli_startup.py checks they agree)
SCOPES = ("procedures:read", "runs:write", "procedures:propose", "review:admin")

keys = typer.Typer(
    cls=MempGroup, rich_markup_mode=None, help="Agents' API keys for `memp serve` (admins)."
)


@keys.command("create")
def keys_create(
    agent: Annotated[str, typer.Option(help="The agent's name (recorded on all it does)")],
    scopes: Annotated[
        str, typer.Option(help=f"Comma-separated scopes: {', '.join(SCOPES)}")
    ] = "procedures:read",
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Create a key; it is printed this once (only a salted hash is stored)."""
    from memp_core.agents.keys import create_key

    made = create_key(open_store(db), agent=agent, scopes=scopes.split(","), actor=os_user())
    if json_:
        print_json({"key": made.key, "id": made.id, "agent": made.agent, "scopes": made.scopes})
        return
    out_console.print(
        f"Key {made.id} for {made.agent} ({', '.join(made.scopes)}), shown once, store it now:",
        highlight=False,
    )
    sys.stdout.write(made.key + "\n")


@keys.command("list")
def keys_list(db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Every key: agent, scopes, created, last used (to the minute), revoked."""
    from memp_core.agents.keys import list_keys

    rows = list_keys(open_store(db))
    if json_:
        print_json([
            {"id": k.id, "agent": k.agent, "scopes": k.scopes, "created_at": k.created_at,
             "last_used_at": k.last_used_at, "revoked": k.revoked, "created_by": k.created_by}
            for k in rows
        ])  # fmt: skip
        return
    table = Table("id", "agent", "scopes", "created", "last used", "revoked", "created by")
    for k in rows:
        table.add_row(str(k.id), k.agent, ", ".join(k.scopes), f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
                      "yes" if k.revoked else "", k.created_by)  # fmt: skip
    out_console.print(table)


@keys.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id")], db: DbOpt = None
) -> None:
    """Revoke a key at once: its next request is refused (401)."""
    from memp_core.agents.keys import revoke_key

    info = revoke_key(open_store(db), key_id, actor=os_user())
    out_console.print(f"Key {info.id} of {info.agent} revoked", highlight=False)


def serve(
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (every route but /healthz and /docs needs a key)"),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port)", min=0, max=65535)] = 8600,
    db: DbOpt = None,
) -> None:
    """Serve agents: REST under /v1, MCP at /mcp, OTLP traces at /v1/traces, docs at /docs."""
    import uvicorn

    from memp_core.config import safe_url
    from memp_core.service.app import create_app

    settings = settings_for(db)
    app = create_app(settings)
    warm(app)
    sock = bind(host, port)
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    real_port = sock.getsockname()[1]
    out_console.print(
        f"memp serve on http://{shown}:{real_port} (docs /docs, MCP /mcp, OTLP /v1/traces; "
        f"database {safe_url(settings.resolved_database_url())})",
        highlight=False,
        soft_wrap=True,
    )
    if not is_loopback(bare):
        out_console.print(
            f"listening beyond this machine ({bare}): every route but /healthz and /docs "
            "needs an API key; put TLS in front of it on an untrusted network",
            highlight=False,
        )
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def warm(app: object) -> None:
    """Load the embedder and the index before listening: the first agent waits for nothing."""
    door = app.state.door  # type: ignore[attr-defined]
    door.memory.embedder.embed_array(["warm up"])
    if door.store.dialect != "postgresql":
        door.memory.index  # noqa: B018  (loads every revision once)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (the real port is known before serving)."""
    bare = host.strip("[]")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bench_serve(
    postgres: Annotated[
        bool, typer.Option("--postgres", help="A throw-away Postgres (pgserver) or --pg-url")
    ] = False,
    pg_url: Annotated[
        str | None, typer.Option(help="With --postgres: a server to use (a database is made)")
    ] = None,
    clients: Annotated[int, typer.Option(min=1, max=64, help="Concurrent agents")] = 8,
    procedures: Annotated[int, typer.Option(min=1, help="Approved procedures in memory")] = 10_000,
    rounds: Annotated[int, typer.Option(min=1, help="Alternating rounds per side")] = 3,
    round_s: Annotated[float, typer.Option(min=0.5, help="Seconds per round")] = 5.0,
    json_: JsonOpt = False,
) -> None:
    """Agents retrieving and reporting over HTTP (`memp serve`) against the same calls
    in-process, in one run: requests per second, latency, errors."""
    from memp_core.service.bench import run_serve_bench

    res = run_serve_bench(postgres=postgres, pg_url=pg_url, clients=clients,
                          procedures=procedures, rounds=rounds, round_s=round_s)  # fmt: skip
    if json_:
        print_json(res)
        return
    out_console.print(
        f"{res['clients']} clients, {res['procedures']} procedures ({res['database']}): "
        f"HTTP {res['throughput_rps']} req/s (p50 {res['p50_ms']} ms, p95 {res['p95_ms']} ms), "
        f"in-process {res['inprocess_rps']} req/s, ratio {res['ratio']}; "
        f"{res['errors']} errors",
        highlight=False,
    )


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
    app.command()(serve)
    app.add_typer(keys, name="keys")
    bench.command("serve")(bench_serve)
