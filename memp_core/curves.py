"""Learning curves: success and steps per group of tasks, bands across seeds, memory markers.

A curve point is one group of one run. Runs that differ only by seed form one *condition*:
its curve is the mean over its seeds, with a band for their spread (min..max, or ± 1 s.d.)
where two or more seeds have the group. Memory
changes (a revision added, approved, rolled back, deprecated ...) are placed on the same group
axis from their timestamps, so a drop in success can be traced to the change behind it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import case, func
from sqlmodel import col, select

from memp_core.errors import ConfigError
from memp_core.importers.export import csv_cell
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Run, Trajectory, aware
from memp_core.outcomes import Settled, Tally, settled_by_judgements
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
    success_rate: float | None  # successes / tasks with an outcome (recorded or judged)
    mean_steps: float | None
    unknown: int = 0  # tasks with no outcome: neither successes nor failures
    by_review: int = 0  # outcomes of unknown-recorded tasks settled by a reviewed judgement
    by_judge: int = 0  # ... by an unreviewed verdict (only where the setting allows)


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
        """Over the tasks with an outcome; None when none has one."""
        judged = self.tasks - self.unknown
        return self.successes / judged if judged else None

    def settle(self, extra: Settled) -> GroupSpan:
        """This group with the unknown tasks judgements settled moved to their outcome."""
        t = extra.apply(Tally(self.successes, self.tasks - self.unknown - self.successes,
                              self.unknown))  # fmt: skip
        return replace(self, successes=t.successes, unknown=t.unknown)


# LoopConfig fields that change what a run measures, with their defaults: a run that sets
# one to another value is another condition (tests/test_charts.py checks these defaults).
CONFIG_DEFAULTS: dict[str, object] = {
    "max_steps": 50, "author_model": None, "task_types": [], "update_every": 1,
    "household": None, "priors": True, "patience": 0, "serve": None,
}  # fmt: skip
CONFIG_WORDS = {
    "max_steps": "step limit {}", "author_model": "memory written by {}",
    "task_types": "task types {}", "update_every": "memory updated every {} tasks",
    "household": "household {}", "priors": "no common-sense priors",
    "patience": "patience {} places", "serve": "memory served: {}",
}  # fmt: skip


def _config_words(key: str, value: object) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
    return CONFIG_WORDS[key].format(text or "nothing")


def condition_of(run: Run) -> str:
    """What a run measured, without its seed: runs sharing it are seeds of one condition and
    share one band. It names everything else they must share: the kind of run, the agent,
    the memory policies, the number and size of groups, review mode and isolated memory."""
    return " · ".join(condition_parts(run))


def condition_parts(run: Run) -> tuple[str, ...]:
    """:func:`condition_of` in parts: the memory first (what a comparison varies), then the
    setting every compared condition shares."""
    if run.kind == "import":
        return (run.name or run.source or f"import #{run.id}",)
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
        # "no task types" and "no author" are the default however they were written down;
        # memory served with nothing of it (serve=[]) is not memory as written (None).
        loose = key in ("task_types", "author_model") and not value and not default
        if value != default and not loose:
            parts.append(_config_words(key, value))
    return tuple(parts)


def run_label(run: Run) -> str:
    """The one name of a run on every page: ``#id name · seed n`` (the condition when the run
    has no name; the seed unless the name already says it)."""
    name = run.name.strip() or condition_of(run)
    seed = run.seed
    says_seed = seed is not None and re.search(rf"seed\s*[=:]?\s*{seed}\b", name)
    suffix = f" · seed {seed}" if seed is not None and not says_seed else ""
    return f"#{run.id} {name}{suffix}"


def group_spans(store: Store, run_ids: Sequence[int]) -> dict[int, list[GroupSpan]]:
    """Per run, per group: time span, tasks, successes and mean steps, from trajectories
    (recorded outcomes; :func:`judged_groups` says what judgements add)."""
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


def judged_groups(
    store: Store, run_ids: Sequence[int], *, count_unreviewed: bool = False
) -> dict[tuple[int, int], Settled]:
    """Per (run, group): the unknown-outcome tasks that judgements settle (one query over
    the judgements of those runs' unknown trajectories)."""
    if not run_ids:
        return {}
    with store.session() as s:
        found = settled_by_judgements(
            s, [Trajectory.run_id, Trajectory.group_index],
            col(Trajectory.run_id).in_(list(run_ids)), count_unreviewed=count_unreviewed,
        )  # fmt: skip
    return {(int(r), int(g or 0)): v for (r, g), v in found.items()}


def curve_points(
    store: Store, runs: Sequence[Run], *, count_unreviewed: bool = False
) -> list[CurvePoint]:
    """One point per run and group: the run's recorded metrics, else its trajectories; either
    way, unknown outcomes that judgements settle count as their outcome (a reviewed
    judgement always, an unreviewed one only with ``count_unreviewed``: the setting)."""
    spans = group_spans(store, [r.id for r in runs if r.id is not None and not r.metrics])
    judged = judged_groups(store, [r.id for r in runs if r.id is not None],
                           count_unreviewed=count_unreviewed)  # fmt: skip
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
                group = int(m.get("index", i))
                outcomes, extra = _settled_metric(m, judged.get((run.id or 0, group)))
                rate = _float(m.get("success_rate")) if outcomes is None else outcomes.rate
                points.append(
                    CurvePoint(
                        **base, group=group, tasks=int(m.get("tasks") or 0),
                        success_rate=rate, mean_steps=_float(m.get("mean_steps")),
                        unknown=int(m.get("unknown") or 0) - extra.runs,
                        by_review=extra.by_review, by_judge=extra.by_judge,
                    )
                )  # fmt: skip
            continue
        for span in spans.get(run.id or 0, []):
            extra = judged.get((run.id or 0, span.group), Settled())
            span = span.settle(extra)
            points.append(
                CurvePoint(
                    **base, group=span.group, tasks=span.tasks, success_rate=span.success_rate,
                    mean_steps=span.mean_steps, unknown=span.unknown,
                    by_review=extra.by_review, by_judge=extra.by_judge,
                )
            )  # fmt: skip
    return points


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _settled_metric(m: dict[str, Any], extra: Settled | None) -> tuple[Tally | None, Settled]:
    """A run's recorded metrics entry with the unknown tasks judgements settled moved to
    their outcome: (its tally, what was settled), or (None, nothing) when nothing was or the
    metrics do not count those tasks as unknown (a file's own figures for other runs)."""
    tasks, unknown = int(m.get("tasks") or 0), int(m.get("unknown") or 0)
    if extra is None or not extra.runs or extra.runs > unknown:
        return None, Settled()
    judged = tasks - unknown
    rate = _float(m.get("success_rate"))
    ok = int(m["successes"]) if "successes" in m else round((rate or 0.0) * judged)
    return extra.apply(Tally(ok, judged - ok, unknown)), extra


def bands(points: Sequence[CurvePoint]) -> list[ConditionPoint]:
    """Min..max across runs of the same condition, where two or more have the group."""
    return [c for c in condition_curves(points) if c.seeds >= 2]


# -- conditions: the seeds of one setup, averaged ------------------------------------------------

POLICY_ORDER = ("none", "vanilla", "validation", "reflect")
SPREADS = {"range": "min–max across seeds", "sd": "mean ± 1 standard deviation"}


@dataclass(frozen=True)
class Condition:
    """The runs that differ only by seed (see :func:`condition_of`)."""

    name: str
    parts: tuple[str, ...]  # the memory first, then the setting
    policy: str
    run_ids: tuple[int, ...]
    seeds: tuple[int | None, ...]
    model: str = ""

    @property
    def setting(self) -> str:
        return " · ".join(self.parts[1:])

    @property
    def label(self) -> str:
        n = len(self.run_ids)
        return f"{self.name} ({n} run{'s' if n != 1 else ''})"


@dataclass(frozen=True)
class ConditionPoint:
    """One group of one condition: the mean over the seeds that have a success rate there,
    and their spread (``lo``..``hi``: min..max, or mean ± 1 s.d.)."""

    condition: str
    group: int
    seeds: int  # runs with a success rate in this group (the mean is over these)
    tasks: int
    unknown: int  # tasks with no recorded outcome, in every run of the condition
    success_mean: float | None
    success_lo: float | None
    success_hi: float | None
    steps_mean: float | None
    steps_lo: float | None
    steps_hi: float | None


def conditions(runs: Sequence[Run]) -> list[Condition]:
    """The conditions of ``runs``, in the order their first run appears."""
    members: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        members[condition_of(run)].append(run)
    return [
        Condition(name, condition_parts(rs[0]), _policy(rs[0]), tuple(r.id or 0 for r in rs),
                  tuple(r.seed for r in rs), rs[0].agent_model or rs[0].agent)
        for name, rs in members.items()
    ]  # fmt: skip


def _policy(run: Run) -> str:
    return run.update_policy or ("import" if run.kind == "import" else "none")


def default_conditions(conds: Sequence[Condition]) -> list[Condition]:
    """What the page opens on: the largest comparison, i.e. the setting shared by the most
    conditions (then the most runs; ties go to the first listed), no memory first and then
    the policies in the paper's order."""
    if not conds:
        return []
    family: dict[str, list[Condition]] = defaultdict(list)
    for c in conds:
        family[c.setting].append(c)
    best = max(family.values(), key=lambda cs: (len(cs), sum(len(c.run_ids) for c in cs)))
    rank = {p: i for i, p in enumerate(POLICY_ORDER)}
    return sorted(best, key=lambda c: (rank.get(c.policy, len(rank)), c.parts[0]))


def short_names(conds: Sequence[Condition]) -> tuple[dict[str, str], str]:
    """A legend name per condition (its memory, and what else tells it from the others) and
    the setting they all share, said once."""
    if not conds:
        return {}, ""
    common = set.intersection(*(set(c.parts[1:]) for c in conds))
    names = {c.name: " · ".join([c.parts[0], *(p for p in c.parts[1:] if p not in common)])
             for c in conds}  # fmt: skip
    return names, " · ".join(p for p in conds[0].parts[1:] if p in common)


def condition_curves(points: Sequence[CurvePoint], spread: str = "range") -> list[ConditionPoint]:
    """Per condition and group: the mean over seeds (each seed weighs the same), and the
    spread. A seed whose group has no recorded outcome at all is left out of the mean and its
    tasks counted as unknown, never as successes; a seed that ran fewer groups simply stops
    contributing, so the later groups' ``seeds`` says how many are left."""
    if spread not in SPREADS:
        raise ConfigError(f"unknown spread {spread!r}; valid: {sorted(SPREADS)}")
    cell: dict[tuple[str, int], list[CurvePoint]] = defaultdict(list)
    order: dict[str, int] = {}
    for p in points:
        cell[(p.condition, p.group)].append(p)
        order.setdefault(p.condition, len(order))
    out = []
    for (cond, group), ps in sorted(cell.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        rate = _spread([p.success_rate for p in ps], spread)
        steps = _spread([p.mean_steps for p in ps], spread)
        out.append(ConditionPoint(
            cond, group, sum(p.success_rate is not None for p in ps), sum(p.tasks for p in ps),
            sum(p.unknown for p in ps), *rate, *steps,
        ))  # fmt: skip
    return out


@dataclass(frozen=True)
class ConditionSummary:
    condition: str
    seeds: int  # the most seeds any of its groups has
    groups: int
    first: float | None  # mean success in its first group with an outcome
    last: float | None
    change: float | None  # last - first, in percentage points
    steps_first: float | None
    steps_last: float | None
    unknown: int


def condition_summaries(cpoints: Sequence[ConditionPoint]) -> list[ConditionSummary]:
    by: dict[str, list[ConditionPoint]] = defaultdict(list)
    for p in cpoints:
        by[p.condition].append(p)
    out = []
    for cond, ps in by.items():
        judged = [p for p in ps if p.success_mean is not None]
        first, last = (judged[0], judged[-1]) if judged else (None, None)
        a, b = (first.success_mean, last.success_mean) if first and last else (None, None)
        out.append(ConditionSummary(
            cond, max(p.seeds for p in ps), len(ps), a, b,
            (b - a) * 100 if a is not None and b is not None else None,
            ps[0].steps_mean, ps[-1].steps_mean, sum(p.unknown for p in ps),
        ))  # fmt: skip
    return out


def summaries_frame(rows: Sequence[ConditionSummary]) -> pd.DataFrame:
    return pd.DataFrame(
        [asdict(r) for r in rows], columns=list(ConditionSummary.__dataclass_fields__)
    )


def _spread(values: Sequence[float | None], spread: str) -> tuple[float | None, ...]:
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None, None
    mean = sum(xs) / len(xs)
    if spread == "range":
        return mean, min(xs), max(xs)
    sd = (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return mean, mean - sd, mean + sd


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


def data_version(store: Store) -> tuple[int, ...]:
    """Changes when anything curves and markers read changes: a new run, trajectory,
    revision or audit event (newest ids), or a run finishing. Primary-key maxima and one
    count on an index: cheap on any size, so pages can key their caches on it."""
    with store.session() as s:
        newest = [s.exec(select(func.max(c))).one() or 0 for c in
                  (Run.id, Trajectory.id, ProcedureRevision.id, AuditEvent.id)]  # fmt: skip
        running = s.exec(select(func.count()).where(col(Run.status) == "running")).one()
    return (*newest, int(running or 0))


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
