"""OpenAI-style chat logs: ``role``/``content`` message lists.

Accepted: a JSON message list, a JSON list of conversations, objects holding a message list
(Memp's ``alfworld_examples.json``: ``{"task": ..., "example": [...]}``), or JSONL with one
conversation per line. The first user message is the task (``Your task is to: ...`` when
present); assistant ``Thought:`` / ``Action:`` parts and the following ``Observation:``
messages become steps. Outcome fields (``success``, ``is_success``, ``won``, ``reward``)
decide success; without one the outcome is unknown (``success`` None, and
``facts["outcome"]`` says why): few-shot demonstrations carry no verdict, and only a person
labels them successes (``memp import --label success`` or the Trajectories page).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from memp_core.errors import ImportFormatError
from memp_core.facts import TASK_TYPES, extract_facts
from memp_core.importers.checks import MAX_STEPS
from memp_core.importers.jsonstream import json_kind, json_members
from memp_core.importers.records import BadRecord, Item, StepRecord, TrajectoryRecord
from memp_core.importers.source import (
    Progress,
    TextFile,
    head_text,
    iter_lines,
    json_path,
    load_json,
    open_text,
    parse_json,
    type_name,
)

MESSAGE_KEYS = ("messages", "example", "conversation", "conversations", "dialog", "chat", "history")
MARKER = re.compile(r"^[ \t]*(Thought|Action|Observation)[ \t]*\d*[ \t]*:[ \t]?", re.M | re.I)
TASK = re.compile(r"your task is to:\s*(.*)", re.I)
OUTCOME_KEYS = ("success", "is_success", "won", "reward", "score")
Parts = tuple[str | int, ...]


def parse(path: Path, progress: Progress | None = None) -> Iterator[Item]:
    src = open_text(path)
    first = next((ln for ln in head_text(src).splitlines() if ln.strip()), "")
    if _is_json_line(first):
        found = 0
        for lineno, line in iter_lines(src, progress):
            if not line.strip():
                continue
            try:
                value = parse_json(line, src.name, lineno - 1)
            except ImportFormatError as exc:
                yield BadRecord(exc)
                continue
            for item in parse_value(value, src.name, (), prefix=f"line {lineno} "):
                found += isinstance(item, TrajectoryRecord)
                yield item
        if not found:
            raise ImportFormatError(src.name, None, "no conversation found")
        return
    if json_kind(src) == "array":
        yield from _parse_array(src, progress)
        return
    yield from parse_value(load_json(src, progress), src.name, ())


def _parse_array(src: TextFile, progress: Progress | None) -> Iterator[Item]:
    """A list of conversations, one at a time (memory bounded by the largest); a list whose
    first element is a message is one conversation, read whole."""
    members = json_members(src, progress)
    first = next(members, None)
    if first is None or _is_message(first[1]):
        rest = [value for _, value in members]
        yield from parse_value([first[1], *rest] if first else [], src.name, ())
        return
    for i, sub in chain([first], members):
        if isinstance(sub, list | dict):
            yield from parse_value(sub, src.name, (i,))
        else:
            reason = f"expected a conversation or a message, got {type_name(sub)}"
            yield BadRecord(ImportFormatError(src.name, json_path((i,)), reason))


def _is_json_line(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict | list)
    except (ValueError, RecursionError):
        return False


def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and "role" in value


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_message(m) for m in value)


def parse_value(value: Any, name: str, parts: Parts, prefix: str = "") -> Iterator[Item]:
    where = prefix + json_path(parts)
    if _is_message_list(value):
        yield conversation(value, {}, name, parts, prefix)
    elif isinstance(value, list):
        if not value:
            yield BadRecord(ImportFormatError(name, where, "empty array, no conversation"))
        for i, sub in enumerate(value):
            if isinstance(sub, list | dict):
                yield from parse_value(sub, name, (*parts, i), prefix)
            else:
                reason = f"expected a conversation or a message, got {type_name(sub)}"
                yield BadRecord(ImportFormatError(name, prefix + json_path((*parts, i)), reason))
    elif isinstance(value, dict):
        key = next((k for k in MESSAGE_KEYS if isinstance(value.get(k), list)), None)
        if key is None:
            key = next((k for k, v in value.items() if _is_message_list(v)), None)
        if key is None:
            reason = (
                "object holds no message list (expected 'messages' or a list of {role, content})"
            )
            yield BadRecord(ImportFormatError(name, where, reason))
            return
        meta = {k: v for k, v in value.items() if k != key}
        yield conversation(value[key], meta, name, (*parts, key), prefix)
    else:
        reason = f"expected a conversation (array or object), got {type_name(value)}"
        yield BadRecord(ImportFormatError(name, where, reason))


def _text(msg: dict[str, Any]) -> str | None:
    """A message's text: a string, OpenAI content parts, or tool calls; None if malformed."""
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if content is None:
        calls = msg.get("tool_calls") or []
        if isinstance(calls, list) and all(isinstance(c, dict) for c in calls):
            return "\n".join(
                f"Action: {json.dumps(c.get('function', c), ensure_ascii=False)}" for c in calls
            )
        return None
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        if len(texts) == len(content) and all(isinstance(t, str) for t in texts):
            return "\n".join(texts)  # type: ignore[arg-type]
    return None


def conversation(messages: Any, meta: dict[str, Any], name: str, parts: Parts, prefix: str) -> Item:
    def bad(sub: Parts, reason: str) -> BadRecord:
        return BadRecord(ImportFormatError(name, prefix + json_path(parts + sub), reason))

    if not _is_message_list(messages):
        return bad((), "expected a non-empty list of {role, content} messages")
    texts: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        role, text = msg.get("role"), _text(msg)
        if not isinstance(role, str):
            return bad((i, "role"), f"'role' must be a string, got {type_name(role)}")
        if text is None:
            return bad(
                (i, "content"), f"'content' must be text, got {type_name(msg.get('content'))}"
            )
        texts.append((role.lower(), text))
    first_user = next((i for i, (r, _) in enumerate(texts) if r == "user"), None)
    if first_user is None:
        return bad((), "conversation has no user message (the task)")
    opening = texts[first_user][1].strip()
    m = TASK.search(opening)
    task = (m.group(1).strip().splitlines() or [""])[0] if m else opening
    if not task:
        return bad((first_user, "content"), "empty task")
    context = [opening[: m.start()].strip()] if m else []
    if sum(role == "assistant" for role, _ in texts) > MAX_STEPS:  # before building steps
        return bad((), f"more than {MAX_STEPS:,} assistant messages; at most {MAX_STEPS:,} steps")
    steps = _steps(texts[first_user + 1 :], context)
    return _record(task, steps, context, meta, prefix + json_path(parts), alfworld=m is not None)


def _steps(messages: list[tuple[str, str]], context: list[str]) -> list[StepRecord]:
    steps: list[StepRecord] = []
    thoughts: list[str] = []
    for role, text in messages:
        if role == "system":
            continue
        if role == "assistant":
            for kind, value in _split(text):
                if kind == "thought":
                    thoughts.append(value)
                elif kind == "action":
                    steps.append(StepRecord(thought="\n".join(thoughts) or None, action=value))
                    thoughts = []
                elif steps:
                    _observe(steps[-1], value)
            continue
        value = MARKER.sub("", text, count=1).strip() if MARKER.match(text) else text.strip()
        if thoughts:  # the environment answered a thought that named no action
            steps.append(StepRecord(thought="\n".join(thoughts)))
            thoughts = []
        if steps:
            _observe(steps[-1], value)
        elif value:
            context.append(value)
    if thoughts:
        steps.append(StepRecord(thought="\n".join(thoughts)))
    return steps


def _observe(step: StepRecord, value: str) -> None:
    step.observation = value if step.observation is None else f"{step.observation}\n{value}"


def _split(text: str) -> list[tuple[str, str]]:
    """Assistant text -> [(thought|action|observation, value)]; unmarked text is an action."""
    marks = list(MARKER.finditer(text))
    if not marks:
        return [("action", text.strip())] if text.strip() else []
    out: list[tuple[str, str]] = []
    lead = text[: marks[0].start()].strip()
    if lead:
        out.append(("thought", lead))
    for i, mk in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.append((mk.group(1).lower(), text[mk.end() : end].strip()))
    return out


def _record(
    task: str,
    steps: list[StepRecord],
    context: list[str],
    meta: dict[str, Any],
    where: str,
    alfworld: bool,
) -> TrajectoryRecord:
    facts: dict[str, Any] = dict(extract_facts(task).as_dict())
    task_type = facts.get("task_type", "")
    hint = meta.get("task_type", meta.get("task"))
    if not task_type and isinstance(hint, str) and hint in TASK_TYPES:
        task_type = facts["task_type"] = hint
    if context and any(context):
        facts["initial_observation"] = "\n".join(c for c in context if c)
    scalars = {k: v for k, v in meta.items() if not isinstance(v, list | dict)}
    if scalars:
        facts["meta"] = scalars
    success: bool | None = None
    reward: float | None = None
    key = next((k for k in OUTCOME_KEYS if k in meta), None)
    value = meta.get(key) if key else None
    if isinstance(value, bool) or (isinstance(value, int | float) and math.isfinite(value)):
        success = bool(value > 0) if not isinstance(value, bool) else value
        reward = float(value)
        facts["outcome"] = f"{key}: {value}"
    else:
        facts["outcome"] = "unknown: no outcome field"
    model = meta.get("agent_model", meta.get("model"))
    return TrajectoryRecord(
        task=task,
        success=success,
        steps=steps,
        where=where,
        task_type=task_type,
        environment="alfworld" if alfworld else "chat",
        agent_model=model if isinstance(model, str) else "",
        reward=reward,
        facts=facts,
    )
