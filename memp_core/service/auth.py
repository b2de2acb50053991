"""FastAPI dependencies: the calling agent, from its key alone, and the scope a route needs.

The key travels as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The dependencies
are plain functions (FastAPI runs them in its thread pool: checking a key reads the
database), and they run before the body is read, so a request without a valid key is
refused (401) before anything it sent is looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request

from memp_core.agents.keys import Identity
from memp_core.agents.operations import AgentDoor


def raw_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries (Bearer first, then X-API-Key), or None."""
    auth = headers.get("authorization") or ""
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


def door(request: Request) -> AgentDoor:
    """The app's one :class:`AgentDoor` (built by :func:`memp_core.service.app.create_app`)."""
    return request.app.state.door  # type: ignore[no-any-return]


def identity(request: Request) -> Identity:
    """Who calls; 401 (AuthenticationError) for no key, an unknown or a revoked one."""
    return door(request).verify(raw_key(request.headers))


def requires(scope: str) -> Callable[[Identity], Identity]:
    """A dependency returning the caller's identity if its key holds ``scope`` (else 403)."""

    def check(who: Annotated[Identity, Depends(identity)]) -> Identity:
        who.require(scope)
        return who

    check.__name__ = f"requires_{scope.replace(':', '_')}"
    return check
