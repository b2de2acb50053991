"""``AgentDoor``: everything an agent may do, with its key's identity, by scope.

REST, MCP and OTLP all call these methods, so the three doors keep one set of rules:

- ``retrieve`` (``procedures:read``): approved procedures only, logged with the agent.
- ``report`` (``runs:write``): a run stored once per (agent, idempotency key), source
  ``api``; ``success: null`` stays unknown. Its outcome counts as a use of the first
  (top-ranked) revision the named retrieval served, only if that retrieval was this agent's
  and no other report claimed it: counting all ``k`` would charge a failure to procedures the
  agent most likely never followed. Then the update policy (``validation`` by default) runs
  with ``auto_approve=False``: what it writes waits for review. A run with an unknown outcome
  is stored, not counted, and builds nothing.
- ``feedback`` (``runs:write``): a rating of a revision, with the agent's name.
- ``propose`` (``procedures:propose``): a procedure waiting for review (origin ``proposal``,
  author ``agent:<name>``, evidence = the agent's own reported runs). The rule: the proposal's
  title and task type give the group key builds use (:func:`memp_core.build.group_identity`);
  if that group's live procedure is itself waiting for review, the proposal becomes its next
  (pending) revision; otherwise, and above all when the live one is approved, it becomes a
  new pending procedure beside it, so a proposal never takes a served procedure out of
  service nor changes what agents get before a person looks.
- ``review`` (``review:admin``): approve, reject, roll back, pin, deprecate through
  :mod:`memp_core.review`, acting as the person behind the key (never as an agent); no one
  approves content written under their own agent name.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from memp_core import review as gate
from memp_core.agents import reads
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
    StepIn,
    TrajectoryReport,
    UpdateSummary,
)
from memp_core.errors import (
    ConfigError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from memp_core.facts import extract_facts
from memp_core.memory import ProceduralMemory
from memp_core.models import Feedback, Procedure, ProcedureRevision, Retrieval, Step, Trajectory
from memp_core.retrieve import SERVED_TO_AGENTS
from memp_core.update import UPDATE_POLICIES

WRITE_SCOPE = "runs:write"
PROPOSE_SCOPE = "procedures:propose"
DEFAULT_UPDATE_POLICY = "validation"
MAX_METADATA_BYTES = 64 * 1024
SOURCE = "api"


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
        with self.store.transaction() as s:
            row = Retrieval(
                query=req.task, policy=req.policy, k=req.k, agent=who.agent,
                results=[item.summary() for item in found.items],
            )  # fmt: skip
            s.add(row)
            s.flush()
            retrieval_id = int(row.id or 0)
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
        """Store a run once; count it and run the update policy (see the module docstring).

        ``idempotency_key`` (the header) and ``report.idempotency_key`` must agree if both
        are given.
        """
        who.require(WRITE_SCOPE)
        key = _one_key(idempotency_key, report.idempotency_key)
        traj, steps = _trajectory(who, report, key)
        with self.store.transaction() as s:
            stored = _reported(s, who, key)
            if stored is not None:
                return _duplicate(stored, self.update_policy)
            note, claimed = _claim_retrieval(s, who, report.retrieval_id, traj)
            try:
                with s.begin_nested():
                    self.store.add_trajectory(s, traj, steps)
            except IntegrityError:  # the same key reported at the same moment (Postgres)
                stored = _reported(s, who, key)
                if stored is None:
                    raise
                return _duplicate(stored, self.update_policy)
            if claimed is not None:
                claimed.trajectory_id = traj.id
                s.add(claimed)
            traj_id = int(traj.id or 0)
        summary = self._update(who, traj, note)
        return ReportResult(
            trajectory_id=traj_id, duplicate=False, outcome=_outcome(traj.success), update=summary
        )

    def _update(self, who: Identity, traj: Trajectory, note: str) -> UpdateSummary:
        if traj.success is None:
            return UpdateSummary(
                policy=self.update_policy,
                note=_join(note, "outcome unknown: not counted, nothing built until a verdict "
                           "is recorded"),
            )  # fmt: skip
        with self._update_lock:
            done = self.memory.update(
                [int(traj.id or 0)], policy=self.update_policy, auto_approve=False,
                actor=who.actor,
            )  # fmt: skip
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
        store.get(Procedure, procedure_id)  # an unknown id is 404 whatever the body says
        if action == "approve":
            _not_own_work(store, who, procedure_id)
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


def _one_key(header: str | None, field: str | None) -> str | None:
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
            action=_action(st),
            observation=st.observation,
            is_error=st.ok is False,
        )  # fmt: skip
        for i, st in enumerate(report.steps)
    ]
    return traj, steps


def _action(step: StepIn) -> str:
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


def _duplicate(traj: Trajectory, policy: str) -> ReportResult:
    return ReportResult(
        trajectory_id=int(traj.id or 0), duplicate=True, outcome=_outcome(traj.success),
        update=UpdateSummary(policy=policy, note="already reported with this idempotency key: "
                             "nothing written"),
    )  # fmt: skip


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


def _not_own_work(store: Any, who: Identity, procedure_id: int) -> None:
    proc = store.get(Procedure, procedure_id)
    if proc.current_revision_id is not None:
        _not_own_revision(store, who, proc.current_revision_id)


def _not_own_revision(store: Any, who: Identity, revision_id: int) -> None:
    rev = store.get(ProcedureRevision, revision_id)
    if rev.author == f"agent:{who.agent}":
        raise PermissionDeniedError(
            f"revision {revision_id} was written by {rev.author}: a key under that name "
            "cannot approve it; another person reviews it"
        )


def _outcome(success: bool | None) -> str:
    return "unknown" if success is None else ("success" if success else "failure")


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
