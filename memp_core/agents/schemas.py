"""The agents' door's request and response models (pydantic), shared by REST, MCP and OTLP.

Every field has a limit: a client cannot make the service hold or write more than these
allow (the HTTP layer also caps the whole body, see memp_core.service.app). Anything in a
body that names who is calling is ignored: the caller is the key's agent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memp_core.models import Rating

MAX_STEPS = 10_000
MAX_TEXT = 100_000  # one thought, action or observation
MAX_TASK = 10_000
# Ids fit both databases' integer columns (Postgres INTEGER): a larger one is refused (422)
# here instead of failing in the driver.
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
RetrievePolicy = Literal["query", "facts", "random", "hybrid"]
Outcome = Literal["success", "failure", "unknown"]
ReviewAction = Literal["approve", "reject", "rollback", "pin", "deprecate"]


class _In(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """Text the databases can store: no NUL character (Postgres refuses it) and no lone
        UTF-16 surrogate (JSON's ``\\ud800`` decodes to one; UTF-8 cannot encode it)."""
        check_text(value)
        return value


def check_text(value: Any) -> None:
    """Every string in ``value`` (nested dicts and lists too, walked without recursion)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("text must not contain NUL (\\u0000) characters")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text must be valid Unicode (a lone surrogate was sent)") from None
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


class RetrieveRequest(_In):
    task: str = Field(min_length=1, max_length=MAX_TASK, description="The task to solve")
    k: int = Field(default=3, ge=1, le=50, description="How many procedures at most")
    policy: RetrievePolicy = Field(
        default="query",
        description="query (embedding cosine), facts (task type and objects), hybrid, random",
    )
    threshold: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="Leave out procedures scoring below this"
    )


class ProcedureStep(BaseModel):
    """One step of a procedure's worked example."""

    thought: str | None = None
    action: str | None = None
    observation: str | None = None


class RetrievedItem(BaseModel):
    procedure_id: int
    revision_id: int
    title: str
    task_type: str
    script: str
    steps: list[ProcedureStep] = Field(default_factory=list)
    score: float
    success_rate: float | None = Field(description="Successes / uses so far; null if unused")
    uses: int


class RetrieveResponse(BaseModel):
    retrieval_id: int = Field(description="Send it back with the run's report")
    items: list[RetrievedItem]


class StepIn(_In):
    thought: str | None = Field(default=None, max_length=MAX_TEXT)
    action: str = Field(max_length=MAX_TEXT, description="What the agent did")
    observation: str | None = Field(default=None, max_length=MAX_TEXT)
    tool: str | None = Field(default=None, max_length=200, description="Tool called, if any")
    arguments: dict[str, Any] | str | None = Field(default=None, description="Tool arguments")
    ok: bool | None = Field(default=None, description="false: this step failed (tool error)")


class TrajectoryReport(_In):
    task: str = Field(min_length=1, max_length=MAX_TASK)
    steps: list[StepIn] = Field(default_factory=list, max_length=MAX_STEPS)
    success: bool | None = Field(
        default=None, description="Did the whole task succeed? null: not known (never assumed)"
    )
    retrieval_id: Id | None = Field(
        default=None, description="The retrieval this run used: its outcome counts for it"
    )
    agent_model: str | None = Field(default=None, max_length=200)
    tokens: int | None = Field(default=None, ge=0, le=10**12)
    metadata: dict[str, Any] | None = Field(default=None, description="Kept with the run")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A repeat with the same key returns the stored run (or the Idempotency-Key "
        "header)",
    )


class UpdateSummary(BaseModel):
    """What the update policy did with a report (what it wrote waits for review)."""

    policy: str
    built: list[int] = Field(default_factory=list, description="Revision ids written")
    reflected: list[int] = Field(default_factory=list)
    deprecated: list[int] = Field(default_factory=list, description="Procedure ids")
    counted: int = Field(default=0, description="Procedure uses counted from this run")
    note: str = ""


class ReportResult(BaseModel):
    trajectory_id: int
    duplicate: bool = Field(description="true: this idempotency key was reported before")
    outcome: Outcome
    update: UpdateSummary


class FeedbackIn(_In):
    revision_id: Id
    rating: Rating
    reason: str | None = Field(default=None, max_length=5_000)
    trajectory_id: Id | None = None


class FeedbackOut(BaseModel):
    feedback_id: int
    procedure_id: int
    revision_id: int
    rating: Rating
    actor: str


class ProposalIn(_In):
    title: str = Field(min_length=1, max_length=300, description="The task it is for")
    task_type: str | None = Field(default=None, max_length=100)
    script: str = Field(
        min_length=1, max_length=20_000, description="Numbered steps: '1. ...\\n2. ...'"
    )
    source_trajectory_ids: list[Id] = Field(default_factory=list, max_length=100)
    rationale: str = Field(min_length=1, max_length=10_000, description="Why, for the reviewer")


class ProposalOut(BaseModel):
    procedure_id: int
    revision_id: int
    parent_revision_id: int | None
    status: str
    note: str = ""


class ProcedureOut(BaseModel):
    id: int
    key: str
    title: str
    task_type: str
    status: str
    kind: str
    current_revision_id: int | None
    script: str
    steps: list[ProcedureStep] = Field(default_factory=list)
    use_count: int
    success_count: int
    success_rate: float | None
    pinned: bool
    updated_at: datetime
    feedback: dict[str, int] = Field(default_factory=dict, description="Ratings so far")


class RevisionOut(BaseModel):
    """One step of a procedure's lineage."""

    id: int
    procedure_id: int
    parent_revision_id: int | None
    kind: str
    origin: str
    author: str
    model: str
    rationale: str
    evidence_trajectory_ids: list[int]
    created_at: datetime
    current: bool


class ProcedurePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[ProcedureOut]


class ReviewIn(_In):
    """The body of a review action; which fields count depends on the action."""

    comment: str = Field(default="", max_length=10_000, description="approve, rollback")
    reason: str = Field(default="", max_length=10_000, description="reject, deprecate (needed)")
    revision_id: Id | None = Field(
        default=None, description="approve/reject: refuse if this is no longer current"
    )
    to_revision_id: Id | None = Field(default=None, description="rollback: the revision")
    pinned: bool = Field(default=True, description="pin: false unpins")


class ReviewOut(BaseModel):
    action: ReviewAction
    procedure_id: int
    status: str
    current_revision_id: int | None
    pinned: bool
