"""A real `memp serve` for tests: uvicorn on a free 127.0.0.1 port, in a thread or a process.

Shared by the REST, MCP and OTLP tests::

    with live_server(db_url, embedder=hash_embedder) as srv:
        key = make_key(srv.store, "bot", ["procedures:read", "runs:write"])
        httpx.post(f"{srv.url}/v1/retrieve", headers=bearer(key), json={"task": "..."})

``live_server`` runs the app in this process (fast; the app's lifespan, hence the MCP
session manager, runs in the server's thread); ``serve_process`` runs ``memp serve`` as a
subprocess, exactly as users start it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from memp_core.actor import os_user
from memp_core.agents.keys import create_key
from memp_core.agents.operations import AgentDoor
from memp_core.config import Settings
from memp_core.embeddings import Embedder
from memp_core.memory import ProceduralMemory
from memp_core.service.app import create_app
from memp_core.store import Store

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LiveServer:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    app: FastAPI
    door: AgentDoor
    store: Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_key(store: Store, agent: str, scopes: Iterable[str]) -> str:
    """A new key for ``agent`` created by the OS user (an admin), as `memp keys create` does."""
    return create_key(store, agent=agent, scopes=list(scopes), actor=os_user()).key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port; yields its base URL."""
    sock = socket.socket()
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@contextmanager
def live_server(
    db_url: str, *, embedder: Embedder | None = None, memory: ProceduralMemory | None = None
) -> Iterator[LiveServer]:
    """`memp serve`'s app over ``db_url`` (heuristic backend), on a free 127.0.0.1 port."""
    if memory is None:
        settings = Settings(database_url=db_url)
        store = Store(db_url)
        memory = ProceduralMemory(store, settings=settings, embedder=embedder, backend="heuristic")
    app = create_app(memory=memory)
    with running(app) as url:
        yield LiveServer(url, app, app.state.door, memory.store)


@contextmanager
def serve_process(db_url: str, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """``memp serve --port P --db db_url`` as a subprocess (own process group); its URL."""
    port = free_port()
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memp_core", "serve", "--port", str(port), "--db", db_url],
        env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"memp serve exited with {proc.returncode}: {out[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("memp serve did not answer /healthz")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
