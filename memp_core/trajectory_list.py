"""The trajectory list: what the Trajectories page filters on, and one page of runs to show.

The page makes three reads: :func:`filter_options` (the values each filter offers, cached by
the page: four DISTINCT scans are slow on 100k runs), :func:`run_choices` (the runs, read
fresh so a run started a moment ago can be picked) and :func:`trajectory_page` (one page of
the runs matching a filter, with the judgement to show beside each run of unknown outcome).
:func:`trajectory_total` counts the matches first, because the page-number widget is drawn
before the page is read. Filtering and paging stay in :meth:`Store.list_trajectories`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from memp_core.judge.judgements import latest_judgements
from memp_core.models import Judgement, Run, Trajectory
from memp_core.store import Store, TrajectoryFilter


@dataclass(frozen=True)
class TrajectoryOptions:
    """The non-empty values stored trajectories have, sorted: what each filter offers."""

    task_types: list[str]
    agent_models: list[str]
    sources: list[str]
    reporting_agents: list[str]  # agents (API keys) that reported runs over memp serve


@dataclass(frozen=True)
class RunChoice:
    """A run as the Run filter offers it: ``#3 online-heat (simulator)``."""

    id: int
    label: str


@dataclass(frozen=True)
class TrajectoryRow:
    """One row of the list: the trajectory and, when its outcome is unknown, the judgement
    to show beside it (the latest reviewed one, else the newest; None if never judged)."""

    trajectory: Trajectory
    judgement: Judgement | None = None

    @property
    def judged(self) -> str:
        """The judged outcome in a few words: ``success 0.95``, or ``failure (reviewed)``
        when a person settled it (their verdict, not the judge's); "" when not judged."""
        j = self.judgement
        if j is None:
            return ""
        if j.review is not None:
            return f"{j.reviewed_verdict} (reviewed)"
        return f"{j.verdict} {j.confidence:.2f}"


@dataclass(frozen=True)
class TrajectoryPage:
    """One page of the trajectories matching a filter, newest first."""

    rows: list[TrajectoryRow]
    total: int  # all matches, not only this page's
    offset: int
    limit: int

    @property
    def trajectories(self) -> list[Trajectory]:
        return [r.trajectory for r in self.rows]


def filter_options(store: Store) -> TrajectoryOptions:
    """The values the Trajectories page's filters offer (four DISTINCT scans)."""
    return TrajectoryOptions(
        task_types=store.distinct_values(Trajectory.task_type),
        agent_models=store.distinct_values(Trajectory.agent_model),
        sources=store.distinct_values(Trajectory.source),
        reporting_agents=store.distinct_values(Trajectory.reporting_agent),
    )


def run_choices(store: Store) -> list[RunChoice]:
    """Every run, oldest first, labelled by its name (else its kind) and its source (else
    its agent). Reads only the columns the label needs, not each run's metrics."""
    query = select(Run.id, Run.name, Run.kind, Run.source, Run.agent).order_by(col(Run.id))
    with store.session() as s:
        rows = s.exec(query).all()
    return [
        RunChoice(int(rid or 0), f"#{rid} {name or kind} ({source or agent})")
        for rid, name, kind, source, agent in rows
    ]


def trajectory_total(store: Store, flt: TrajectoryFilter) -> int:
    """How many trajectories match ``flt`` (a count, no rows read)."""
    return store.list_trajectories(flt, offset=0, limit=0).total


def trajectory_page(
    store: Store, flt: TrajectoryFilter, *, offset: int = 0, limit: int = 50
) -> TrajectoryPage:
    """The trajectories matching ``flt`` from ``offset`` (newest first), each run of unknown
    outcome with its judgement to show: two queries for the page, one for its judgements."""
    found = store.list_trajectories(flt, offset=offset, limit=limit)
    unknown = [int(t.id or 0) for t in found.rows if t.success is None]
    judged = latest_judgements(store, unknown) if unknown else {}
    rows = [TrajectoryRow(t, judged.get(int(t.id or 0))) for t in found.rows]
    return TrajectoryPage(rows, found.total, found.offset, found.limit)
