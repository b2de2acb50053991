"""Files that come and go through the dashboard: staged uploads, previews, exports as bytes.

Uploads are written to a private temporary folder under their own names (formats such as
Reflexion's ``env_results_trial_N.json`` are recognised by name); several files form one
folder, which is how the folder formats (reflexion, jsonl exports) are read. A name is only
a name: folders are dropped, control characters removed, and a name longer than a file
system allows is shortened from the front (the end carries the extension and the trial
number); two different files under one name are refused rather than one replacing the
other. A preview runs the importer's parser over the files and counts what it would write,
writing nothing; the import itself is :func:`memp_core.importers.import_paths` (one
transaction, reviewers only, procedures wait for review).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from memp_core.actor import Actor
from memp_core.errors import ImportFormatError
from memp_core.importers import FOLDER_FORMATS, ImportReport, import_paths, parser_for
from memp_core.importers.export import export
from memp_core.importers.records import (
    BadRecord,
    FormatChosen,
    ImportWarning,
    ProcedureRecord,
    RunRecord,
    TrajectoryRecord,
)
from memp_core.store import Store

SAMPLE = 20
MAX_NAME_BYTES = 255  # the longest file name Linux and macOS file systems take
MAX_LISTED = 50  # warnings and bad records listed in a preview


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True)
class SampleRow:
    task: str
    task_type: str
    success: bool | None  # None: the log records no verdict (unknown)
    steps: int
    agent_model: str
    where: str


@dataclass
class Preview:
    """What an import of these files would bring in (nothing is written)."""

    trajectories: int = 0
    succeeded: int = 0
    failed: int = 0
    unknown: int = 0  # no verdict in the log: counted apart, never as a success or a failure
    steps: int = 0
    procedures: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    sample: list[SampleRow] = field(default_factory=list)
    run_keys: set[str] = field(default_factory=set)  # one per multi-trial log

    @property
    def runs(self) -> int:
        return len(self.run_keys)


def _safe_name(name: str) -> str:
    """A plain file name: uploads never choose where they are written or break the disk."""
    base = Path(name.replace("\\", "/")).name
    base = "".join(ch for ch in base if ch.isprintable()).strip()  # NUL, newlines, escapes
    data = base.encode("utf-8")
    if len(data) > MAX_NAME_BYTES:  # keep the end: the extension and a trial number live there
        base = data[-MAX_NAME_BYTES:].decode("utf-8", errors="ignore").lstrip(". ")
    return base if base not in ("", ".", "..") else "upload"


def _names(uploads: Sequence[Upload]) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Each upload under a safe, unique name; notes for the renamed and repeated ones."""
    files: dict[str, bytes] = {}
    notes: list[str] = []
    for up in uploads:
        name = _safe_name(up.name)
        if name != up.name:
            notes.append(f"upload {up.name[:80]!r} was saved as {name!r}")
        if name in files:
            if files[name] != up.data:
                raise ImportFormatError(
                    name, None, "two different uploads have this name; rename one and retry"
                )
            notes.append(f"{name}: uploaded twice with the same content; read once")
            continue
        files[name] = up.data
    return list(files.items()), notes


@contextmanager
def staged(uploads: Sequence[Upload]) -> Iterator[tuple[Path, list[str]]]:
    """The uploads on disk (one file as itself, several as one folder) and notes about their
    names; removed afterwards."""
    if not uploads:
        raise ImportFormatError("(upload)", None, "no file was uploaded")
    files, notes = _names(uploads)
    tmp = Path(tempfile.mkdtemp(prefix="memp-upload-"))
    try:
        folder = tmp / "upload"
        folder.mkdir()
        for name, data in files:
            (folder / name).write_bytes(data)
        yield (folder / files[0][0] if len(files) == 1 else folder), notes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _count(preview: Preview, item: object) -> None:
    if isinstance(item, TrajectoryRecord):
        preview.trajectories += 1
        preview.succeeded += item.success is True
        preview.failed += item.success is False
        preview.unknown += item.success is None
        preview.steps += len(item.steps)
        if item.run is not None:
            preview.run_keys.add(item.run.fingerprint)
        if len(preview.sample) < SAMPLE:
            preview.sample.append(
                SampleRow(item.task, item.task_type, item.success, len(item.steps),
                          item.agent_model, str(item.where or ""))
            )  # fmt: skip
    elif isinstance(item, RunRecord):
        preview.run_keys.add(item.fingerprint)
    elif isinstance(item, ProcedureRecord):
        preview.procedures += 1
    elif isinstance(item, ImportWarning) and len(preview.warnings) < MAX_LISTED:
        preview.warnings.append(str(item))
    elif isinstance(item, BadRecord) and len(preview.bad) < MAX_LISTED:
        preview.bad.append(str(item.error))
    elif isinstance(item, FormatChosen):
        preview.formats[Path(item.path).name] = item.format


def preview(path: Path, fmt: str) -> Preview:
    """Parse ``path`` with ``fmt`` and count the records; raises ImportFormatError."""
    parse = parser_for(fmt)
    files = [path] if (not path.is_dir() or fmt in FOLDER_FORMATS) else sorted(path.iterdir())
    out = Preview()
    for f in files:
        for item in parse(f, None):
            _count(out, item)
    return out


def import_uploads(
    store: Store, uploads: Sequence[Upload], fmt: str, *, actor: Actor, skip_bad: bool = False
) -> ImportReport:
    """Import the uploads in one transaction (all or nothing unless ``skip_bad``)."""
    actor.require("import files")
    with staged(uploads) as (path, notes):
        report = import_paths(store, [path], actor=actor, fmt=fmt, skip_bad=skip_bad)
    report.warnings[:0] = notes
    return report


def preview_uploads(uploads: Sequence[Upload], fmt: str) -> Preview:
    with staged(uploads) as (path, notes):
        out = preview(path, fmt)
    out.warnings[:0] = notes
    return out


def export_zip(store: Store, what: str = "all", *, actor: Actor) -> bytes:
    """``memp export`` of the database as one zip (JSONL files plus curves.csv)."""
    actor.require("export")
    tmp = Path(tempfile.mkdtemp(prefix="memp-export-"))
    try:
        result = export(store, tmp / "export", what)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in result.files:
                zf.write(name, arcname=Path(name).name)
        return buf.getvalue()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
