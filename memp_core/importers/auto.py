"""``--format auto``: tell the format from the content, say which, then parse with it.

Detection reads only the first 64 KB of a file (or the names in a folder), so it costs
nothing on large logs. It yields a :class:`FormatChosen` item before the chosen parser's
items, so the caller can report the choice and label the records with the real format.
In a folder of mixed files, a file whose format cannot be told (a README, a LICENSE) is
skipped with a warning; a file that looks like a format but does not parse is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from memp_core.errors import ImportFormatError
from memp_core.importers.records import (
    BadRecord,
    FormatChosen,
    ImportWarning,
    Item,
    TrajectoryRecord,
)
from memp_core.importers.source import Progress, expand, head_text, open_text

TRIAL_FILE = re.compile(r"trial_\d{1,9}\.json$", re.I)
REACT_STEP = re.compile(r"^(Thought|Action|Observation)\s+\d+\s*:", re.M)
QUESTION = re.compile(r"^Question:", re.M)
ALFWORLD_ACTION = re.compile(r"^>", re.M)
TASK = re.compile(r"your task is to:", re.I)
OTLP = re.compile(r'^\s*[\[{]\s*\{?\s*"(resourceSpans|resource_spans)"')  # an OTLP trace export
UNKNOWN = (
    "cannot tell the format from the content; pass --format "
    "(alfworld, react, chat, reflexion, jsonl or otlp)"
)
Parser = Callable[[Path, Progress | None], Iterator[Item]]


def detect_folder(path: Path) -> str | None:
    """reflexion for a folder of trial files, jsonl for a memp export, else None."""
    files = [p for p in path.iterdir() if p.is_file()]
    if any(TRIAL_FILE.search(p.name) for p in files):
        return "reflexion"
    for p in sorted(files):
        if p.suffix == ".jsonl" and _first_json(p).get("format") == "memp-jsonl":
            return "jsonl"
    return None


def _first_json(path: Path) -> dict[str, Any]:
    try:
        line = head_text(open_text(path), 4096).splitlines()[0]
        value = json.loads(line)
    except (ImportFormatError, IndexError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def detect(path: Path) -> str:
    """The format of one file, from its first 64 KB."""
    src = open_text(path)
    head = head_text(src)
    start = head.lstrip()[:1]
    if start in ("{", "["):
        first = next((ln for ln in head.splitlines() if ln.strip()), "")
        try:
            line = json.loads(first)
        except (ValueError, RecursionError):
            line = None
        if isinstance(line, dict) and (
            line.get("format") == "memp-jsonl"
            or line.get("type") in ("run", "trajectory", "procedure")
        ):
            return "jsonl"
        if OTLP.search(head):
            return "otlp"
        if TRIAL_FILE.search(path.name) or ('"is_success"' in head and '"name"' in head):
            return "reflexion"
        if '"role"' in head:
            return "chat"
        if TASK.search(head):
            return "alfworld"
        raise ImportFormatError(src.name, None, UNKNOWN)
    if "BEGIN TRIAL" in head or (QUESTION.search(head) and REACT_STEP.search(head)):
        return "react"
    if TASK.search(head) and ALFWORLD_ACTION.search(head):
        return "alfworld"
    if QUESTION.search(head):
        return "react"
    raise ImportFormatError(src.name, None, UNKNOWN)


def each_file(files: list[Path], parse: Callable[[Path], Iterator[Item]]) -> Iterator[Item]:
    """Parse files one by one; a file that fails as a whole becomes one bad record."""
    for file in files:
        try:
            for item in parse(file):
                if isinstance(item, TrajectoryRecord) and item.source_file is None:
                    item.source_file = str(file)
                yield item
        except ImportFormatError as exc:
            yield BadRecord(exc)


def parse(path: Path, progress: Progress | None = None) -> Iterator[Item]:
    from memp_core.importers import parser_for  # the registry imports this module lazily

    if path.is_dir():
        chosen = detect_folder(path)
        if chosen is not None:
            yield FormatChosen(str(path), chosen)
            yield from parser_for(chosen)(path, progress)
            return

        def one(file: Path) -> Iterator[Item]:
            try:
                fmt = detect(file)
            except ImportFormatError as exc:  # a README or LICENSE beside the logs
                yield ImportWarning(str(file), None, f"skipped: {exc.reason}")
                return
            yield FormatChosen(str(file), fmt)
            yield from parser_for(fmt)(file, progress)

        yield from each_file(expand(path), one)
        return
    fmt = detect(path)
    yield FormatChosen(str(path), fmt)
    yield from parser_for(fmt)(path, progress)
