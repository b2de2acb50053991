"""`memp mcp` (placeholder: its helper replaces this)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add this area's commands to the app and the `bench` group."""
