"""`memp dedupe`: filled in by issue 14 (see the module that implements it)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Nothing yet."""
