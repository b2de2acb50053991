"""The closed vocabularies of Memp Studio's tables, as plain StrEnums.

They live apart from :mod:`memp_core.models` so that the command line can name them in its
option types (``memp procedures --status``) without importing SQLModel for `memp --help`.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    draft = "draft"
    pending_review = "pending_review"
    approved = "approved"
    rejected = "rejected"
    deprecated = "deprecated"
    # Folded into another procedure by a reviewed merge (``Procedure.merged_into_id``); kept,
    # never served; rolling the kept procedure back past the merge unmerges it.
    merged = "merged"


class Kind(StrEnum):
    """What a revision holds (the paper's three build policies)."""

    trajectory = "trajectory"
    script = "script"
    proceduralization = "proceduralization"


class Origin(StrEnum):
    build = "build"
    reflection = "reflection"
    human_edit = "human_edit"
    merge = "merge"
    rollback = "rollback"
    import_ = "import"
    proposal = "proposal"  # written by an agent (API key), always waiting for review


class Rating(StrEnum):
    """An agent's or a person's word on a revision it was served."""

    helpful = "helpful"
    not_helpful = "not_helpful"
    harmful = "harmful"


class Verdict(StrEnum):
    """A run's outcome as a judge or a person reads it (``Trajectory.success`` holds what the
    agent recorded: True, False or None for unknown)."""

    success = "success"
    failure = "failure"
    unknown = "unknown"


class JudgementReview(StrEnum):
    """A person's word on a judgement."""

    confirmed = "confirmed"
    overridden = "overridden"
