"""Learning curves: success and steps per group of tasks, one point per run and group.

A curve point is one group of one run: its recorded metrics, else its trajectories, with
unknown outcomes that judgements settle counted as their outcome. Each run is named once
(:func:`run_label`) and keyed by what it measured without its seed (:func:`condition_of`):
runs sharing that key are the seeds of one condition, averaged in :mod:`memp_core.conditions`.
The memory changes on the same group axis are in :mod:`memp_core.markers`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import case, func
from sqlmodel import col, select

from memp_core.importers.export import csv_cell
from memp_core.models import AuditEvent, ProcedureRevision, Run, Trajectory, aware
from memp_core.outcomes import Settled, Tally, settled_by_judgements
from memp_core.store import Store


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


def policy_of(run: Run) -> str:
    """The run's memory update policy: "none" without one, "import" for an imported run."""
    return run.update_policy or ("import" if run.kind == "import" else "none")


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
            "policy": policy_of(run),
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
