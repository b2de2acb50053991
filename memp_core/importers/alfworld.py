"""ALFWorld transcripts as ALFWorld, ReAct and Reflexion write them.

Grammar: a room description, ``Your task is to: ...``, then ``> action`` lines each followed
by its observation; ``> think: ...`` is a thought (answered ``OK.``). Reflexion ends a failed
transcript with ``STATUS: FAIL`` and then ``New plan: ...`` (kept as the reflection).
Accepted containers: a text file with one or more transcripts, or JSON objects/lists whose
leaves are transcript strings (``react_prompts_alfworld.json``).

Transcripts without a STATUS line (few-shot demonstrations) have an unknown outcome
(``success`` None, ``facts["outcome"]`` says why): ALFWorld prints no verdict in the
transcript, and a demonstration is a success only when a person says so
(``memp import --label success`` or the Trajectories page).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memp_core.errors import ImportFormatError
from memp_core.facts import TASK_TYPES, extract_facts
from memp_core.importers.checks import MAX_STEPS, MAX_TEXT
from memp_core.importers.jsonstream import json_kind, json_members
from memp_core.importers.records import BadRecord, Item, StepRecord, TrajectoryRecord
from memp_core.importers.source import (
    Progress,
    iter_lines,
    json_path,
    open_text,
    type_name,
)

TASK = re.compile(r"your task is to:\s*(.*)", re.I)
ROOM = re.compile(r"^(you are in the middle of a room|-= welcome to textworld)", re.I)
SEPARATOR = re.compile(r"^(#{3,}|={3,}|-{3,}|environment\s*#\s*\d+\s*:?)$", re.I)
SUCCESS = {"ok", "success", "succeeded", "pass", "passed", "win", "won", "done", "true"}
FAILURE = {"fail", "failed", "failure", "lose", "lost", "false"}


@dataclass
class _Transcript:
    start: int
    preamble: list[str] = field(default_factory=list)
    task: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    last: str = ""  # "action" | "obs" | "think" | ""
    status: str | None = None
    plans: list[str] = field(default_factory=list)
    # Set when the transcript breaks a limit: reported at once, the rest of it is skipped
    # unread (a million-step transcript fails in a moment, not after gigabytes).
    refused: str | None = None
    reported: bool = False


def parse(path: Path, progress: Progress | None = None) -> Iterator[Item]:
    src = open_text(path)
    kind = json_kind(src)
    if kind is not None:  # one member at a time: memory bounded by the largest transcript
        empty = True
        for key, value in json_members(src, progress):
            empty = False
            yield from parse_value(value, src.name, (key,))
        if empty:
            yield BadRecord(ImportFormatError(src.name, "$", f"empty {kind}"))
        return
    found = 0
    for item in parse_lines(iter_lines(src, progress), src.name):
        found += isinstance(item, TrajectoryRecord | BadRecord)
        yield item
    if not found:
        raise ImportFormatError(src.name, None, _NONE_FOUND)


_NONE_FOUND = (
    "no ALFWorld transcript found (expected a 'Your task is to: ...' line then '> action' lines)"
)


def parse_value(value: Any, name: str, parts: tuple[str | int, ...] = ()) -> Iterator[Item]:
    """Walk JSON objects/lists; every leaf must be a transcript string."""
    if isinstance(value, dict):
        if not value:
            yield BadRecord(ImportFormatError(name, json_path(parts), "empty object"))
        for key, sub in value.items():
            yield from parse_value(sub, name, (*parts, str(key)))
    elif isinstance(value, list):
        if not value:
            yield BadRecord(ImportFormatError(name, json_path(parts), "empty array"))
        for i, sub in enumerate(value):
            yield from parse_value(sub, name, (*parts, i))
    elif isinstance(value, str):
        where = json_path(parts)
        lines = enumerate(value.splitlines(), start=1)
        records = list(parse_lines(lines, name, where_prefix=where))
        if not any(isinstance(r, TrajectoryRecord) for r in records):
            yield BadRecord(ImportFormatError(name, where, _NONE_FOUND))
        for rec in records:
            if isinstance(rec, TrajectoryRecord) and parts:
                rec.facts["name"] = str(parts[-1])
                _type_from_name(rec, str(parts[-1]))
            yield rec
    else:
        reason = f"expected a transcript string, got {type_name(value)}"
        yield BadRecord(ImportFormatError(name, json_path(parts), reason))


def _type_from_name(rec: TrajectoryRecord, name: str) -> None:
    """Keys like ``react_put_1`` name the task type when the sentence is not a known template."""
    if rec.task_type:
        return
    hits = [t for t in re.split(r"[^a-z]+", name.lower()) if t in TASK_TYPES]
    if len(hits) == 1:
        rec.task_type = hits[0]
        rec.facts["task_type"] = hits[0]
        rec.facts["task_type_from"] = "key"


def parse_lines(
    lines: Iterable[tuple[int, str]], name: str, where_prefix: str = ""
) -> Iterator[Item]:
    cur: _Transcript | None = None
    for lineno, line in lines:
        text = line.strip()
        if SEPARATOR.match(text):
            if cur is not None:
                yield from _finish(cur, name, where_prefix)
            cur = None
            continue
        if cur is not None and cur.status is not None:
            if _plan_line(cur, text):
                continue
            yield from _finish(cur, name, where_prefix)
            cur = None
        if cur is None:
            if not text:
                continue
            cur = _Transcript(start=lineno)
        if _starts_new(cur, text):
            yield from _finish(cur, name, where_prefix)
            cur = _Transcript(start=lineno)
        if cur.refused is None:
            _feed(cur, line, text)
        elif text.upper().startswith("STATUS:"):
            cur.status = text.split(":", 1)[1].strip()  # the end of the skipped transcript
        if cur.refused is not None and not cur.reported:
            cur.reported = True
            yield BadRecord(ImportFormatError(name, _where(cur, where_prefix), cur.refused))
    if cur is not None:
        yield from _finish(cur, name, where_prefix)


def _plan_line(cur: _Transcript, text: str) -> bool:
    """After ``STATUS:``: take ``New plan:`` lines and their continuations."""
    if text.lower().startswith("new plan:"):
        cur.plans.append(text[len("new plan:") :].strip())
        return True
    if not text:
        cur.last = "gap"
        return True
    if cur.plans and cur.last != "gap" and not ROOM.match(text):
        cur.plans[-1] = f"{cur.plans[-1]} {text}".strip()
        return True
    return False


def _starts_new(cur: _Transcript, text: str) -> bool:
    """A room description that is not an observation begins the next transcript."""
    return cur.task is not None and cur.last != "action" and bool(ROOM.match(text))


def _feed(cur: _Transcript, line: str, text: str) -> None:
    if text.upper().startswith("STATUS:"):
        cur.status = text.split(":", 1)[1].strip()
        cur.last = ""
        return
    if cur.task is None:
        m = TASK.search(text)
        if m:
            cur.task = m.group(1).strip()
        elif ROOM.match(text):
            cur.preamble = [text]
        elif text:
            cur.preamble.append(text)
        return
    if line.startswith(">"):
        action = line[1:].strip()
        if action.lower().startswith("think:"):
            cur.thoughts.append(action[len("think:") :].strip())
            cur.last = "think"
            return
        if len(cur.steps) >= MAX_STEPS:
            cur.refused = f"'steps': more than {MAX_STEPS:,} steps in one transcript"
            return
        thought = "\n".join(cur.thoughts) or None
        cur.thoughts = []
        cur.steps.append(StepRecord(thought=thought, action=action))
        cur.last = "action"
        return
    if not text:
        cur.last = "" if cur.last != "action" else cur.last
        return
    if cur.last == "action":
        cur.steps[-1].observation = text
        cur.last = "obs"
    elif cur.last == "obs":
        observation = f"{cur.steps[-1].observation}\n{text}"
        if len(observation) > MAX_TEXT:
            cur.refused = f"'steps[{len(cur.steps) - 1}].observation': over {MAX_TEXT:,} characters"
            return
        cur.steps[-1].observation = observation
    elif cur.last != "think":  # a think's "OK." carries nothing
        cur.preamble.append(text)


def _where(cur: _Transcript, where_prefix: str) -> str | int:
    return f"{where_prefix} line {cur.start}" if where_prefix else cur.start


def _finish(cur: _Transcript, name: str, where_prefix: str) -> Iterator[Item]:
    where = _where(cur, where_prefix)
    if cur.refused is not None:
        return  # reported when the limit was crossed
    if cur.task is None:
        if cur.steps or cur.status is not None:
            yield BadRecord(
                ImportFormatError(name, where, "transcript has no 'Your task is to:' line")
            )
        return  # text outside the grammar (headers, notes) is ignored
    if not cur.task:
        yield BadRecord(ImportFormatError(name, where, "empty task after 'Your task is to:'"))
        return
    steps = cur.steps
    if cur.thoughts:  # a final thought with no action after it
        steps = [*steps, StepRecord(thought="\n".join(cur.thoughts))]
    facts: dict[str, Any] = dict(extract_facts(cur.task).as_dict())
    if cur.preamble:
        facts["initial_observation"] = "\n".join(cur.preamble)
    success: bool | None = None
    reward: float | None = None
    if cur.status is None:
        facts["outcome"] = "unknown: no STATUS line"
    else:
        verdict = cur.status.strip(" .!").lower()
        if verdict not in SUCCESS | FAILURE:
            reason = f"unknown STATUS value {cur.status!r} (expected OK or FAIL)"
            yield BadRecord(ImportFormatError(name, where, reason))
            return
        success = verdict in SUCCESS
        reward = 1.0 if success else 0.0
        facts["outcome"] = f"STATUS: {cur.status}"
    yield TrajectoryRecord(
        task=cur.task,
        success=success,
        steps=steps,
        where=where,
        task_type=facts.get("task_type", ""),
        environment="alfworld",
        reward=reward,
        facts=facts,
        reflections=[p for p in cur.plans if p],
    )
