"""Staging: every record parsed, checked and turned into rows before the write lock is taken.

An import used to write while it parsed and so held SQLite's write lock for its whole run
(55 s for a 43 MB log; a reviewer's approve failed with "database is locked"). Now the
parsers' records are checked (:mod:`memp_core.importers.checks`), hashed and turned into
row values here, outside any transaction, and spooled in batches to an anonymous temporary
file, so memory stays bounded by one batch however large the log. Unusable embeddings are
recomputed here too. :class:`memp_core.importers.writer.Writer` then replays the spool in
one short transaction: the import still lands whole or not at all.

The spool holds pickles this process wrote a moment ago to a file nobody else can open
(``tempfile.TemporaryFile``: private and already unlinked), never data from outside.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from memp_core.embeddings import Embedder, to_bytes
from memp_core.errors import ConfigError, ImportFormatError
from memp_core.importers.checks import check_procedure, check_run, check_trajectory
from memp_core.importers.keys import canonical, sha256
from memp_core.importers.records import (
    BadRecord,
    FormatChosen,
    ImportWarning,
    Item,
    ProcedureRecord,
    RunRecord,
    StepRecord,
    TrajectoryRecord,
)
from memp_core.importers.report import ImportReport
from memp_core.models import utcnow

BATCH = 500
ERROR_OBSERVATIONS = ("nothing happens.",)
ERROR_PREFIXES = ("invalid action",)
T = TypeVar("T")


def flag_steps(steps: list[StepRecord]) -> list[tuple[bool, bool]]:
    """(is_error, is_loop) per step; flags a parser already set are kept."""
    flags: list[tuple[bool, bool]] = []
    previous: str | None = None
    for st in steps:
        obs = (st.observation or "").strip().lower()
        err = obs in ERROR_OBSERVATIONS or obs.startswith(ERROR_PREFIXES)
        loop = st.action is not None and st.action == previous
        flags.append(
            (
                err if st.is_error is None else st.is_error,
                loop if st.is_loop is None else st.is_loop,
            )
        )
        if st.action is not None:
            previous = st.action
    return flags


def content_hash(rec: TrajectoryRecord, occurrence: int = 1) -> str:
    """The identity of a trajectory: what happened, not which file or format it came in.

    ``occurrence``: the n-th time this same content appears in one file. A log that holds
    an episode twice (an agent asked the same question twice and did the same thing) holds
    two episodes; the first keeps the plain hash, so re-importing still finds every one.
    """
    digest = sha256(
        canonical(
            {
                "task": rec.task,
                "success": rec.success,
                "environment": rec.environment,
                "steps": [[s.thought, s.action, s.observation] for s in rec.steps],
                "reflections": rec.reflections,
                "reference_answer": rec.reference_answer,
                "salt": rec.hash_salt,
            }
        )
    )
    return digest if occurrence == 1 else sha256(f"{digest}:occurrence:{occurrence}")


class Spool(Generic[T]):
    """Items pickled in batches to an anonymous temporary file; read back in order."""

    def __init__(self) -> None:
        self._fh = tempfile.TemporaryFile(prefix="memp-import-")
        self._buffer: list[T] = []
        self._batches = 0
        self.count = 0

    def add(self, item: T) -> None:
        self._buffer.append(item)
        self.count += 1
        if len(self._buffer) >= BATCH:
            self._dump()

    def _dump(self) -> None:
        if self._buffer:
            pickle.dump(self._buffer, self._fh, protocol=pickle.HIGHEST_PROTOCOL)
            self._batches += 1
            self._buffer = []

    def batches(self) -> Iterator[list[T]]:
        self._dump()
        self._fh.seek(0)
        for _ in range(self._batches):
            yield pickle.load(self._fh)  # noqa: S301 - our own private spool (module doc)

    def close(self) -> None:
        self._fh.close()


# The Step columns a staged step holds, in order (trajectory_id is prepended when written).
STEP_COLUMNS = ("index", "thought", "action", "observation", "is_error", "is_loop")
StepRow = tuple[int, str | None, str | None, str | None, bool, bool]


@dataclass
class StagedTrajectory:
    row: dict[str, Any]  # Trajectory column values, run_id still to resolve
    steps: list[StepRow]  # values of STEP_COLUMNS
    run: str | None  # fingerprint of a run in this import
    run_key: str | None  # export key of a run that may already be stored
    procedure_ref: tuple[str, int] | None
    loc: str  # file:line, for messages


@dataclass
class Group:
    tasks: int = 0
    successes: int = 0
    unknown: int = 0  # no recorded outcome: outside the success rate's denominator
    steps: int = 0
    with_steps: int = 0
    tokens: int = 0


@dataclass
class Staged:
    """Everything one import will write, in the order the writer needs it."""

    runs: list[tuple[RunRecord, str]] = field(default_factory=list)  # (record, format)
    groups: dict[str, dict[int, Group]] = field(default_factory=dict)  # per run fingerprint
    trajectories: Spool[StagedTrajectory] = field(default_factory=Spool)
    procedures: Spool[tuple[ProcedureRecord, str]] = field(default_factory=Spool)

    def close(self) -> None:
        self.trajectories.close()
        self.procedures.close()


class Stager:
    """Turns the parsers' items into a :class:`Staged` import; touches no database."""

    def __init__(
        self,
        report: ImportReport,
        *,
        source: str | None,
        skip_bad: bool,
        dim: int,
        embedder: Callable[[], Embedder],
        on_format: Callable[[str, str], None] | None = None,
    ) -> None:
        self.report = report
        self.source = source
        self.skip_bad = skip_bad
        self.dim = dim
        self._embedder = embedder
        self.on_format = on_format
        self.staged = Staged()
        self._seen: set[str] = set()
        # (file, plain content hash) -> how many times that content appeared in that file
        self._occurrences: dict[tuple[str, str], int] = {}
        self._run_fingerprints: set[str] = set()

    def stage(self, items: Iterator[Item], fmt: str, path: Path) -> None:
        current = fmt
        for item in items:
            if isinstance(item, FormatChosen):
                current = item.format
                self.report.formats[item.path] = item.format
                if self.on_format is not None:
                    self.on_format(item.path, item.format)
            elif isinstance(item, ImportWarning):
                self.report.warnings.append(str(item))
            elif isinstance(item, BadRecord):
                self.bad(item.error)
            else:
                try:
                    self._record(item, current, path)
                except ImportFormatError as exc:
                    self.bad(exc)

    def bad(self, error: ImportFormatError) -> None:
        if not self.skip_bad:
            raise error
        self.report.bad.append(str(error))

    def _record(self, item: Item, fmt: str, path: Path) -> None:
        if isinstance(item, TrajectoryRecord):
            self._trajectory(item, fmt, path)
        elif isinstance(item, RunRecord):
            check_run(item, item.source_file or str(path))
            if item.fingerprint not in self._run_fingerprints:
                self._run_fingerprints.add(item.fingerprint)
                self.staged.runs.append((item, fmt))
        elif isinstance(item, ProcedureRecord):
            self._procedure(item, item.file or str(path))

    def _trajectory(self, rec: TrajectoryRecord, fmt: str, path: Path) -> None:
        file = rec.file or (rec.source_file if not rec.preserved and rec.source_file else None)
        file = file or str(path)
        check_trajectory(rec, file)
        digest = rec.content_hash or self._occurrence_hash(rec, file)
        if rec.run is not None and rec.group_index is not None:
            groups = self.staged.groups.setdefault(rec.run.fingerprint, {})
            g = groups.setdefault(rec.group_index, Group())
            g.tasks += 1
            g.successes += rec.success is True
            g.unknown += rec.success is None
            g.steps += len(rec.steps)
            g.with_steps += int(bool(rec.steps))
            g.tokens += rec.token_count
        if digest in self._seen:
            self.report.duplicates_skipped += 1
            return
        self._seen.add(digest)
        self.staged.trajectories.add(
            StagedTrajectory(
                row=self._row(rec, digest, fmt, path),
                steps=[
                    (i, st.thought, st.action, st.observation, err, loop)
                    for i, (st, (err, loop)) in enumerate(
                        zip(rec.steps, flag_steps(rec.steps), strict=True)
                    )
                ],
                run=rec.run.fingerprint if rec.run is not None else None,
                run_key=rec.run_key,
                procedure_ref=rec.procedure_ref,
                loc=f"{file}:{rec.where}" if rec.where not in (None, "") else file,
            )
        )

    def _occurrence_hash(self, rec: TrajectoryRecord, file: str) -> str:
        """The content hash with its occurrence number in ``file``: two places of one file
        are two episodes, the same content in two files (or imported twice) is one."""
        plain = content_hash(rec)
        n = self._occurrences.get((file, plain), 0) + 1
        self._occurrences[(file, plain)] = n
        return content_hash(rec, n) if n > 1 else plain

    def _row(self, rec: TrajectoryRecord, digest: str, fmt: str, path: Path) -> dict[str, Any]:
        return {
            "task": rec.task,
            "task_type": rec.task_type,
            "environment": rec.environment,
            "source": rec.source or self.source or f"import:{fmt}",
            "source_file": rec.source_file if rec.preserved or rec.source_file else str(path),
            "agent_model": rec.agent_model,
            "success": rec.success,
            "reward": rec.reward,
            "step_count": rec.step_count if rec.step_count is not None else len(rec.steps),
            "token_count": rec.token_count,
            "group_index": rec.group_index,
            "facts": rec.facts,
            "reflections": rec.reflections,
            "reference_answer": rec.reference_answer,
            "procedure_revision_id": None,
            "content_hash": digest,
            "created_at": rec.created_at or utcnow(),
        }

    def _procedure(self, rec: ProcedureRecord, file: str) -> None:
        dropped = check_procedure(rec, file, self.dim)
        if dropped:
            self._reembed(rec, dropped, f"{file}:{rec.where}" if rec.where else file)
        self.staged.procedures.add((rec, file))

    def _reembed(self, rec: ProcedureRecord, dropped: list[tuple[int, str]], loc: str) -> None:
        """Recompute the dropped embeddings from the revisions' own text (as a build would)."""
        from memp_core.build import retrieval_text  # the engine, only when needed

        todo = {ordinal for ordinal, _ in dropped}
        revisions = [r for r in rec.revisions if r.ordinal in todo]
        try:
            embedder = self._embedder()
        except ConfigError as exc:  # no model here: keep the revision, unsearchable by text
            for _, reason in dropped:
                self.report.warnings.append(
                    f"{loc}: procedure {rec.key}: {reason}; dropped, and it could not be "
                    f"re-embedded ({exc}): it is found by facts only until rebuilt"
                )
            return
        texts = [
            retrieval_text(
                str(r.fields.get("kind", "")),
                str(r.fields.get("task_text", "")),
                str(r.fields.get("script", "")),
            )
            for r in revisions
        ]
        for rev, vec in zip(revisions, embedder.embed_array(texts), strict=True):
            rev.embedding = to_bytes(vec)
        self.report.embeddings_replaced += len(revisions)
        for _, reason in dropped:
            self.report.warnings.append(
                f"{loc}: procedure {rec.key}: {reason}; dropped and re-embedded with "
                f"{embedder.name}"
            )
