"""Key facts of a task sentence: task type, target object, receptacle, tool.

ALFWorld phrases its six task types in a handful of templates ("heat some egg and put it in
garbagecan", "put a hot egg in garbagecan", ...). The importers, the household world, the
builders and the `facts` retrieval policy all use this one parser.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

TASK_TYPES = ("put", "clean", "heat", "cool", "examine", "puttwo")

# The receptacle/appliance that each transformation needs (ALFWorld's rules).
TOOL_OF_TYPE = {"clean": "sinkbasin", "heat": "microwave", "cool": "fridge", "examine": "desklamp"}

_ART = r"(?:a |an |some |the )?"
_IN = r"(?:in|on|in/on)"  # ALFWorld writes "in", "on" and literally "in/on"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("puttwo", re.compile(rf"^(?:put|place) two (?P<obj>.+?) {_IN} {_ART}(?P<rec>.+)$")),
    ("puttwo", re.compile(rf"^find two (?P<obj>.+?) and put them {_IN} {_ART}(?P<rec>.+)$")),
    ("examine", re.compile(rf"^look at {_ART}(?P<obj>.+?) under {_ART}(?P<tool>.+)$")),
    ("examine", re.compile(rf"^examine {_ART}(?P<obj>.+?) with {_ART}(?P<tool>.+)$")),
    ("clean", re.compile(rf"^clean {_ART}(?P<obj>.+?) and put it {_IN} {_ART}(?P<rec>.+)$")),
    ("heat", re.compile(rf"^heat {_ART}(?P<obj>.+?) and put it {_IN} {_ART}(?P<rec>.+)$")),
    ("cool", re.compile(rf"^cool {_ART}(?P<obj>.+?) and put it {_IN} {_ART}(?P<rec>.+)$")),
    ("clean", re.compile(rf"^put {_ART}clean (?P<obj>.+?) {_IN} {_ART}(?P<rec>.+)$")),
    ("heat", re.compile(rf"^put {_ART}hot (?P<obj>.+?) {_IN} {_ART}(?P<rec>.+)$")),
    ("cool", re.compile(rf"^put {_ART}(?:cool|cold) (?P<obj>.+?) {_IN} {_ART}(?P<rec>.+)$")),
    ("put", re.compile(rf"^(?:put|place) {_ART}(?P<obj>.+?) {_IN} {_ART}(?P<rec>.+)$")),
    ("put", re.compile(rf"^find {_ART}(?P<obj>.+?) and put it {_IN} {_ART}(?P<rec>.+)$")),
]


@dataclass(frozen=True)
class TaskFacts:
    task_type: str = ""
    object: str = ""
    receptacle: str = ""
    tool: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


def normalise_task(text: str) -> str:
    """Lower-case task sentence without 'Your task is to:' and trailing punctuation."""
    t = text.strip().lower()
    t = re.sub(r"^.*your task is to:\s*", "", t, flags=re.S)
    t = t.splitlines()[0] if t else t
    return re.sub(r"\s+", " ", t).strip(" .!")


def extract_facts(task: str) -> TaskFacts:
    """Parse an ALFWorld-style task sentence; unknown sentences give empty facts."""
    t = normalise_task(task)
    for task_type, pattern in _PATTERNS:
        m = pattern.match(t)
        if m:
            groups = m.groupdict()
            obj = _singular(groups.get("obj") or "")
            rec = _strip_id(groups.get("rec") or "")
            tool = _strip_id(groups.get("tool") or TOOL_OF_TYPE.get(task_type, ""))
            return TaskFacts(task_type, obj, rec, tool)
    return TaskFacts()


def task_type_of(task: str) -> str:
    return extract_facts(task).task_type


def _strip_id(name: str) -> str:
    """'countertop 1' -> 'countertop' (ALFWorld numbers instances)."""
    return re.sub(r"\s+\d+$", "", name.strip())


def _singular(name: str) -> str:
    return _strip_id(name)
