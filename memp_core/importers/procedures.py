"""Writing procedures read from the jsonl format: the review gate, lineage, audit trail.

A file is not a reviewer. Whatever a file claims, an import (:func:`import_paths` without
``restore``) writes each procedure as ``pending_review``, unpinned, with use and success
counts 0, and labels everything else it says as history brought in by the importer:

- one ``import`` audit event per procedure, by the importing actor, whose detail keeps the
  file's claims: ``{"claimed": {"status", "pinned", "use_count", "success_count"},
  "file": ...}``;
- each audit row of the file becomes an ``imported-history`` event by the importing actor,
  with ``{"claimed_actor", "claimed_action", "claimed_at", "claimed_detail", "file"}``:
  nobody named in a file is ever recorded as having acted here (``claimed_detail`` keeps the
  file's references as written, e.g. ``{"$revision": [key, n]}``);
- revision authors are data about the content but must not read as written here: they are
  stored as ``import:<author as written>`` (``import:human:alice``; kept as is when already
  so prefixed); the origin (build, reflection, human_edit, ...) stays, since it says how
  the content came about.

An admin's restore (``restore=True``) of a backup keeps statuses, pins, counts, authors and
the audit trail exactly as exported; the call itself is audited as ``restore``.

Revisions are inserted in lineage order so each parent exists before its child (the checks
guarantee parents come first); references by stable key (``{"$revision": [key, n]}``,
``{"$trajectory": hash}``, trajectory -> revision) are resolved at the end of the import,
when everything they may name is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select, update

from memp_core.importers.keys import iso
from memp_core.importers.records import AuditRecord, ProcedureRecord, RevisionRecord
from memp_core.models import AuditEvent, Procedure, ProcedureRevision, Status, Trajectory, utcnow

if TYPE_CHECKING:
    from memp_core.importers.report import ImportReport

IMPORTED_PREFIX = "import:"
CLAIMS = ("status", "pinned", "use_count", "success_count")


def imported_author(author: str) -> str:
    """A revision author read from a file, labelled as such (idempotent)."""
    if author.startswith(IMPORTED_PREFIX):
        return author
    return IMPORTED_PREFIX + (author or "unknown")


class ProcedureWriter:
    """Writes ProcedureRecords inside the import's session; part of the one writer."""

    def __init__(
        self, s: Session, report: ImportReport, *, author: str, restore: bool = False
    ) -> None:
        self.s = s
        self.report = report
        self.author = author  # the importing actor's ``Actor.author``
        self.restore = restore
        self.refs: list[tuple[str, tuple[str, int]]] = []  # (trajectory hash, revision ref)
        self._audit_to_resolve: list[int] = []
        self._merges: list[tuple[int, str]] = []  # (procedure id, key it was merged into)

    def add(self, rec: ProcedureRecord, file: str) -> list[str]:
        """Write a procedure with its whole lineage and audit trail; returns warnings."""
        exists = self.s.exec(select(Procedure.id).where(Procedure.key == rec.key)).first()
        if exists is not None:
            self.report.procedures_skipped += 1
            return []
        fields = dict(rec.fields)
        if not self.restore:
            fields.update(
                status=Status.pending_review.value, pinned=False, use_count=0, success_count=0,
                updated_at=utcnow(),
            )  # fmt: skip
        proc = Procedure(key=rec.key, **fields)
        self.s.add(proc)
        self.s.flush()
        assert proc.id is not None
        ids: dict[int, int] = {}
        warnings: list[str] = []
        for rev in sorted(rec.revisions, key=lambda r: r.ordinal):
            row = self._revision_row(proc.id, rev, ids, warnings)
            self.s.add(row)
            self.s.flush()
            assert row.id is not None
            ids[rev.ordinal] = row.id
        proc.current_revision_id = ids.get(rec.current) if rec.current is not None else None
        if self.restore:
            proc.proposed_revision_id = ids.get(rec.proposed) if rec.proposed is not None else None
            if rec.merged_into is not None:  # the kept procedure may come later in the file
                self._merges.append((proc.id, rec.merged_into))
        self.s.add(proc)
        events = [self._event(ev, proc.id, ids, file) for ev in rec.audit]
        if not self.restore:
            claimed = {name: rec.fields.get(name) for name in CLAIMS}
            # a file's proposal and merge are claims too: the import is one pending procedure
            extra = {"proposed_revision": rec.proposed, "merged_into": rec.merged_into}
            claimed.update({name: value for name, value in extra.items() if value is not None})
            events.append(
                AuditEvent(
                    actor=self.author,
                    action="import",
                    object_type="procedure",
                    object_id=proc.id,
                    detail={"claimed": claimed, "file": file},
                )  # fmt: skip
            )
        self.s.add_all(events)
        self.s.flush()
        if self.restore:  # details may name revisions later in the file: resolve at the end
            self._audit_to_resolve.extend(int(ev.id or 0) for ev in events if ev.detail)
        self.report.procedures += 1
        self.report.revisions += len(ids)
        return [f"procedure {rec.key}: {w}" for w in warnings]

    def _event(self, ev: AuditRecord, proc_id: int, ids: dict[int, int], file: str) -> AuditEvent:
        object_id = proc_id if ev.revision is None else ids.get(ev.revision)
        if self.restore:
            return AuditEvent(
                actor=ev.actor, action=ev.action, object_type=ev.object_type,
                object_id=object_id, detail=ev.detail, created_at=ev.created_at or utcnow(),
            )  # fmt: skip
        history = {
            "claimed_actor": ev.actor,
            "claimed_action": ev.action,
            "claimed_at": iso(ev.created_at),
            "claimed_detail": ev.detail,
            "file": file,
        }
        # The row is attached to this procedure or one of its revisions, whatever it says.
        about_revision = ev.revision is not None and "revision" in ev.object_type.lower()
        object_type = ev.object_type if about_revision else "procedure"
        if object_type != ev.object_type:
            history["claimed_object_type"] = ev.object_type
        return AuditEvent(
            actor=self.author, action="imported-history", object_type=object_type,
            object_id=object_id if about_revision or ev.revision is None else proc_id,
            detail=history,
        )  # fmt: skip

    def _revision_row(
        self, procedure_id: int, rev: RevisionRecord, ids: dict[int, int], warnings: list[str]
    ) -> ProcedureRevision:
        evidence: list[int] = []
        if rev.evidence:
            found = dict(
                self.s.exec(
                    select(Trajectory.content_hash, Trajectory.id).where(
                        col(Trajectory.content_hash).in_(rev.evidence)
                    )
                ).all()
            )
            evidence = [found[h] for h in rev.evidence if h in found]  # type: ignore[misc]
            if len(evidence) < len(rev.evidence):
                warnings.append(
                    f"revision {rev.ordinal}: {len(rev.evidence) - len(evidence)} evidence "
                    "trajectories are not in this database (import them too)"
                )
        parent = ids.get(rev.parent) if rev.parent is not None else None
        if rev.parent is not None and parent is None:
            warnings.append(f"revision {rev.ordinal}: parent revision {rev.parent} is missing")
        fields = dict(rev.fields)
        if not self.restore:
            fields["author"] = imported_author(str(fields.get("author", "")))
        return ProcedureRevision(
            procedure_id=procedure_id,
            parent_revision_id=parent,
            evidence_trajectory_ids=evidence,
            embedding=rev.embedding,
            **fields,
        )

    def link_trajectories(self) -> list[str]:
        """Point imported trajectories at the revisions they followed; returns unresolved refs."""
        missing: list[str] = []
        for digest, ref in self.refs:
            rev_id = self._revision_id(*ref)
            if rev_id is None:
                missing.append(f"{ref[0]}#{ref[1]}")
                continue
            self.s.exec(  # type: ignore[call-overload]
                update(Trajectory)
                .where(col(Trajectory.content_hash) == digest)
                .values(procedure_revision_id=rev_id)
            )
        return missing

    def resolve_merges(self) -> list[tuple[str, str]]:
        """Point restored merged procedures at the kept ones, by key; returns the (key, kept
        key) pairs whose kept procedure is in neither the file nor the database."""
        missing: list[tuple[str, str]] = []
        for proc_id, key in self._merges:
            proc = self.s.get(Procedure, proc_id)
            kept = self.s.exec(select(Procedure.id).where(Procedure.key == key)).first()
            if proc is None:
                continue
            if kept is None:
                missing.append((proc.key, key))
                continue
            proc.merged_into_id = kept
            self.s.add(proc)
        self.s.flush()
        return missing

    def resolve_audit(self) -> None:
        """Turn ``{"$revision": [key, n]}`` / ``{"$trajectory": hash}`` back into row ids."""
        for event_id in self._audit_to_resolve:
            ev = self.s.get(AuditEvent, event_id)
            if ev is None:
                continue
            detail = {
                k: [self._local(v) for v in val] if isinstance(val, list) else self._local(val)
                for k, val in ev.detail.items()
            }
            if detail != ev.detail:
                ev.detail = detail
                self.s.add(ev)
        self.s.flush()

    def _local(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ref = value.get("$revision")
            if isinstance(ref, list) and len(ref) == 2:
                key, n = ref
                if isinstance(key, str) and isinstance(n, int):
                    return self._revision_id(key, n) or value
            digest = value.get("$trajectory")
            if isinstance(digest, str):
                found = self.s.exec(
                    select(Trajectory.id).where(Trajectory.content_hash == digest)
                ).first()
                return found if found is not None else value
        return value

    def _revision_id(self, key: str, ordinal: int) -> int | None:
        proc_id = self.s.exec(select(Procedure.id).where(Procedure.key == key)).first()
        if proc_id is None or ordinal < 1:
            return None
        revs = self.s.exec(
            select(ProcedureRevision.id)
            .where(ProcedureRevision.procedure_id == proc_id)
            .order_by(col(ProcedureRevision.id))
        ).all()
        return revs[ordinal - 1] if ordinal <= len(revs) else None
