"""MCP at ``/mcp`` (placeholder: the MCP helper replaces this)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI


@asynccontextmanager
async def attach(app: FastAPI, door: Any) -> AsyncIterator[None]:
    """Mount the MCP endpoint on ``app`` and run its session manager while the app runs."""
    yield
