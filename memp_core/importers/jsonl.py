"""This project's export format (see :mod:`memp_core.importers.export`), read back losslessly.

One JSON object per line with a ``type``: ``header``, ``run``, ``trajectory`` or
``procedure``. Every field is type-checked here, so a hand-edited or corrupted file fails
with the line and the field instead of reaching the database.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from memp_core.errors import ImportFormatError
from memp_core.importers.checks import MAX_STEPS
from memp_core.importers.export import FORMAT, PROCEDURE_FIELDS, REVISION_FIELDS, VERSION
from memp_core.importers.keys import RUN_FIELDS, parse_iso
from memp_core.importers.records import (
    AuditRecord,
    BadRecord,
    Item,
    ProcedureRecord,
    RevisionRecord,
    RunRecord,
    StepRecord,
    TrajectoryRecord,
)
from memp_core.importers.source import Progress, iter_lines, open_text, parse_json, type_name

FILE_ORDER = ("runs.jsonl", "trajectories.jsonl", "procedures.jsonl")
INT_LIMIT = 2**63
_STR, _INT, _BOOL, _NUM = (str,), (int,), (bool,), (int, float)
RUN_TYPES: dict[str, tuple[type, ...]] = {
    "name": _STR, "kind": _STR, "agent": _STR, "agent_model": _STR, "environment": _STR,
    "build_policy": _STR, "retrieve_policy": _STR, "update_policy": _STR, "k": _INT,
    "seed": _INT, "task_set": _STR, "n_tasks": _INT, "n_groups": _INT, "status": _STR,
    "source": _STR, "config": (dict,), "metrics": (list,), "created_at": (datetime,),
    "finished_at": (datetime,),
}  # fmt: skip
RUN_OPTIONAL = {"build_policy", "retrieve_policy", "update_policy", "k", "seed", "finished_at"}
TRAJECTORY_TYPES: dict[str, tuple[type, ...]] = {
    "task": _STR, "task_type": _STR, "environment": _STR, "source": _STR,
    "source_file": _STR, "agent_model": _STR, "success": _BOOL, "reward": _NUM,
    "step_count": _INT, "token_count": _INT, "group_index": _INT, "facts": (dict,),
    "reflections": (list,), "reference_answer": _STR, "content_hash": _STR,
    "created_at": (datetime,),
}  # fmt: skip
# success null: an unknown outcome (nobody recorded a verdict), kept unknown.
TRAJECTORY_OPTIONAL = {"source_file", "success", "reward", "group_index", "reference_answer"}
PROCEDURE_TYPES: dict[str, tuple[type, ...]] = {
    "title": _STR, "task_type": _STR, "status": _STR, "use_count": _INT,
    "success_count": _INT, "pinned": _BOOL, "created_at": (datetime,), "updated_at": (datetime,),
}  # fmt: skip
REVISION_TYPES: dict[str, tuple[type, ...]] = {
    "kind": _STR, "task_text": _STR, "script": _STR, "steps": (list,), "origin": _STR,
    "author": _STR, "model": _STR, "rationale": _STR, "facts": (dict,), "created_at": (datetime,),
}  # fmt: skip


class _Bad(Exception):
    """A field failed validation (internal; becomes an ImportFormatError with the line)."""


def _field(obj: dict[str, Any], name: str, types: tuple[type, ...], optional: bool) -> Any:
    if name not in obj:
        raise _Bad(f"missing field '{name}'")
    value = obj[name]
    if value is None and optional:
        return None
    if datetime in types:
        try:
            return parse_iso(value)
        except ValueError as exc:
            raise _Bad(f"'{name}': {exc}") from None
    if bool in types:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, types) and not isinstance(value, bool)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT_LIMIT:
        raise _Bad(f"'{name}': integer out of range")
    if not ok:
        want = " or ".join(sorted({type_name(t()) for t in types}))
        raise _Bad(f"'{name}' must be {want}, got {type_name(value)}")
    return value


def _fields(
    obj: dict[str, Any],
    spec: dict[str, tuple[type, ...]],
    optional: set[str],
    names: tuple[str, ...],
) -> dict[str, Any]:
    return {n: _field(obj, n, spec[n], n in optional) for n in names}


def _run(obj: dict[str, Any], name: str) -> RunRecord:
    key = _field(obj, "key", _STR, False)
    fields = _fields(obj, RUN_TYPES, RUN_OPTIONAL, RUN_FIELDS)
    if not all(isinstance(g, dict) for g in fields["metrics"]):
        raise _Bad("'metrics' must be an array of objects (one per group)")
    return RunRecord(
        name=fields["name"],
        agent=fields["agent"],
        environment=fields["environment"],
        fingerprint=key,
        source_file=name,
        metrics=fields["metrics"],
        preserved=fields,
    )


def _step(obj: Any) -> StepRecord:
    if not isinstance(obj, dict):
        raise _Bad(f"each step must be an object, got {type_name(obj)}")
    text = {n: _field(obj, n, _STR, True) for n in ("thought", "action", "observation")}
    flags = {n: _field(obj, n, _BOOL, False) for n in ("is_error", "is_loop")}
    return StepRecord(**text, **flags)


def _trajectory(obj: dict[str, Any]) -> TrajectoryRecord:
    f = _fields(obj, TRAJECTORY_TYPES, TRAJECTORY_OPTIONAL, tuple(TRAJECTORY_TYPES))
    if not all(isinstance(r, str) for r in f["reflections"]):
        raise _Bad("'reflections' must be an array of strings")
    steps = obj.get("steps")
    if not isinstance(steps, list):
        raise _Bad(f"'steps' must be an array, got {type_name(steps)}")
    if len(steps) > MAX_STEPS:  # before building a record per step
        raise _Bad(f"'steps': {len(steps):,} steps; at most {MAX_STEPS:,} per trajectory")
    run = _field(obj, "run", _STR, True)
    ref = obj.get("procedure_revision")
    proc_ref = None
    if ref is not None:
        if not isinstance(ref, dict):
            raise _Bad("'procedure_revision' must be an object or null")
        proc_ref = (_field(ref, "procedure", _STR, False), _field(ref, "revision", _INT, False))
    return TrajectoryRecord(
        task=f["task"],
        success=f["success"],
        steps=[_step(st) for st in steps],
        task_type=f["task_type"],
        environment=f["environment"],
        agent_model=f["agent_model"],
        reward=float(f["reward"]) if f["reward"] is not None else None,
        facts=f["facts"],
        reflections=f["reflections"],
        reference_answer=f["reference_answer"],
        group_index=f["group_index"],
        content_hash=f["content_hash"],
        source=f["source"],
        source_file=f["source_file"],
        created_at=f["created_at"],
        token_count=f["token_count"],
        step_count=f["step_count"],
        procedure_ref=proc_ref,
        run_key=run,
        preserved=True,
    )


def _revision(obj: Any) -> RevisionRecord:
    if not isinstance(obj, dict):
        raise _Bad(f"each revision must be an object, got {type_name(obj)}")
    evidence = obj.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
        raise _Bad("'evidence' must be an array of content hashes")
    raw = _field(obj, "embedding", _STR, True)
    try:
        embedding = base64.b64decode(raw, validate=True) if raw else None
    except (binascii.Error, ValueError):
        raise _Bad("'embedding' is not valid base64") from None
    return RevisionRecord(
        ordinal=_field(obj, "revision", _INT, False),
        parent=_field(obj, "parent", _INT, True),
        fields=_fields(obj, REVISION_TYPES, set(), REVISION_FIELDS),
        evidence=evidence,
        embedding=embedding,
    )


def _audit(obj: Any) -> AuditRecord:
    if not isinstance(obj, dict):
        raise _Bad(f"each audit event must be an object, got {type_name(obj)}")
    detail = _field(obj, "detail", (dict,), False)
    return AuditRecord(
        actor=_field(obj, "actor", _STR, False),
        action=_field(obj, "action", _STR, False),
        object_type=_field(obj, "object_type", _STR, False),
        revision=_field(obj, "revision", _INT, True),
        detail=detail,
        created_at=_field(obj, "created_at", (datetime,), True),
    )


def _procedure(obj: dict[str, Any]) -> ProcedureRecord:
    revisions = obj.get("revisions")
    audit = obj.get("audit", [])
    if not isinstance(revisions, list) or not isinstance(audit, list):
        raise _Bad("'revisions' and 'audit' must be arrays")
    return ProcedureRecord(
        key=_field(obj, "key", _STR, False),
        fields=_fields(obj, PROCEDURE_TYPES, set(), PROCEDURE_FIELDS),
        current=_field(obj, "current_revision", _INT, True),
        revisions=[_revision(r) for r in revisions],
        audit=[_audit(a) for a in audit],
        # absent from files written before proposals and merges were exported
        proposed=_field(obj, "proposed_revision", _INT, True)
        if "proposed_revision" in obj
        else None,
        merged_into=_field(obj, "merged_into", _STR, True) if "merged_into" in obj else None,
    )


def _line(obj: Any, name: str, lineno: int) -> Item | None:
    if not isinstance(obj, dict):
        raise _Bad(f"expected a JSON object, got {type_name(obj)}")
    kind = obj.get("type")
    if kind == "header":
        if obj.get("format") != FORMAT or obj.get("version") != VERSION:
            found = f"{obj.get('format')!r} version {obj.get('version')!r}"
            reason = f"not a {FORMAT} version {VERSION} file ({found})"
            raise ImportFormatError(name, lineno, reason)
        return None
    if kind == "run":
        run = _run(obj, name)
        run.where = lineno
        return run
    if kind == "trajectory":
        rec = _trajectory(obj)
        rec.where, rec.file = lineno, name
        return rec
    if kind == "procedure":
        proc = _procedure(obj)
        proc.where, proc.file = lineno, name
        return proc
    raise _Bad(f"unknown record type {kind!r} (expected header, run, trajectory or procedure)")


def files_of(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.glob("*.jsonl") if p.is_file())
    if not found:
        raise ImportFormatError(str(path), None, "folder holds no .jsonl files")
    rank = {name: i for i, name in enumerate(FILE_ORDER)}
    return sorted(found, key=lambda p: (rank.get(p.name, len(rank)), p.name))


def parse(path: Path, progress: Progress | None = None) -> Iterator[Item]:
    for file in files_of(path):
        yield from _parse_file(file, progress)


def _parse_file(path: Path, progress: Progress | None) -> Iterator[Item]:
    src = open_text(path)
    found = 0
    for lineno, line in iter_lines(src, progress):
        if not line.strip():
            continue
        try:
            item = _line(parse_json(line, src.name, lineno - 1), src.name, lineno)
        except _Bad as exc:
            yield BadRecord(ImportFormatError(src.name, lineno, str(exc)))
            continue
        except ImportFormatError as exc:
            if lineno == 1 or found == 0:
                raise  # the first line decides whether this is our format at all
            yield BadRecord(exc)
            continue
        found += 1
        if item is not None:
            yield item
