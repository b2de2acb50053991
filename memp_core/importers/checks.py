"""The limits every imported record keeps, checked in one place for every format.

Parsers turn text into typed records; before a record is staged for writing it passes
here, whatever format it came in. A record that breaks a limit is refused with one
:class:`~memp_core.errors.ImportFormatError` naming the file, the line and the field (fatal
unless ``--skip-bad``), because one absurd value breaks the pages and commands of everyone
who shares the database, not only the importer's:

- integers: counts (steps, tokens, uses, group index, revision numbers) ``0 <= n < 2**31``,
  other integers (a seed) ``-2**31 <= n < 2**31``: Postgres stores them in 32-bit columns
  and pages add them up;
- ``step_count`` equals the steps present; at most :data:`MAX_STEPS` steps a trajectory;
- numbers (rewards, rates) finite; dates between 1970 and 2200;
- text fields at most :data:`MAX_TEXT` characters, names and labels :data:`MAX_LABEL`;
- a lineage numbers its revisions 1..n, each parent an earlier revision of the same
  procedure (no loops, no missing parents), and its current revision is one of them.

Embeddings are the exception: a wrong-length, non-finite or all-zero vector is not refused
but dropped (the caller warns and re-embeds the revision), because the rest of the
revision is good data and the vector can be recomputed from its text.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, NoReturn

import numpy as np

from memp_core.errors import ImportFormatError
from memp_core.importers.records import (
    AuditRecord,
    ProcedureRecord,
    RevisionRecord,
    RunRecord,
    TrajectoryRecord,
)
from memp_core.models import Kind, Origin, Status

INT_LIMIT = 2**31  # exclusive bound of a 32-bit INTEGER column
MAX_STEPS = 10_000
MAX_TEXT = 1_000_000  # characters in one text field (a thought, an observation, a script)
MAX_TRAJECTORY_TEXT = 16_000_000  # characters in all the text of one trajectory
MAX_LABEL = 4_096  # names, keys, labels, file names
MAX_ITEMS = 10_000  # entries in a list (reflections, revisions, audit rows, evidence)
MAX_JSON = 1_000_000  # characters of a JSON field (facts, config, audit detail)
YEARS = (1970, 2200)
STATUSES = frozenset(s.value for s in Status)
KINDS = frozenset(k.value for k in Kind)
ORIGINS = frozenset(o.value for o in Origin)
METRIC_COUNTS = ("index", "tasks", "successes", "unknown", "tokens")


class _Check:
    """Field checks for one record; each failure names the file, the line and the field."""

    def __init__(self, file: str, where: str | int | None, prefix: str = "") -> None:
        self.file, self.where, self.prefix = file, where, prefix

    def at(self, prefix: str) -> _Check:
        return _Check(self.file, self.where, self.prefix + prefix)

    def fail(self, name: str, reason: str) -> NoReturn:
        raise ImportFormatError(self.file, self.where, f"'{self.prefix}{name}': {reason}")

    def count(self, name: str, value: int | None, low: int = 0) -> None:
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(name, f"must be an integer, got {value!r}")
        if not low <= value < INT_LIMIT:
            self.fail(name, f"{value} is out of range ({low} to {INT_LIMIT - 1})")

    def integer(self, name: str, value: int | None) -> None:
        self.count(name, value, low=-INT_LIMIT)

    def number(self, name: str, value: float | None) -> None:
        if value is not None and not math.isfinite(value):
            self.fail(name, f"must be a finite number, got {value!r}")

    def text(self, name: str, value: str | None, limit: int = MAX_TEXT) -> None:
        if value is not None and len(value) > limit:
            self.fail(name, f"{len(value):,} characters; at most {limit:,}")

    def label(self, name: str, value: str | None) -> None:
        self.text(name, value, MAX_LABEL)

    def date(self, name: str, value: datetime | None) -> None:
        if value is not None and not YEARS[0] <= value.year <= YEARS[1]:
            self.fail(name, f"date {value.isoformat()} is outside {YEARS[0]}..{YEARS[1]}")

    def json(self, name: str, value: Any, limit: int = MAX_JSON) -> None:
        try:
            size = len(json.dumps(value, ensure_ascii=False, allow_nan=False))
        except ValueError:
            self.fail(name, "holds a NaN or infinite number")
        except TypeError as exc:
            self.fail(name, f"is not JSON data ({exc})")
        if size > limit:
            self.fail(name, f"{size:,} characters of JSON; at most {limit:,}")

    def items(self, name: str, values: list[Any], limit: int = MAX_ITEMS) -> None:
        if len(values) > limit:
            self.fail(name, f"{len(values):,} entries; at most {limit:,}")

    def choice(self, name: str, value: str, allowed: frozenset[str]) -> None:
        if value not in allowed:
            self.fail(name, f"{value!r} is not one of {', '.join(sorted(allowed))}")


def check_trajectory(rec: TrajectoryRecord, file: str) -> None:
    c = _Check(file, rec.where)
    c.text("task", rec.task)
    for name in ("task_type", "environment", "agent_model", "source", "source_file"):
        c.label(name, getattr(rec, name))
    c.label("content_hash", rec.content_hash)
    c.number("reward", rec.reward)
    c.count("token_count", rec.token_count)
    c.count("group_index", rec.group_index)
    c.date("created_at", rec.created_at)
    if len(rec.steps) > MAX_STEPS:
        c.fail("steps", f"{len(rec.steps):,} steps; at most {MAX_STEPS:,} per trajectory")
    if rec.step_count is not None:
        c.count("step_count", rec.step_count)
        if rec.step_count != len(rec.steps):
            c.fail("step_count", f"says {rec.step_count} but the trajectory has {len(rec.steps)}")
    total = len(rec.task)
    for i, st in enumerate(rec.steps):
        for name in ("thought", "action", "observation"):
            value = getattr(st, name)
            c.text(f"steps[{i}].{name}", value)
            total += len(value or "")
    c.items("reflections", rec.reflections)
    for i, text in enumerate(rec.reflections):
        c.text(f"reflections[{i}]", text)
        total += len(text)
    c.text("reference_answer", rec.reference_answer)
    if total > MAX_TRAJECTORY_TEXT:
        c.fail("steps", f"{total:,} characters of text; at most {MAX_TRAJECTORY_TEXT:,}")
    c.json("facts", rec.facts)
    if rec.procedure_ref is not None:
        c.label("procedure_revision.procedure", rec.procedure_ref[0])
        c.count("procedure_revision.revision", rec.procedure_ref[1], low=1)
    c.label("run", rec.run_key)


def check_run(rec: RunRecord, file: str) -> None:
    c = _Check(file, rec.where)
    for name in ("name", "agent", "environment", "fingerprint", "source_file"):
        c.label(name, getattr(rec, name))
    c.count("n_groups", rec.n_groups)
    c.json("config", rec.config)
    fields = rec.preserved or {}
    for name in ("n_tasks", "n_groups"):
        c.count(name, fields.get(name))
    for name in ("k", "seed"):
        c.integer(name, fields.get(name))
    for name in ("created_at", "finished_at"):
        c.date(name, fields.get(name))
    for name, value in fields.items():
        if isinstance(value, str):
            c.label(name, value)
    if rec.metrics is not None:
        c.items("metrics", rec.metrics)
        for i, group in enumerate(rec.metrics):
            _check_metric(c.at(f"metrics[{i}]."), group)
        c.json("metrics", rec.metrics)


def _check_metric(c: _Check, group: dict[str, Any]) -> None:
    for name in METRIC_COUNTS:
        value = group.get(name)
        if value is not None and not isinstance(value, int):
            c.fail(name, f"must be an integer or null, got {value!r}")
        c.count(name, value)
    for name in ("success_rate", "mean_steps"):
        value = group.get(name)
        if value is not None and not isinstance(value, int | float):
            c.fail(name, f"must be a number or null, got {value!r}")
        c.number(name, value)


def check_procedure(rec: ProcedureRecord, file: str, dim: int) -> list[tuple[int, str]]:
    """Refuse a bad procedure; drop unusable embeddings, returning ``(ordinal, reason)``."""
    c = _Check(file, rec.where)
    c.label("key", rec.key)
    if not rec.key.strip():
        c.fail("key", "must not be empty")
    f = rec.fields
    c.label("title", f.get("title"))
    c.label("task_type", f.get("task_type"))
    c.choice("status", f.get("status", ""), STATUSES)
    for name in ("use_count", "success_count"):
        c.count(name, f.get(name))
    for name in ("created_at", "updated_at"):
        c.date(name, f.get(name))
    _check_lineage(c, rec)
    dropped: list[tuple[int, str]] = []
    for i, rev in enumerate(rec.revisions):
        _check_revision(c.at(f"revisions[{i}]."), rev)
        reason = embedding_problem(rev.embedding, dim)
        if reason is not None:
            rev.embedding = None
            dropped.append((rev.ordinal, f"'revisions[{i}].embedding' {reason}"))
    ordinals = {r.ordinal for r in rec.revisions}
    c.items("audit", rec.audit)
    for i, ev in enumerate(rec.audit):
        _check_audit(c.at(f"audit[{i}]."), ev, ordinals)
    return dropped


def _check_lineage(c: _Check, rec: ProcedureRecord) -> None:
    c.items("revisions", rec.revisions)
    ordinals = sorted(r.ordinal for r in rec.revisions)
    if ordinals != list(range(1, len(ordinals) + 1)):
        shown = ", ".join(map(str, ordinals[:10])) + (" ..." if len(ordinals) > 10 else "")
        c.fail("revisions", f"revision numbers must be 1..{len(ordinals)}, each once; got {shown}")
    for i, rev in enumerate(rec.revisions):
        if rev.parent is None:
            continue
        if not 1 <= rev.parent <= len(ordinals):
            c.fail(f"revisions[{i}].parent", f"revision {rev.parent} does not exist")
        if rev.parent >= rev.ordinal:
            c.fail(
                f"revisions[{i}].parent",
                f"revision {rev.ordinal} names {rev.parent}, which is not an earlier revision "
                "(a lineage cannot loop or point forward)",
            )
    if rec.current is None:
        if ordinals:
            c.fail("current_revision", "missing, yet the procedure has revisions")
    elif rec.current not in ordinals:
        c.fail("current_revision", f"revision {rec.current} does not exist")
    if rec.proposed is not None and rec.proposed not in ordinals:
        c.fail("proposed_revision", f"revision {rec.proposed} does not exist")
    if rec.merged_into is not None:
        c.label("merged_into", rec.merged_into)
        if rec.merged_into == rec.key:
            c.fail("merged_into", "a procedure cannot be merged into itself")


def _check_revision(c: _Check, rev: RevisionRecord) -> None:
    f = rev.fields
    c.choice("kind", f.get("kind", ""), KINDS)
    c.choice("origin", f.get("origin", ""), ORIGINS)
    for name in ("task_text", "script", "rationale"):
        c.text(name, f.get(name))
    for name in ("author", "model"):
        c.label(name, f.get(name))
    c.date("created_at", f.get("created_at"))
    c.json("facts", f.get("facts", {}))
    steps = f.get("steps", [])
    if len(steps) > MAX_STEPS:
        c.fail("steps", f"{len(steps):,} steps; at most {MAX_STEPS:,}")
    c.json("steps", steps, limit=MAX_TRAJECTORY_TEXT)
    c.items("evidence", rev.evidence)
    for i, digest in enumerate(rev.evidence):
        c.label(f"evidence[{i}]", digest)


def _check_audit(c: _Check, ev: AuditRecord, ordinals: set[int]) -> None:
    for name in ("actor", "action", "object_type"):
        c.label(name, getattr(ev, name))
    if ev.revision is not None and ev.revision not in ordinals:
        c.fail("revision", f"revision {ev.revision} does not exist")
    c.json("detail", ev.detail)
    c.date("created_at", ev.created_at)


def embedding_problem(blob: bytes | None, dim: int) -> str | None:
    """Why ``blob`` cannot serve as a unit vector of ``dim`` float32s (None if it can)."""
    if blob is None:
        return None
    if len(blob) % 4:
        return f"is {len(blob)} bytes, not float32 data"
    vec = np.frombuffer(blob, dtype="<f4")
    if len(vec) != dim:
        return f"has {len(vec)} values, expected {dim}"
    if not np.isfinite(vec).all():
        return "holds NaN or infinite values"
    if not vec.any():
        return "is all zeros"
    return None
