"""Importers: one module per input format, one registry, one atomic import call.

``import_paths(store, paths, actor=..., fmt=...)`` parses every path with the chosen format
(``auto`` detects it per file) and checks every record, outside any transaction
(:mod:`memp_core.importers.stage`), then writes everything in one short transaction and
returns an :class:`ImportReport`. Any :class:`~memp_core.errors.ImportFormatError` aborts
the call with nothing written, unless ``skip_bad`` is set: then good records are imported
and the bad ones are listed in the report.

Imports need a reviewer (``actor.require("import files")``) and never approve: imported
procedures start ``pending_review`` (see :mod:`memp_core.importers.procedures`). Only an
admin's ``restore=True`` keeps a backup's statuses, pins, counts and audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from memp_core.actor import Actor
from memp_core.embeddings import Embedder, get_embedder
from memp_core.errors import ImportFormatError
from memp_core.importers.records import Item
from memp_core.importers.report import ImportReport
from memp_core.importers.source import Progress, expand, open_text
from memp_core.importers.stage import Stager
from memp_core.importers.writer import Writer
from memp_core.models import EMBEDDING_DIM
from memp_core.registry import resolve
from memp_core.store import Store

# Name -> "module:parse", imported only when chosen. Each parse(path, progress) yields Items.
IMPORTERS: dict[str, str] = {
    "alfworld": "memp_core.importers.alfworld:parse",
    "react": "memp_core.importers.react:parse",
    "chat": "memp_core.importers.chat:parse",
    "reflexion": "memp_core.importers.reflexion:parse",
    "jsonl": "memp_core.importers.jsonl:parse",
    "otlp": "memp_core.importers.otlp:parse",
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
    actor: Actor,
    fmt: str = "auto",
    source: str | None = None,
    skip_bad: bool = False,
    progress: Progress | None = None,
    on_format: Callable[[str, str], None] | None = None,
    restore: bool = False,
    embedder: Embedder | None = None,
) -> ImportReport:
    """Import ``paths`` in one transaction and report the counts of this call.

    ``restore``: an admin restores a backup as it was (statuses, pins, counts, audit).
    ``embedder``: recomputes unusable embeddings (default: the configured model, loaded
    only if a file holds one).
    """
    actor.require("import files")
    if restore:
        actor.require_person("restore a backup", "admin")
    parser_for(fmt)  # an unknown format fails before anything is read
    report = ImportReport(restored=restore)
    stager = Stager(
        report, source=source, skip_bad=skip_bad,
        dim=embedder.dimension if embedder is not None else EMBEDDING_DIM,
        embedder=lambda: embedder or get_embedder(), on_format=on_format,
    )  # fmt: skip
    try:
        for raw in paths:  # parse and check everything before taking the write lock
            path = Path(raw)
            try:
                stager.stage(_items(fmt, path, progress), fmt, path)
            except ImportFormatError as exc:
                stager.bad(exc)
        started = time.perf_counter()
        with store.transaction() as s:
            Writer(s, report, author=actor.author, restore=restore, source=source).write(
                stager.staged
            )
            if report.trajectories or report.runs or report.procedures:
                store.audit(
                    s, actor.author, "restore" if restore else "import", "import", None,
                    paths=[str(p) for p in paths], format=fmt, counts=report.counts(),
                )  # fmt: skip
        report.write_seconds = time.perf_counter() - started
    finally:
        stager.staged.close()
    return report
