"""Importers: one module per input format, one registry, one atomic import call.

``import_paths(store, paths, fmt=...)`` parses every path with the chosen format (``auto``
detects it per file), writes everything through one transaction and returns an
:class:`ImportReport`. Any :class:`~memp_core.errors.ImportFormatError` aborts the call with
nothing written, unless ``skip_bad`` is set: then good records are imported and the bad
ones are listed in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from memp_core.errors import ImportFormatError
from memp_core.importers.records import (
    BadRecord,
    FormatChosen,
    ImportWarning,
    Item,
    ProcedureRecord,
    RunRecord,
    TrajectoryRecord,
)
from memp_core.importers.source import Progress, expand, open_text
from memp_core.importers.writer import ImportReport, Writer
from memp_core.registry import resolve
from memp_core.store import Store

# Name -> "module:parse", imported only when chosen. Each parse(path, progress) yields Items.
IMPORTERS: dict[str, str] = {
    "alfworld": "memp_core.importers.alfworld:parse",
    "react": "memp_core.importers.react:parse",
    "chat": "memp_core.importers.chat:parse",
    "reflexion": "memp_core.importers.reflexion:parse",
    "jsonl": "memp_core.importers.jsonl:parse",
    "auto": "memp_core.importers.auto:parse",
}
FORMATS: tuple[str, ...] = tuple(IMPORTERS)
FOLDER_FORMATS = frozenset({"reflexion", "jsonl", "auto"})  # these read a folder as one unit

Parser = Callable[[Path, Progress | None], Iterator[Item]]

__all__ = [
    "FORMATS",
    "IMPORTERS",
    "ImportReport",
    "import_paths",
    "parser_for",
    "precheck",
    "total_bytes",
]


def parser_for(fmt: str) -> Parser:
    """The parse function registered under ``fmt`` (ConfigError listing names if unknown)."""
    parser: Parser = resolve(IMPORTERS, fmt, "import format")
    return parser


def total_bytes(paths: Sequence[Path]) -> int:
    """Bytes the import will read (for a progress bar)."""
    total = 0
    for path in paths:
        for file in expand(path, "**/*") if path.is_dir() else [path]:
            try:
                total += file.stat().st_size
            except OSError:
                continue
    return total


def precheck(paths: Sequence[Path]) -> None:
    """Fail on missing, empty, binary or undecodable-at-the-start files before any work."""
    for path in paths:
        if not path.is_dir():
            open_text(path)


def _items(fmt: str, path: Path, progress: Progress | None) -> Iterator[Item]:
    parse = parser_for(fmt)
    if not path.is_dir() or fmt in FOLDER_FORMATS:
        return parse(path, progress)
    files = expand(path)
    if not files:
        raise ImportFormatError(str(path), None, "folder holds no files")
    from memp_core.importers.auto import each_file

    return each_file(files, lambda f: parse(f, progress))


def import_paths(
    store: Store,
    paths: Sequence[Path | str],
    *,
    fmt: str = "auto",
    source: str | None = None,
    skip_bad: bool = False,
    progress: Progress | None = None,
    on_format: Callable[[str, str], None] | None = None,
    actor: str = "cli",
) -> ImportReport:
    """Import ``paths`` in one transaction and report the counts of this call."""
    parser_for(fmt)  # an unknown format fails before anything is read
    report = ImportReport()
    with store.transaction() as s:
        writer = Writer(s, report, source=source)
        for raw in paths:
            path = Path(raw)
            try:
                _import_one(writer, fmt, path, skip_bad, progress, on_format)
            except ImportFormatError as exc:
                if not skip_bad:
                    raise
                report.bad.append(str(exc))
        writer.finish()
        report.warnings.extend(writer.link())
        if report.trajectories or report.runs or report.procedures:
            store.audit(
                s, actor, "import", "import", None,
                paths=[str(p) for p in paths], format=fmt, counts=report.counts(),
            )  # fmt: skip
    return report


def _import_one(
    writer: Writer,
    fmt: str,
    path: Path,
    skip_bad: bool,
    progress: Progress | None,
    on_format: Callable[[str, str], None] | None,
) -> None:
    current = fmt
    report = writer.report
    for item in _items(fmt, path, progress):
        if isinstance(item, TrajectoryRecord):
            writer.add_trajectory(item, current, str(path))
        elif isinstance(item, RunRecord):
            writer.add_run(item, current)
        elif isinstance(item, ProcedureRecord):
            report.warnings.extend(writer.add_procedure(item))
        elif isinstance(item, ImportWarning):
            report.warnings.append(str(item))
        elif isinstance(item, FormatChosen):
            current = item.format
            report.formats[item.path] = item.format
            if on_format is not None:
                on_format(item.path, item.format)
        elif isinstance(item, BadRecord):
            if not skip_bad:
                raise item.error
            report.bad.append(str(item.error))
