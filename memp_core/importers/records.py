"""Typed records the parsers produce before anything touches the database.

Every parser yields a stream of these items; one writer (:mod:`memp_core.importers.writer`)
turns them into ``Trajectory`` / ``Step`` / ``Run`` / ``Procedure`` rows. Keeping the two
apart lets the fuzz tests run parsers without a database and keeps every format's quirks
out of the persistence code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memp_core.errors import ImportFormatError


@dataclass
class StepRecord:
    thought: str | None = None
    action: str | None = None
    observation: str | None = None
    # None: let the writer flag it ("Nothing happens." is an error, a repeated action a loop)
    is_error: bool | None = None
    is_loop: bool | None = None


@dataclass
class RunRecord:
    """A multi-trial log: one run, one group per trial (``group_index`` of its trajectories)."""

    name: str
    agent: str
    environment: str
    fingerprint: str  # content hash of the whole log: the run's identity for dedupe
    source_file: str
    n_groups: int = 0  # known up front (Reflexion folders) or counted by the writer
    config: dict[str, Any] = field(default_factory=dict)
    # Preserved rows (the jsonl format) carry their stored fields; None means "compute".
    metrics: list[dict[str, Any]] | None = None
    preserved: dict[str, Any] | None = None
    where: str | int | None = None  # line of a preserved run (messages)


@dataclass
class TrajectoryRecord:
    task: str
    success: bool | None  # None: the source recorded no verdict (unknown, never assumed)
    steps: list[StepRecord] = field(default_factory=list)
    where: str | int | None = None  # line or JSON path, for messages
    task_type: str = ""
    environment: str = ""
    agent_model: str = ""
    reward: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    reflections: list[str] = field(default_factory=list)
    reference_answer: str | None = None
    run: RunRecord | None = None
    group_index: int | None = None
    # Mixed into the content hash: identical blocks in different trials or runs stay apart.
    hash_salt: str = ""
    # Fields only the jsonl format restores verbatim (``preserved``: take them as they are).
    preserved: bool = False
    content_hash: str | None = None
    source: str | None = None
    source_file: str | None = None
    created_at: datetime | None = None
    token_count: int = 0
    step_count: int | None = None
    procedure_ref: tuple[str, int] | None = None  # (procedure key, revision ordinal)
    run_key: str | None = None
    file: str | None = None  # the file read (messages), when the parser knows it


@dataclass
class RevisionRecord:
    ordinal: int  # 1-based position in the procedure's lineage (stable across databases)
    parent: int | None
    fields: dict[str, Any]  # ProcedureRevision columns except ids and lineage
    evidence: list[str] = field(default_factory=list)  # trajectory content hashes
    embedding: bytes | None = None


@dataclass
class AuditRecord:
    actor: str
    action: str
    object_type: str
    revision: int | None  # ordinal of the revision it is about; None: the procedure itself
    detail: dict[str, Any]
    created_at: datetime | None


@dataclass
class ProcedureRecord:
    key: str
    fields: dict[str, Any]  # Procedure columns except ids
    current: int | None  # ordinal of the current revision
    revisions: list[RevisionRecord] = field(default_factory=list)
    proposed: int | None = None  # ordinal of the revision waiting for review, if any
    merged_into: str | None = None  # key of the procedure a reviewed merge folded this into
    audit: list[AuditRecord] = field(default_factory=list)
    where: str | int | None = None
    file: str | None = None  # the file read (messages)


@dataclass
class ImportWarning:
    """Something the user should know that does not stop the import."""

    path: str
    where: str | int | None
    message: str

    def __str__(self) -> str:
        loc = f"{self.path}:{self.where}" if self.where not in (None, "") else self.path
        return f"{loc}: {self.message}"


@dataclass
class FormatChosen:
    """``auto`` detected the format of ``path``; the items after it are in that format."""

    path: str
    format: str


@dataclass
class BadRecord:
    """A record the parser could not read; fatal unless --skip-bad."""

    error: ImportFormatError


Item = TrajectoryRecord | RunRecord | ProcedureRecord | ImportWarning | BadRecord | FormatChosen
