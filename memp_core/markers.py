"""Memory markers: the memory changes during a run, placed on its group axis.

A revision added, approved, rejected, rolled back, deprecated or edited is placed on the same
group axis as the learning curves (:mod:`memp_core.curves`) from its timestamp, so a drop in
success can be traced to the change behind it. Changes are added up per run, group position
and kind (a condition's seeds together in :func:`condition_markers`); a run that kept its
changes in its config (the demo's sandboxed comparison) shows those.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from memp_core.curves import GroupSpan, group_spans
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Run, aware
from memp_core.store import Store

MAX_MARKER_NAMES = 5


@dataclass(frozen=True)
class MemoryMarker:
    """Memory changes of one kind during one group of one run (aggregated for readability)."""

    run_id: int
    position: float  # on the group axis; x.5 means "after group x, before the next"
    kind: str  # revision added | approved | rejected | rolled back | deprecated | edited ...
    count: int
    names: list[str] = field(default_factory=list)
    at: datetime | None = None
    runs: int = 1  # runs (seeds of one condition) whose changes this marker adds up

    @property
    def label(self) -> str:
        more = f" (+{self.count - len(self.names)} more)" if self.count > len(self.names) else ""
        over = f" over {self.runs} runs" if self.runs > 1 else ""
        return f"{self.count} × {self.kind}{over}: " + "; ".join(self.names) + more

    def record(self) -> dict[str, object]:
        """As a run's config keeps it (see :func:`memory_markers`)."""
        return {"position": self.position, "kind": self.kind, "count": self.count,
                "names": self.names, "at": self.at.isoformat() if self.at else None}  # fmt: skip


def position_of(at: datetime, spans: list[GroupSpan]) -> float:
    """Where a moment falls on the group axis: inside a group, or half-way between two."""
    at = aware(at)
    for i, span in enumerate(spans):
        if at <= span.end:
            if at >= span.start or i == 0:
                return float(span.group) if at >= span.start else span.group - 0.5
            return (spans[i - 1].group + span.group) / 2.0
    return spans[-1].group + 0.5


def _audit_kind(action: str) -> str | None:
    a = action.lower()
    for word, kind in (
        ("approv", "approved"),
        ("reject", "rejected"),
        ("rollback", "rolled back"),
        ("roll_back", "rolled back"),
        ("deprecat", "deprecated"),
        ("edit", "edited"),
    ):
        if word in a:
            return kind
    return None


def memory_markers(
    store: Store, runs: Sequence[Run], *, slack: timedelta = timedelta(seconds=1)
) -> list[MemoryMarker]:
    """Memory changes during each run, aggregated per run, group position and kind.

    A run that ran on a memory of its own and kept only its Run row (the demo's policy
    comparison) has no trajectories or revisions here: the changes it made were placed on
    its group axis in its own database and kept in its config (``memory_changes``).
    """
    kept = [r for r in runs if "memory_changes" in (r.config or {})]
    markers = [_recorded(run.id or 0, m) for run in kept for m in run.config["memory_changes"]]
    live = [r for r in runs if "memory_changes" not in (r.config or {})]
    spans_by_run = group_spans(store, [r.id for r in live if r.id is not None])
    for run in live:
        spans = spans_by_run.get(run.id or 0)
        if not spans:
            continue
        # Not before the run itself began: back-to-back runs must not share changes.
        start = max(min(s.start for s in spans) - slack, aware(run.created_at))
        end = max([s.end for s in spans] + ([aware(run.finished_at)] if run.finished_at else []))
        end += slack
        cells: dict[tuple[float, str], list[tuple[datetime, str]]] = defaultdict(list)
        for at, kind, name in _changes_between(store, start, end):
            cells[(position_of(at, spans), kind)].append((at, name))
        for (pos, kind), items in sorted(cells.items()):
            names = [n for _, n in items[:MAX_MARKER_NAMES]]
            markers.append(MemoryMarker(run.id or 0, pos, kind, len(items), names, items[0][0]))
    return markers


def _recorded(run_id: int, m: dict[str, Any]) -> MemoryMarker:
    at = m.get("at")
    when = aware(datetime.fromisoformat(at)) if isinstance(at, str) else None
    names = [str(n) for n in m.get("names") or []]
    return MemoryMarker(run_id, float(m["position"]), str(m["kind"]), int(m["count"]), names,
                        when)  # fmt: skip


def condition_markers(store: Store, runs: Sequence[Run]) -> list[MemoryMarker]:
    """The memory changes of a condition's runs, added up per group position and kind."""
    cells: dict[tuple[float, str], list[MemoryMarker]] = defaultdict(list)
    for m in memory_markers(store, runs):
        cells[(m.position, m.kind)].append(m)
    out = []
    for (pos, kind), ms in sorted(cells.items()):
        names = [n for m in ms for n in m.names][:MAX_MARKER_NAMES]
        count = sum(m.count for m in ms)
        at = min((m.at for m in ms if m.at), default=None)
        out.append(MemoryMarker(ms[0].run_id, pos, kind, count, names, at,
                                runs=len({m.run_id for m in ms})))  # fmt: skip
    return out


def _changes_between(
    store: Store, start: datetime, end: datetime, limit: int = 5000
) -> list[tuple[datetime, str, str]]:
    """(when, kind, name) of every revision and reviewer action in a time window."""
    out: list[tuple[datetime, str, str]] = []
    with store.session() as s:
        revs = s.exec(
            select(ProcedureRevision.created_at, ProcedureRevision.origin, ProcedureRevision.id,
                   Procedure.title)
            .join(Procedure, col(Procedure.id) == col(ProcedureRevision.procedure_id))
            .where(ProcedureRevision.created_at >= start, ProcedureRevision.created_at <= end)
            .order_by(ProcedureRevision.created_at)
            .limit(limit)
        ).all()  # fmt: skip
        events = s.exec(
            select(AuditEvent)
            .where(AuditEvent.created_at >= start, AuditEvent.created_at <= end)
            .order_by(AuditEvent.created_at)
            .limit(limit)
        ).all()
    for at, origin, rid, title in revs:
        kind = "rolled back" if origin == "rollback" else "revision added"
        out.append((aware(at), kind, f"{title} (rev {rid}, {origin})"))
    for ev in events:
        kind = _audit_kind(ev.action)
        if kind and kind != "rolled back":  # a rollback is already shown by its revision
            out.append(
                (aware(ev.created_at), kind, f"{ev.object_type} {ev.object_id} by {ev.actor}")
            )
    return out
