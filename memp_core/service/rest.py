"""The REST door under ``/v1``: thin routes over :class:`~memp_core.agents.operations.AgentDoor`.

Each route names the scope it needs as a dependency, so a request is refused (401/403)
before its body is read; the door checks the same scope again, for the other doors' sake.
Handlers are plain functions: FastAPI runs them in its thread pool (the store is
synchronous).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response

from memp_core.agents import reads
from memp_core.agents.keys import REVIEW_SCOPE, Identity
from memp_core.agents.operations import PROPOSE_SCOPE, WRITE_SCOPE, AgentDoor
from memp_core.agents.schemas import (
    MAX_ID,
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
)
from memp_core.service.auth import door, identity, requires

router = APIRouter(prefix="/v1")
Door = Annotated[AgentDoor, Depends(door)]
ProcedureId = Annotated[int, Path(ge=1, le=MAX_ID)]
NO_NUL = r"^[^\x00]*$"  # Postgres stores no NUL character


def reader(who: Annotated[Identity, Depends(identity)]) -> Identity:
    """``procedures:read``, or ``review:admin`` (a reviewer reads what it judges)."""
    reads.require_reader(who)
    return who


Reader = Annotated[Identity, Depends(reader)]
Writer = Annotated[Identity, Depends(requires(WRITE_SCOPE))]
Proposer = Annotated[Identity, Depends(requires(PROPOSE_SCOPE))]
Reviewer = Annotated[Identity, Depends(requires(REVIEW_SCOPE))]


@router.post("/retrieve", tags=["procedures"])
def retrieve(who: Annotated[Identity, Depends(requires(reads.READ_SCOPE))], d: Door,
             req: RetrieveRequest) -> RetrieveResponse:  # fmt: skip
    """Approved procedures for a task, best first. Keep ``retrieval_id`` for the run's report:
    the run's outcome then counts for the first procedure served."""
    return d.retrieve(who, req)


@router.get("/procedures", tags=["procedures"])
def list_procedures(
    who: Reader,
    d: Door,
    status: Annotated[str | None, Query(max_length=40, pattern=NO_NUL)] = None,
    task_type: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    text: Annotated[
        str | None, Query(max_length=300, pattern=NO_NUL, description="In the title")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ProcedurePage:
    """Approved procedures (every status with ``review:admin``), most recently changed first."""
    return d.list_procedures(who, status=status, task_type=task_type, text=text,
                             offset=offset, limit=limit)  # fmt: skip


@router.get("/procedures/{procedure_id}", tags=["procedures"])
def get_procedure(who: Reader, d: Door, procedure_id: ProcedureId) -> ProcedureOut:
    """One procedure with its current script, success stats and feedback counts."""
    return d.get_procedure(who, procedure_id)


@router.get("/procedures/{procedure_id}/revisions", tags=["procedures"])
def revisions(who: Reader, d: Door, procedure_id: ProcedureId) -> list[RevisionOut]:
    """The procedure's lineage, oldest first: origin, author, rationale, evidence runs."""
    return d.revisions(who, procedure_id)


@router.post("/trajectories", tags=["runs"], status_code=201)
def report(
    who: Writer,
    d: Door,
    body: TrajectoryReport,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> ReportResult:
    """Report a finished run (201). A repeat with the same idempotency key (header or field)
    returns the stored run with 200 and writes nothing."""
    result = d.report(who, body, idempotency_key=idempotency_key)
    if result.duplicate:
        response.status_code = 200
    return result


@router.post("/feedback", tags=["runs"], status_code=201)
def feedback(who: Writer, d: Door, body: FeedbackIn) -> FeedbackOut:
    """Rate a revision you were served: helpful, not_helpful or harmful (with a reason)."""
    return d.feedback(who, body)


@router.post("/procedures/propose", tags=["procedures"], status_code=201)
def propose(who: Proposer, d: Door, body: ProposalIn) -> ProposalOut:
    """Propose a procedure; it waits for a person's review and is not served until approved."""
    return d.propose(who, body)


@router.post("/procedures/{procedure_id}/{action}", tags=["review"])
def review_action(
    who: Reviewer,
    d: Door,
    procedure_id: ProcedureId,
    action: ReviewAction,
    body: Annotated[ReviewIn | None, Body()] = None,
) -> ReviewOut:
    """approve, reject, rollback, pin, deprecate: ``review:admin`` keys only (a person's
    tooling), audited like the dashboard's actions."""
    return d.review(who, action, procedure_id, body or ReviewIn())
