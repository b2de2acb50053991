"""An agent's run report: stored once, linked to the retrieval it used, then learned from.

Storing: one write transaction per report. A repeat of an (agent, idempotency key) pair
returns the stored run and writes nothing (checked in the transaction; on Postgres two
simultaneous repeats meet the unique constraint and the loser reads the winner's row).

Counting: the run counts as a use of the first (top-ranked) revision its retrieval served,
only if that retrieval was this agent's and no other report claimed it: counting all ``k``
would charge a failure to procedures the agent most likely never followed.

Learning: the configured update policy runs on every report with a recorded outcome, and
what it writes waits for review. On an approved procedure that is a *proposal* beside the
served revision (:func:`memp_core.landing.land_revision`): an agent's report never takes
what other agents are served out of service, and reflection improves approved procedures
too, for a person to accept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from memp_core.agents.keys import Identity
from memp_core.agents.schemas import StepIn, TrajectoryReport
from memp_core.errors import ConfigError, NotFoundError, PayloadTooLargeError
from memp_core.facts import extract_facts
from memp_core.models import Retrieval, Step, Trajectory
from memp_core.store import Store

MAX_METADATA_BYTES = 64 * 1024
SOURCE = "api"


@dataclass(frozen=True)
class Stored:
    trajectory: Trajectory
    duplicate: bool
    note: str = ""


def store_report(
    store: Store, who: Identity, report: TrajectoryReport, *, header_key: str | None
) -> Stored:
    key = one_key(header_key, report.idempotency_key)
    traj, steps = _trajectory(who, report, key)
    with store.transaction() as s:
        stored = _reported(s, who, key)
        if stored is not None:
            return Stored(stored, duplicate=True)
        note, claimed = _claim_retrieval(s, who, report.retrieval_id, traj)
        try:
            with s.begin_nested():
                store.add_trajectory(s, traj, steps)
        except IntegrityError:  # the same key reported at the same moment (Postgres)
            stored = _reported(s, who, key)
            if stored is None:
                raise
            return Stored(stored, duplicate=True)
        if claimed is not None:
            claimed.trajectory_id = traj.id
            s.add(claimed)
    return Stored(traj, duplicate=False, note=note)


def one_key(header: str | None, field: str | None) -> str | None:
    """The idempotency key from the header or the body; they must agree if both are given."""
    if header is not None and not (1 <= len(header) <= 200):
        raise ConfigError("the Idempotency-Key header must be 1 to 200 characters")
    if header is not None and field is not None and header != field:
        raise ConfigError(
            "idempotency_key: the Idempotency-Key header and the body's idempotency_key differ"
        )
    return header if header is not None else field


def _trajectory(
    who: Identity, report: TrajectoryReport, key: str | None
) -> tuple[Trajectory, list[Step]]:
    facts: dict[str, Any] = extract_facts(report.task).as_dict()
    if report.metadata:
        size = len(json.dumps(report.metadata, default=str))
        if size > MAX_METADATA_BYTES:
            raise PayloadTooLargeError(
                f"metadata is {size} bytes; at most {MAX_METADATA_BYTES} are kept with a run"
            )
        facts["metadata"] = report.metadata  # kept beside the task's facts, never read as one
    traj = Trajectory(
        task=report.task, task_type=facts.get("task_type", ""), source=SOURCE,
        agent_model=report.agent_model or "", success=report.success,
        step_count=len(report.steps), token_count=report.tokens or 0, facts=facts,
        reporting_agent=who.agent, idempotency_key=key,
    )  # fmt: skip
    steps = [
        Step(
            trajectory_id=0,
            index=i,
            thought=st.thought,
            action=action_text(st),
            observation=st.observation,
            is_error=st.ok is False,
        )  # fmt: skip
        for i, st in enumerate(report.steps)
    ]
    return traj, steps


def action_text(step: StepIn) -> str:
    """The action as text; a bare tool call reads ``tool {"arg": ...}``."""
    if step.action.strip() or not step.tool:
        return step.action
    if step.arguments is None:
        return step.tool
    args = step.arguments if isinstance(step.arguments, str) else json.dumps(step.arguments)
    return f"{step.tool} {args}"


def _reported(s: Session, who: Identity, key: str | None) -> Trajectory | None:
    if key is None:
        return None
    return s.exec(
        select(Trajectory)
        .where(Trajectory.reporting_agent == who.agent)
        .where(Trajectory.idempotency_key == key)
    ).first()


def _claim_retrieval(
    s: Session, who: Identity, retrieval_id: int | None, traj: Trajectory
) -> tuple[str, Retrieval | None]:
    """Point the run at the top revision its retrieval served; the retrieval to link to
    the run (inside the write transaction, row locked: two reports never both claim one)."""
    if retrieval_id is None:
        return "", None
    row = s.get(Retrieval, retrieval_id, with_for_update=True, populate_existing=True)
    if row is None or row.agent != who.agent:
        raise NotFoundError(f"retrieval {retrieval_id} not found among {who.agent}'s retrievals")
    if row.trajectory_id is not None:
        note = (f"retrieval {retrieval_id} was already reported with trajectory "
                f"{row.trajectory_id}: this run is not counted again")  # fmt: skip
        return note, None
    served = [r.get("revision_id") for r in row.results if isinstance(r, dict)]
    traj.procedure_revision_id = next((int(r) for r in served if r is not None), None)
    return "", row


def outcome(success: bool | None) -> str:
    return "unknown" if success is None else ("success" if success else "failure")
