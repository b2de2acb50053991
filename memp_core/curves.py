"""Learning curves: success and steps per group of tasks, bands across seeds, memory markers.

A curve point is one group of one run. Runs that differ only by seed form one *condition*;
where a condition has several seeds the curve gets a band (min..max across seeds). Memory
changes (a revision added, approved, rolled back, deprecated ...) are placed on the same group
axis from their timestamps, so a drop in success can be traced to the change behind it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import case, func
from sqlmodel import col, select

from memp_core.importers.export import csv_cell
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Run, Trajectory, aware
from memp_core.store import Store

MAX_MARKER_NAMES = 5


@dataclass(frozen=True)
class CurvePoint:
    run_id: int
    run: str
    condition: str
    policy: str
    model: str
    seed: int | None
    group: int
    tasks: int
    success_rate: float | None  # successes / tasks with a recorded outcome
    mean_steps: float | None
    unknown: int = 0  # tasks with no recorded outcome: neither successes nor failures


@dataclass(frozen=True)
class BandPoint:
    condition: str
    group: int
    seeds: int
    success_mean: float
    success_lo: float
    success_hi: float
    steps_mean: float | None
    steps_lo: float | None
    steps_hi: float | None


@dataclass(frozen=True)
class MemoryMarker:
    """Memory changes of one kind during one group of one run (aggregated for readability)."""

    run_id: int
    position: float  # on the group axis; x.5 means "after group x, before the next"
    kind: str  # revision added | approved | rejected | rolled back | deprecated | edited ...
    count: int
    names: list[str] = field(default_factory=list)
    at: datetime | None = None

    @property
    def label(self) -> str:
        more = f" (+{self.count - len(self.names)} more)" if self.count > len(self.names) else ""
        return f"{self.count} × {self.kind}: " + "; ".join(self.names) + more


@dataclass(frozen=True)
class GroupSpan:
    group: int
    start: datetime
    end: datetime
    tasks: int
    successes: int
    mean_steps: float | None
    unknown: int = 0

    @property
    def success_rate(self) -> float | None:
        """Over the tasks with a recorded outcome; None when none has one."""
        judged = self.tasks - self.unknown
        return self.successes / judged if judged else None


# LoopConfig fields that change what a run measures, with their defaults: a run that sets
# one to another value is another condition (tests/test_charts.py checks these defaults).
CONFIG_DEFAULTS: dict[str, object] = {"max_steps": 50, "author_model": None, "task_types": [],
                                      "update_every": 1}  # fmt: skip


def condition_of(run: Run) -> str:
    """What a run measured, without its seed: runs sharing it are seeds of one condition and
    share one band. It names everything else they must share: the kind of run, the agent,
    the memory policies, the number and size of groups, review mode and isolated memory."""
    if run.kind == "import":
        return run.name or run.source or f"import #{run.id}"
    cfg = run.config or {}
    agent = run.agent_model or run.agent or "?"
    if not run.retrieve_policy:
        memory = "no memory"
    else:
        update = run.update_policy or "none"
        update = "read-only memory" if update == "none" else update  # e.g. transfer runs
        memory = f"{update} · {run.retrieve_policy} k{run.k} · {run.build_policy or '?'}"
    per = -(-run.n_tasks // run.n_groups) if run.n_groups else run.n_tasks
    parts = [memory, agent, f"{run.n_groups} groups × {per} tasks", run.kind]
    if cfg.get("auto_approve") is False:
        parts.append("review mode")
    if cfg.get("isolated"):
        parts.append("isolated memory")
    for key, default in CONFIG_DEFAULTS.items():
        value = cfg.get(key, default)
        if value != default and not (value in (None, []) and default in (None, [])):
            parts.append(f"{key} {value}")
    return " · ".join(parts)


def run_label(run: Run) -> str:
    """The one name of a run on every page: ``#id name · seed n`` (the condition when the run
    has no name; the seed unless the name already says it)."""
    name = run.name.strip() or condition_of(run)
    seed = run.seed
    says_seed = seed is not None and re.search(rf"seed\s*[=:]?\s*{seed}\b", name)
    suffix = f" · seed {seed}" if seed is not None and not says_seed else ""
    return f"#{run.id} {name}{suffix}"


def group_spans(store: Store, run_ids: Sequence[int]) -> dict[int, list[GroupSpan]]:
    """Per run, per group: time span, tasks, successes and mean steps, from trajectories."""
    ok = func.sum(case((col(Trajectory.success).is_(True), 1), else_=0))
    unknown = func.sum(case((col(Trajectory.success).is_(None), 1), else_=0))
    out: dict[int, list[GroupSpan]] = defaultdict(list)
    with store.session() as s:
        rows = s.exec(
            select(
                Trajectory.run_id,
                Trajectory.group_index,
                func.min(Trajectory.created_at),
                func.max(Trajectory.created_at),
                func.count(),
                ok,
                func.avg(Trajectory.step_count),
                unknown,
            )
            .where(col(Trajectory.run_id).in_(list(run_ids)))
            .group_by(Trajectory.run_id, Trajectory.group_index)
            .order_by(Trajectory.run_id, Trajectory.group_index)
        ).all()
    for run_id, group, start, end, n, succ, steps, unk in rows:
        out[int(run_id)].append(
            GroupSpan(
                group=int(group or 0),
                start=aware(start),
                end=aware(end),
                tasks=int(n),
                successes=int(succ or 0),
                mean_steps=float(steps) if steps is not None else None,
                unknown=int(unk or 0),
            )
        )
    return dict(out)


def curve_points(store: Store, runs: Sequence[Run]) -> list[CurvePoint]:
    """One point per run and group: the run's recorded metrics, else its trajectories."""
    spans = group_spans(store, [r.id for r in runs if r.id is not None and not r.metrics])
    points: list[CurvePoint] = []
    for run in runs:
        base = {
            "run_id": run.id or 0,
            "run": run_label(run),
            "condition": condition_of(run),
            "policy": run.update_policy or ("import" if run.kind == "import" else "none"),
            "model": run.agent_model or run.agent,
            "seed": run.seed,
        }
        if run.metrics:
            for i, m in enumerate(run.metrics):
                rate, steps = m.get("success_rate"), m.get("mean_steps")
                points.append(
                    CurvePoint(
                        **base,
                        group=int(m.get("index", i)),
                        tasks=int(m.get("tasks") or 0),
                        success_rate=float(rate) if rate is not None else None,
                        mean_steps=float(steps) if steps is not None else None,
                        unknown=int(m.get("unknown") or 0),
                    )
                )
            continue
        for span in spans.get(run.id or 0, []):
            points.append(
                CurvePoint(
                    **base,
                    group=span.group,
                    tasks=span.tasks,
                    success_rate=span.success_rate,
                    mean_steps=span.mean_steps,
                    unknown=span.unknown,
                )
            )
    return points


def bands(points: Sequence[CurvePoint]) -> list[BandPoint]:
    """Min..max across runs of the same condition, where a condition has several runs."""
    cell: dict[tuple[str, int], list[CurvePoint]] = defaultdict(list)
    for p in points:
        if p.success_rate is not None:
            cell[(p.condition, p.group)].append(p)
    out: list[BandPoint] = []
    for (cond, group), ps in sorted(cell.items()):
        if len({p.run_id for p in ps}) < 2:
            continue
        rates = [p.success_rate for p in ps if p.success_rate is not None]
        steps = [p.mean_steps for p in ps if p.mean_steps is not None]
        out.append(
            BandPoint(
                condition=cond,
                group=group,
                seeds=len(ps),
                success_mean=sum(rates) / len(rates),
                success_lo=min(rates),
                success_hi=max(rates),
                steps_mean=sum(steps) / len(steps) if steps else None,
                steps_lo=min(steps) if steps else None,
                steps_hi=max(steps) if steps else None,
            )
        )
    return out


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
    """Memory changes during each run, aggregated per run, group position and kind."""
    spans_by_run = group_spans(store, [r.id for r in runs if r.id is not None])
    markers: list[MemoryMarker] = []
    for run in runs:
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


def to_frame(points: Sequence[CurvePoint]) -> pd.DataFrame:
    cols = list(CurvePoint.__dataclass_fields__)
    return pd.DataFrame([asdict(p) for p in points], columns=cols)


def to_csv(points: Sequence[CurvePoint]) -> str:
    """The curve points as CSV (one row per run and group). Run names and models come from
    imported files: text that a spreadsheet would run as a formula gets a leading quote,
    by the same rule as ``memp export``."""
    frame = to_frame(points)
    for name in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            frame[name] = frame[name].map(csv_cell)
    return frame.to_csv(index=False)
