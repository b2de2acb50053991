"""Stable identities that survive a trip through another database.

Row ids change when an export is imported elsewhere, so the export format names objects by
keys derived from their content: trajectories by content hash, procedures by their key,
revisions by their position in the lineage, runs by a hash of their stored fields.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from memp_core.models import Run

RUN_FIELDS = (
    "name", "kind", "agent", "agent_model", "environment", "build_policy", "retrieve_policy",
    "update_policy", "k", "seed", "task_set", "n_tasks", "n_groups", "status", "source",
    "config", "metrics", "created_at", "finished_at",
)  # fmt: skip


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def iso(dt: datetime | None) -> str | None:
    """ISO text in UTC; SQLite hands back naive datetimes that were stored as UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat()


def parse_iso(text: Any) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO date string, got {type(text).__name__}")
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def run_fields(run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in RUN_FIELDS:
        value = getattr(run, name)
        out[name] = iso(value) if isinstance(value, datetime) else value
    return out


def run_key(run: Run) -> str:
    return "run-" + sha256(canonical(run_fields(run)))[:20]
