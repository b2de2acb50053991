"""``memp export``: JSONL that the ``jsonl`` importer reads back, and CSV learning curves.

Lines are typed (``header``, ``run``, ``trajectory``, ``procedure``) and refer to each other
by stable keys, never by row ids (see :mod:`memp_core.importers.keys`), so exporting,
importing into an empty database and exporting again gives byte-identical files. A
procedure line carries its whole revision lineage and its audit events.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Literal, TextIO

from sqlmodel import Session, col, select

from memp_core.errors import MempError
from memp_core.importers.keys import iso, run_fields, run_key
from memp_core.importers.records import StepRecord, TrajectoryRecord
from memp_core.importers.stage import content_hash
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Run, Step, Trajectory
from memp_core.store import Store

What = Literal["trajectories", "procedures", "runs", "all"]
WHATS: tuple[str, ...] = ("trajectories", "procedures", "runs", "all")
FORMAT, VERSION = "memp-jsonl", 1
PAGE = 1000
TRAJECTORY_FIELDS = (
    "task", "task_type", "environment", "source", "source_file", "agent_model", "success",
    "reward", "step_count", "token_count", "group_index", "facts", "reflections",
    "reference_answer",
)  # fmt: skip
PROCEDURE_FIELDS = (
    "title", "task_type", "status", "use_count", "success_count", "pinned",
    "created_at", "updated_at",
)  # fmt: skip
REVISION_FIELDS = (
    "kind", "task_text", "script", "steps", "origin", "author", "model", "rationale", "facts",
    "created_at",
)  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet cell a formula
CURVE_COLUMNS = ("run", "run_name", "kind", "group", "tasks", "successes", "success_rate",
                 "mean_steps", "tokens")  # fmt: skip


class ExportError(MempError):
    """The export destination cannot be written."""


@dataclass
class ExportResult:
    files: dict[str, int] = field(default_factory=dict)  # path -> lines or rows written


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def _value(v: Any) -> Any:
    return iso(v) if hasattr(v, "isoformat") else v


class _Refs:
    """Row id -> stable key maps, built once per export."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.runs = {r.id: run_key(r) for r in s.exec(select(Run)).all()}
        self.procedure_keys = dict(s.exec(select(Procedure.id, Procedure.key)).all())
        self.revisions: dict[int, tuple[str, int]] = {}
        counters: dict[int, int] = {}
        rows = s.exec(
            select(ProcedureRevision.id, ProcedureRevision.procedure_id).order_by(
                col(ProcedureRevision.id)
            )
        ).all()
        for rev_id, proc_id in rows:
            counters[proc_id] = counters.get(proc_id, 0) + 1
            self.revisions[rev_id] = (self.procedure_keys.get(proc_id, ""), counters[proc_id])

    def trajectory_hashes(self, ids: list[int]) -> dict[int, str]:
        rows = self.s.exec(select(Trajectory).where(col(Trajectory.id).in_(ids))).all()
        return {t.id: t.content_hash or _hash_of(self.s, t) for t in rows}  # type: ignore[misc]


def _hash_of(s: Session, t: Trajectory, steps: list[Step] | None = None) -> str:
    """Trajectories written without a hash (simulator runs) get the importers' hash."""
    if steps is None:
        steps = list(s.exec(select(Step).where(Step.trajectory_id == t.id).order_by(Step.index)))
    rec = TrajectoryRecord(
        task=t.task,
        success=t.success,
        steps=[StepRecord(st.thought, st.action, st.observation) for st in steps],
        environment=t.environment,
        reflections=list(t.reflections or []),
        reference_answer=t.reference_answer,
        hash_salt=f"{t.source}:{t.run_id}:{t.group_index}:{iso(t.created_at)}",
    )
    return content_hash(rec)


def run_lines(s: Session, refs: _Refs) -> Iterator[dict[str, Any]]:
    for run in s.exec(select(Run).order_by(col(Run.id))).all():
        yield {"type": "run", "key": refs.runs[run.id], **run_fields(run)}


def trajectory_lines(s: Session, refs: _Refs) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        page = list(
            s.exec(
                select(Trajectory)
                .where(col(Trajectory.id) > last)
                .order_by(col(Trajectory.id))
                .limit(PAGE)
            ).all()
        )
        if not page:
            return
        last = page[-1].id  # type: ignore[assignment]
        steps: dict[int, list[Step]] = {}
        for st in s.exec(
            select(Step)
            .where(col(Step.trajectory_id).in_([t.id for t in page]))
            .order_by(col(Step.trajectory_id), col(Step.index))
        ).all():
            steps.setdefault(st.trajectory_id, []).append(st)
        for t in page:
            own = steps.get(t.id, [])  # type: ignore[arg-type]
            ref = refs.revisions.get(t.procedure_revision_id or -1)
            yield {
                "type": "trajectory",
                "content_hash": t.content_hash or _hash_of(s, t, own),
                **{name: getattr(t, name) for name in TRAJECTORY_FIELDS},
                "created_at": iso(t.created_at),
                "run": refs.runs.get(t.run_id) if t.run_id is not None else None,
                "procedure_revision": {"procedure": ref[0], "revision": ref[1]} if ref else None,
                "steps": [
                    {
                        "index": st.index,
                        "thought": st.thought,
                        "action": st.action,
                        "observation": st.observation,
                        "is_error": st.is_error,
                        "is_loop": st.is_loop,
                    }
                    for st in own
                ],
            }
        s.expunge_all()


def procedure_lines(s: Session, refs: _Refs) -> Iterator[dict[str, Any]]:
    keys = dict(s.exec(select(Procedure.id, Procedure.key)).all())  # merge pointers by key
    for proc in s.exec(select(Procedure).order_by(col(Procedure.id))).all():
        revs = list(
            s.exec(
                select(ProcedureRevision)
                .where(ProcedureRevision.procedure_id == proc.id)
                .order_by(col(ProcedureRevision.id))
            ).all()
        )
        ordinal = {r.id: refs.revisions[r.id][1] for r in revs}  # type: ignore[index]
        evidence_ids = sorted({i for r in revs for i in (r.evidence_trajectory_ids or [])})
        hashes = refs.trajectory_hashes(evidence_ids) if evidence_ids else {}
        yield {
            "type": "procedure",
            "key": proc.key,
            **{name: _value(getattr(proc, name)) for name in PROCEDURE_FIELDS},
            "current_revision": ordinal.get(proc.current_revision_id),  # type: ignore[arg-type]
            # the revision waiting for review beside the served one, and the procedure a
            # reviewed merge folded this one into (a key: ids differ between databases)
            "proposed_revision": ordinal.get(proc.proposed_revision_id),  # type: ignore[arg-type]
            "merged_into": keys.get(proc.merged_into_id),  # type: ignore[arg-type]
            "revisions": [
                {
                    "revision": ordinal[r.id],  # type: ignore[index]
                    "parent": ordinal.get(r.parent_revision_id),  # type: ignore[arg-type]
                    **{name: _value(getattr(r, name)) for name in REVISION_FIELDS},
                    "evidence": [hashes[i] for i in r.evidence_trajectory_ids or [] if i in hashes],
                    "embedding": base64.b64encode(r.embedding).decode() if r.embedding else None,
                }
                for r in revs
            ],
            "audit": list(_audit(s, proc, ordinal, refs)),
        }


def _audit(
    s: Session, proc: Procedure, ordinal: dict[int | None, int], refs: _Refs
) -> Iterator[dict[str, Any]]:
    """Audit events about the procedure or one of its revisions, oldest first."""
    rev_ids = [i for i in ordinal if i is not None]
    events = s.exec(
        select(AuditEvent)
        .where(col(AuditEvent.object_id).in_([proc.id, *rev_ids]))
        .order_by(col(AuditEvent.id))
    ).all()
    for ev in events:
        about_revision = "revision" in ev.object_type.lower()
        if about_revision and ev.object_id in ordinal:
            rev = ordinal[ev.object_id]
        elif (
            not about_revision and ev.object_type.lower() == "procedure" and ev.object_id == proc.id
        ):
            rev = None
        else:
            continue
        yield {
            "actor": ev.actor,
            "action": ev.action,
            "object_type": ev.object_type,
            "revision": rev,
            "detail": portable(ev.detail or {}, refs),
            "created_at": iso(ev.created_at),
        }


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def portable(detail: dict[str, Any], refs: _Refs) -> dict[str, Any]:
    """Row ids inside an audit detail as stable references (``$revision``, ``$trajectory``)."""
    traj_ids = [
        v
        for k, val in detail.items()
        if _is_trajectory_key(k)
        for v in (val if isinstance(val, list) else [val])
        if _is_id(v)
    ]
    hashes = refs.trajectory_hashes(traj_ids) if traj_ids else {}

    def one(key: str, value: Any) -> Any:
        if _is_id(value) and key.endswith("revision_id") and value in refs.revisions:
            return {"$revision": list(refs.revisions[value])}
        if _is_id(value) and _is_trajectory_key(key) and value in hashes:
            return {"$trajectory": hashes[value]}
        return value

    return {
        k: [one(k, v) for v in val] if isinstance(val, list) else one(k, val)
        for k, val in detail.items()
    }


def _is_trajectory_key(key: str) -> bool:
    return key == "evidence" or key.endswith(("trajectory_id", "trajectory_ids"))


def curve_rows(s: Session, refs: _Refs) -> Iterator[list[Any]]:
    for run in s.exec(select(Run).order_by(col(Run.id))).all():
        for g in run.metrics or []:
            yield [
                refs.runs[run.id], run.name, run.kind, g.get("index"), g.get("tasks"),
                g.get("successes"), g.get("success_rate"), g.get("mean_steps"), g.get("tokens"),
            ]  # fmt: skip


def export(store: Store, path: Path, what: str = "all") -> ExportResult:
    """Write ``path`` (a folder, or one ``.jsonl`` file) and return what was written."""
    if what not in WHATS:
        raise ExportError(f"unknown --what {what!r}; valid: {', '.join(WHATS)}")
    kinds = ["runs", "trajectories", "procedures"] if what == "all" else [what]
    single = path.suffix.lower() == ".jsonl"
    folder = path.parent if single else path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {folder}: {exc.strerror or exc}") from None
    result = ExportResult()
    makers = {"runs": run_lines, "trajectories": trajectory_lines, "procedures": procedure_lines}
    with store.session() as s:
        refs = _Refs(s)
        if single:
            lines = chain.from_iterable(makers[kind](s, refs) for kind in kinds)
            result.files[str(path)] = _write_jsonl(path, what, lines)
        else:
            for kind in kinds:
                target = folder / f"{kind}.jsonl"
                result.files[str(target)] = _write_jsonl(target, kind, makers[kind](s, refs))
        if "runs" in kinds:
            target = path.with_suffix(".curves.csv") if single else folder / "curves.csv"
            result.files[str(target)] = _write_csv(target, curve_rows(s, refs))
    return result


def _write_jsonl(path: Path, what: str, lines: Iterator[dict[str, Any]]) -> int:
    def write(fh: TextIO) -> int:
        fh.write(_dump({"type": "header", "format": FORMAT, "version": VERSION, "what": what}))
        n = 0
        for line in lines:
            fh.write(_dump(line))
            n += 1
        return n

    return _write_atomic(path, write, newline="\n")


def _write_csv(path: Path, rows: Iterator[list[Any]]) -> int:
    def write(fh: TextIO) -> int:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CURVE_COLUMNS)
        n = 0
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])
            n += 1
        return n

    return _write_atomic(path, write, newline="")


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: text that would start a formula gets a quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _write_atomic(path: Path, write: Callable[[TextIO], int], newline: str) -> int:
    """Write through a fresh temporary file beside ``path`` and rename it into place.

    ``mkstemp`` creates a new file with a random name (``O_EXCL``, mode 0600, never through
    a planted symlink), so nobody can predict or pre-create it; a failed export leaves no
    half file, and ``os.replace`` swaps a link at ``path`` itself rather than its target.
    """
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        with open(fd, "w", encoding="utf-8", newline=newline) as fh:
            n = write(fh)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
