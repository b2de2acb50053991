"""``create_app``: the FastAPI application behind `memp serve` (REST, MCP, OTLP).

Thin by design: routes call :class:`~memp_core.agents.operations.AgentDoor`, which holds
the rules. This module wires the doors together, limits request bodies and turns every
:class:`~memp_core.errors.MempError` into a status code with a one-line JSON
``{"detail": "..."}``; nothing a client sends can produce a traceback in a response.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memp_core.agents.operations import AgentDoor
from memp_core.config import Settings, get_settings
from memp_core.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    DatabaseLockedError,
    ImportFormatError,
    LLMError,
    MempError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    StoreError,
)
from memp_core.memory import ProceduralMemory
from memp_core.service import mcp_door, otlp_door, rest
from memp_core.store import Store

log = logging.getLogger("memp.serve")

# The largest request body accepted (413 above it): a 10,000-step report fits easily.
MAX_BODY_BYTES = 5 * 1024 * 1024
RETRY_AFTER_S = 2  # what a 503 for a locked database tells the client to wait
VERSION = "0.1.0"

# Most specific first: ScopeError is a PermissionDeniedError, DatabaseLockedError a StoreError.
STATUS: tuple[tuple[type[MempError], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PayloadTooLargeError, 413),
    (ImportFormatError, 422),
    (ConfigError, 422),
    (DatabaseLockedError, 503),
    (StoreError, 503),
    (LLMError, 502),
)


def status_of(exc: MempError) -> int:
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 422  # any other rule of the core (e.g. a review action not valid here)


def create_app(
    settings: Settings | None = None, *, memory: ProceduralMemory | None = None
) -> FastAPI:
    """The service over ``memory`` (default: a new one on ``settings``' database)."""
    if memory is None:
        settings = settings or get_settings()
        memory = ProceduralMemory(Store.from_settings(settings), settings=settings)
    door = AgentDoor(memory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp_door.attach(app, door):
            yield

    # FastAPI's own /docs loads Swagger UI from a CDN: blank on an air-gapped network.
    app = FastAPIOffline(
        title="Memp Studio",
        version=VERSION,
        description="Procedural memory for agents: retrieve approved procedures, report "
        "runs, give feedback, propose procedures (they wait for a person's review). Every "
        "route but /healthz and /docs needs an API key (`memp keys create`).",
        lifespan=lifespan,
    )
    app.state.door = door
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    install_error_handlers(app)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: no key needed, nothing about the data."""
        return {"status": "ok"}

    app.include_router(rest.router)
    app.include_router(otlp_door.router)
    return app


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MempError, _memp_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _memp_error(_request: Request, exc: MempError) -> JSONResponse:
    code = status_of(exc)
    headers = {}
    if code == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"detail": _one_line(str(exc))}, status_code=code, headers=headers)


async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each field (``body.steps.0.action: Field required``), in one line."""
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors]
    fields = [".".join(str(p) for p in e.get("loc", ())) for e in errors]
    detail = _one_line(
        "; ".join(parts[:10]) + (f"; and {len(parts) - 10} more" if len(parts) > 10 else "")
    )
    return JSONResponse({"detail": detail, "fields": fields[:50]}, status_code=422)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # The edge of the service: the traceback goes to the server's log, never to the client.
    log.error("unexpected error", exc_info=exc)
    return JSONResponse(
        {"detail": f"internal error ({exc.__class__.__name__}); see the server log"},
        status_code=500,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:2000]


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: by Content-Length before reading,
    and while reading for bodies that do not say their length (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"detail": self._message()}, status_code=413)
            await response(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _message(self) -> str:
        return f"request body larger than {self.max_bytes // (1024 * 1024)} MB"

    def _counting(self, receive: Receive) -> Callable[[], Awaitable[Message]]:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException: FastAPI re-raises it from its body parsing (any
                    # other error there becomes a 400), and its handler answers 413.
                    raise HTTPException(413, self._message())
            return message

        return counted
