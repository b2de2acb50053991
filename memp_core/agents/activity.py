"""What the Agents page shows: each agent's keys and what it did through `memp serve`.

An agent is a name on API keys. Its activity is read from what the door records with that
name, never from what a request or a file claims: retrievals (``Retrieval.agent``), reported
runs (``Trajectory.reporting_agent``), feedback (``Feedback.actor`` ``agent:<name>``) and
proposals (revisions of origin ``proposal`` authored ``agent:<name>``). The success rate is
over effective outcomes (:mod:`memp_core.outcomes`): the recorded one, else a reviewed
judgement, else an unreviewed one where the setting allows; a run reported with
``success: null`` and settled by none of these is unknown, counted apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from memp_core.agents.keys import KeyInfo, list_keys
from memp_core.models import (
    Feedback,
    Origin,
    Procedure,
    ProcedureRevision,
    Retrieval,
    Status,
    Trajectory,
    aware,
)
from memp_core.outcomes import Settled, Tally, settled_by_judgements
from memp_core.store import Store

AGENT_AUTHOR = "agent:"  # how the door writes an agent as an author or actor


@dataclass
class AgentActivity:
    """One agent: its keys and counts of what it did, with when it was last seen."""

    agent: str
    keys: list[KeyInfo] = field(default_factory=list)
    retrievals: int = 0
    successes: int = 0
    failures: int = 0
    unknown: int = 0
    feedback: int = 0
    proposals: int = 0
    last_seen: datetime | None = None
    settled: Settled = Settled()  # outcomes among successes/failures that came from judgements

    @property
    def outcomes(self) -> Tally:
        """Its reported runs by outcome (the one place the rate over their outcomes lives)."""
        return Tally(self.successes, self.failures, self.unknown)

    @property
    def runs(self) -> int:
        return self.outcomes.runs

    @property
    def judged(self) -> int:
        return self.outcomes.judged

    @property
    def success_rate(self) -> float | None:
        """Successes over runs with an outcome; None when none has one."""
        return self.outcomes.rate

    @property
    def active_keys(self) -> int:
        return sum(not k.revoked for k in self.keys)

    def seen(self, when: datetime | None) -> None:
        if when is not None:
            when = aware(when)
            if self.last_seen is None or when > self.last_seen:
                self.last_seen = when


@dataclass(frozen=True)
class FeedbackGiven:
    """One rating an agent gave (the page shows its reason as text)."""

    id: int
    procedure_id: int
    revision_id: int
    rating: str
    reason: str
    trajectory_id: int | None
    created_at: datetime
    actor: str  # agent:<name> or human:<name>


def agent_activity(store: Store, *, count_unreviewed: bool = False) -> list[AgentActivity]:
    """Every agent that has a key or left a trace, most recently seen first.

    Reported runs are counted by recorded outcome in SQL, then the unknown ones that
    judgements settle move to their outcome (``count_unreviewed``: the setting)."""
    agents: dict[str, AgentActivity] = {}

    def of(name: str) -> AgentActivity:
        return agents.setdefault(name, AgentActivity(name))

    for key in list_keys(store):
        a = of(key.agent)
        a.keys.append(key)
        a.seen(key.last_used_at)
    with store.session() as s:
        rows: Any = s.exec(
            select(Retrieval.agent, func.count(), func.max(Retrieval.created_at))
            .where(Retrieval.agent != "")
            .group_by(Retrieval.agent)
        ).all()
        for name, n, last in rows:
            of(name).retrievals = int(n)
            of(name).seen(last)
        rows = s.exec(
            select(
                Trajectory.reporting_agent,
                Trajectory.success,
                func.count(),
                func.max(Trajectory.created_at),
            )
            .where(Trajectory.reporting_agent != "")
            .group_by(Trajectory.reporting_agent, Trajectory.success)
        ).all()
        for name, success, n, last in rows:
            _count_outcome(of(name), success, int(n))
            of(name).seen(last)
        reported = Trajectory.reporting_agent != ""
        judged = settled_by_judgements(
            s, [Trajectory.reporting_agent], reported, count_unreviewed=count_unreviewed
        )
        for (name,), extra in judged.items():
            a = of(name)
            t = extra.apply(a.outcomes)
            a.successes, a.failures, a.unknown = t.successes, t.failures, t.unknown
            a.settled = extra
        for name, n, last in _by_author(s, Feedback.actor, Feedback.created_at, Feedback):
            of(name).feedback = n
            of(name).seen(last)
        for name, n, last in _by_author(
            s, ProcedureRevision.author, ProcedureRevision.created_at, ProcedureRevision,
            ProcedureRevision.origin == Origin.proposal.value,
        ):  # fmt: skip
            of(name).proposals = n
            of(name).seen(last)
    return sorted(agents.values(), key=_recent_first)


def _count_outcome(a: AgentActivity, success: bool | None, n: int) -> None:
    if success is None:
        a.unknown += n
    elif success:
        a.successes += n
    else:
        a.failures += n


def _by_author(
    s: Any, who: Any, when: Any, model: Any, *where: Any
) -> Iterable[tuple[str, int, datetime | None]]:
    """Counts per agent of rows whose actor/author column reads ``agent:<name>``."""
    rows = s.exec(
        select(who, func.count(), func.max(when))
        .select_from(model)
        .where(col(who).startswith(AGENT_AUTHOR, autoescape=True), *where)
        .group_by(who)
    ).all()
    return [(str(author)[len(AGENT_AUTHOR) :], int(n), last) for author, n, last in rows]


def _recent_first(a: AgentActivity) -> tuple[float, str]:
    return (-(a.last_seen.timestamp() if a.last_seen else float("-inf")), a.agent)


def reported_runs(store: Store, agent: str, *, limit: int = 50) -> list[Trajectory]:
    """The runs ``agent`` reported, newest first."""
    with store.session() as s:
        return list(
            s.exec(
                select(Trajectory)
                .where(Trajectory.reporting_agent == agent)
                .order_by(col(Trajectory.id).desc())
                .limit(limit)
            ).all()
        )


def feedback_given(store: Store, agent: str, *, limit: int = 50) -> list[FeedbackGiven]:
    """The ratings ``agent`` gave, newest first."""
    with store.session() as s:
        rows = s.exec(
            select(Feedback)
            .where(Feedback.actor == f"{AGENT_AUTHOR}{agent}")
            .order_by(col(Feedback.id).desc())
            .limit(limit)
        ).all()
    return [_given(r) for r in rows]


def _given(r: Feedback) -> FeedbackGiven:
    return FeedbackGiven(
        int(r.id or 0), r.procedure_id, r.revision_id, r.rating, r.reason, r.trajectory_id,
        aware(r.created_at), r.actor,
    )  # fmt: skip


def proposed_by(store: Store, procedures: Sequence[Procedure]) -> dict[int, str]:
    """For the review queue: procedure id -> the agent whose proposal waits for review.

    The waiting revision is the proposed one beside an approved procedure, else the current
    one of a procedure still pending; only revisions an agent proposed name an agent.
    """
    waiting = {
        int(p.id or 0): p.proposed_revision_id or p.current_revision_id
        for p in procedures
        if p.proposed_revision_id is not None or p.status != Status.approved.value
    }
    rev_ids = [r for r in waiting.values() if r is not None]
    if not rev_ids:
        return {}
    with store.session() as s:
        authors = dict(
            s.exec(
                select(ProcedureRevision.id, ProcedureRevision.author).where(
                    col(ProcedureRevision.id).in_(rev_ids),
                    ProcedureRevision.origin == Origin.proposal.value,
                )
            ).all()
        )
    return {
        pid: str(authors[rid])[len(AGENT_AUTHOR) :]
        for pid, rid in waiting.items()
        if str(authors.get(rid, "")).startswith(AGENT_AUTHOR)
    }


def feedback_on(store: Store, procedure_id: int, *, limit: int = 20) -> list[FeedbackGiven]:
    """The ratings a procedure's revisions received (agents' and people's), newest first."""
    with store.session() as s:
        rows = s.exec(
            select(Feedback)
            .where(Feedback.procedure_id == procedure_id)
            .order_by(col(Feedback.id).desc())
            .limit(limit)
        ).all()
    return [_given(r) for r in rows]
