"""``AgentDoor``: everything an agent may do, with its key's identity, by scope.

REST, MCP and OTLP all call these methods, so the three doors keep one set of rules:

- ``retrieve`` (``procedures:read``): approved procedures only, logged with the agent.
- ``report`` (``runs:write``): a run stored once per (agent, idempotency key), source
  ``api``; ``success: null`` stays unknown (stored, not counted, builds nothing). Its outcome
  counts as a use of the first revision its retrieval served; then the update policy
  (``validation`` by default) runs with ``auto_approve=False``: what it writes waits for
  review; on an approved procedure it becomes that procedure's *proposal* beside the served
  revision (see :func:`memp_core.landing.land_revision`), never an outage.
- ``feedback`` (``runs:write``): a rating of a revision, with the agent's name.
- ``propose`` (``procedures:propose``): a revision waiting for review (origin ``proposal``,
  author ``agent:<name>``, evidence = the agent's own reported runs). The proposal's title and
  task type give the group key builds use (:func:`memp_core.build.group_identity`): into that
  group's live procedure (as its next pending revision, or as the proposal beside an approved
  one), else as a new pending procedure. Agents never change what agents get before a person
  looks.
- ``review`` (``review:admin``): approve, reject, roll back, pin, deprecate through
  :mod:`memp_core.review`, acting as the person behind the key (never as an agent); no one
  approves content written under their own agent name.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlmodel import Session, col, select

from memp_core import review as gate
from memp_core.agents import reads, reports
from memp_core.agents.keys import REVIEW_SCOPE, Identity, verify
from memp_core.agents.proposals import write_proposal
from memp_core.agents.schemas import (
    FeedbackIn,
    FeedbackOut,
    ProcedureOut,
    ProcedurePage,
    ProposalIn,
    ProposalOut,
    ReportResult,
    RetrieveRequest,
    RetrieveResponse,
    ReviewAction,
    ReviewIn,
    ReviewOut,
    RevisionOut,
    TrajectoryReport,
    UpdateSummary,
)
from memp_core.errors import ConfigError, NotFoundError, PermissionDeniedError
from memp_core.memory import ProceduralMemory
from memp_core.models import Feedback, Procedure, ProcedureRevision, Trajectory
from memp_core.retrieve import SERVED_TO_AGENTS, log_retrieval
from memp_core.update import UPDATE_POLICIES

WRITE_SCOPE = "runs:write"
PROPOSE_SCOPE = "procedures:propose"
DEFAULT_UPDATE_POLICY = "validation"


class AgentDoor:
    """The agents' operations over one :class:`ProceduralMemory` (one per process)."""

    def __init__(self, memory: ProceduralMemory, *, update_policy: str = DEFAULT_UPDATE_POLICY):
        if update_policy not in UPDATE_POLICIES:
            raise ConfigError(
                f"unknown update policy {update_policy!r}; valid: {', '.join(UPDATE_POLICIES)}"
            )
        self.memory = memory
        self.store = memory.store
        self.update_policy = update_policy
        # Updates of this process run one at a time: concurrent reports of one task type
        # would otherwise plan merges into the same procedure and refuse each other.
        self._update_lock = threading.Lock()

    def verify(self, raw_key: str | None) -> Identity:
        return verify(self.store, raw_key)

    # -- reading --------------------------------------------------------------------------

    def retrieve(self, who: Identity, req: RetrieveRequest) -> RetrieveResponse:
        who.require(reads.READ_SCOPE)
        found = self.memory.retrieve(
            req.task, policy=req.policy, k=req.k, threshold=req.threshold,
            statuses=SERVED_TO_AGENTS, log=False,
        )  # fmt: skip
        retrieval_id = log_retrieval(
            self.store, query=req.task, policy=req.policy, k=req.k, items=found.items,
            run_id=None, agent_model="", agent=who.agent,
        )  # fmt: skip
        return RetrieveResponse(
            retrieval_id=retrieval_id, items=[reads.retrieved_item(i) for i in found.items]
        )

    def list_procedures(
        self,
        who: Identity,
        *,
        status: str | None = None,
        task_type: str | None = None,
        text: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> ProcedurePage:
        return reads.page(self.store, who, status=status, task_type=task_type, text=text,
                          offset=offset, limit=limit)  # fmt: skip

    def get_procedure(self, who: Identity, procedure_id: int) -> ProcedureOut:
        return reads.one(self.store, who, procedure_id)

    def revisions(self, who: Identity, procedure_id: int) -> list[RevisionOut]:
        return reads.lineage(self.store, who, procedure_id)

    # -- reporting ------------------------------------------------------------------------

    def report(
        self, who: Identity, report: TrajectoryReport, *, idempotency_key: str | None = None
    ) -> ReportResult:
        """Store a run once; count it and learn from it (see :mod:`memp_core.agents.reports`).

        ``idempotency_key`` (the header) and ``report.idempotency_key`` must agree if both
        are given.
        """
        who.require(WRITE_SCOPE)
        stored = reports.store_report(self.store, who, report, header_key=idempotency_key)
        traj = stored.trajectory
        if stored.duplicate:
            summary = UpdateSummary(
                policy=self.update_policy,
                note="already reported with this idempotency key: nothing written",
            )
        else:
            summary = self._update(who, traj, stored.note)
        return ReportResult(
            trajectory_id=int(traj.id or 0), duplicate=stored.duplicate,
            outcome=reports.outcome(traj.success), update=summary,
        )  # fmt: skip

    def _update(self, who: Identity, traj: Trajectory, note: str) -> UpdateSummary:
        policy = self.update_policy
        if traj.success is None:
            unknown = "outcome unknown: not counted, nothing built until a verdict is recorded"
            return UpdateSummary(policy=policy, note=_join(note, unknown))
        with self._update_lock:
            done = self.memory.update(
                [int(traj.id or 0)], policy=policy, auto_approve=False, actor=who.actor
            )
        written = done.built or done.reflected
        return UpdateSummary(
            policy=done.policy, built=done.built, reflected=done.reflected,
            deprecated=done.deprecated, counted=done.counted,
            note=_join(note, "what was written waits for review" if written else ""),
        )  # fmt: skip

    def feedback(self, who: Identity, fb: FeedbackIn) -> FeedbackOut:
        who.require(WRITE_SCOPE)
        with self.store.transaction() as s:
            rev = s.get(ProcedureRevision, fb.revision_id)
            if rev is None:
                raise NotFoundError(f"revision {fb.revision_id} not found")
            if fb.trajectory_id is not None:
                _own_trajectories(s, who, [fb.trajectory_id])
            row = Feedback(
                procedure_id=rev.procedure_id, revision_id=fb.revision_id, rating=fb.rating.value,
                reason=fb.reason or "", trajectory_id=fb.trajectory_id, actor=who.author,
            )  # fmt: skip
            s.add(row)
            s.flush()
            return FeedbackOut(
                feedback_id=int(row.id or 0), procedure_id=rev.procedure_id,
                revision_id=fb.revision_id, rating=fb.rating, actor=who.author,
            )  # fmt: skip

    def propose(self, who: Identity, proposal: ProposalIn) -> ProposalOut:
        who.require(PROPOSE_SCOPE)
        with self.store.session() as s:
            evidence = _own_trajectories(s, who, proposal.source_trajectory_ids)
        return write_proposal(self.store, self.memory.embedder, who, proposal, evidence)

    # -- review (a person's tooling) ------------------------------------------------------

    def review(
        self, who: Identity, action: ReviewAction, procedure_id: int, body: ReviewIn
    ) -> ReviewOut:
        who.require(REVIEW_SCOPE)
        actor = who.review_actor
        store = self.store
        reads.known_id(procedure_id)
        store.get(Procedure, procedure_id)  # an unknown id is 404 whatever the body says
        if action == "approve":
            _not_own_work(store, who, procedure_id, body.revision_id)
            gate.approve(store, procedure_id, actor=actor, comment=body.comment,
                         revision_id=body.revision_id)  # fmt: skip
        elif action == "reject":
            gate.reject(store, procedure_id, actor=actor, reason=body.reason or body.comment,
                        revision_id=body.revision_id)  # fmt: skip
        elif action == "rollback":
            if body.to_revision_id is None:
                raise gate.ReviewError("rollback needs to_revision_id (the revision to restore)")
            _not_own_revision(store, who, body.to_revision_id)
            gate.rollback(store, procedure_id, actor=actor, to_revision_id=body.to_revision_id,
                          comment=body.comment)  # fmt: skip
        elif action == "pin":
            gate.set_pinned(store, procedure_id, actor=actor, pinned=body.pinned)
        else:
            gate.deprecate(store, procedure_id, actor=actor, reason=body.reason or body.comment)
        proc = store.get(Procedure, procedure_id)
        return ReviewOut(
            action=action, procedure_id=procedure_id, status=proc.status,
            current_revision_id=proc.current_revision_id, pinned=proc.pinned,
        )  # fmt: skip


# -- helpers ------------------------------------------------------------------------------


def _own_trajectories(s: Session, who: Identity, ids: list[int]) -> list[int]:
    """``ids`` if each is a run this agent reported; NotFoundError naming the others."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = set(
        s.exec(
            select(Trajectory.id)
            .where(col(Trajectory.id).in_(wanted))
            .where(Trajectory.reporting_agent == who.agent)
        ).all()
    )
    missing = [i for i in wanted if i not in found]
    if missing:
        shown = ", ".join(map(str, missing[:10]))
        raise NotFoundError(f"trajectories not found among {who.agent}'s reported runs: {shown}")
    return wanted


def _not_own_work(
    store: Any, who: Identity, procedure_id: int, revision_id: int | None = None
) -> None:
    """A key named after an agent approves neither the agent's current revision nor its
    proposal (the revision the approval names, or the one waiting beside the served one)."""
    proc = store.get(Procedure, procedure_id)
    for rid in {proc.current_revision_id, proc.proposed_revision_id, revision_id} - {None}:
        _not_own_revision(store, who, int(rid))  # type: ignore[arg-type]


def _not_own_revision(store: Any, who: Identity, revision_id: int) -> None:
    rev = store.get(ProcedureRevision, revision_id)
    if rev.author == f"agent:{who.agent}":
        raise PermissionDeniedError(
            f"revision {revision_id} was written by {rev.author}: a key under that name "
            "cannot approve it; another person reviews it"
        )


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
