"""What an agent takes from retrieved procedures: the knowledge, adapted to its own task.

A procedure arrives as script text or as the verbatim steps of a past run. Either way it is
read into a :class:`~memp_core.sim.lesson.Lesson` (:func:`lesson_of`: scripts through
:func:`~memp_core.sim.lesson.read_lesson`, the one reader) and the agent keeps what transfers
to a new room and a new object: where objects of the kind were found, which appliance did
the heating/cooling/cleaning here and which did nothing, where the lamp stood, what had to be
opened, the order of the steps, and warnings (kinds that never open, "do not repeat").

:func:`served` is how the learning bench's ablations hand memory over with parts removed:
the procedure is read, parts are dropped and it is written back as script text, which the
agent then reads like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from memp_core.facts import extract_facts
from memp_core.llm import RunView, StepView
from memp_core.sim.lesson import OBJ, SECOND, Lesson, read_lesson
from memp_core.sim.script import FindLine
from memp_core.sim.transcript import analyse


@dataclass(frozen=True)
class Recall:
    """One retrieved procedure revision, as an agent is handed it."""

    task_text: str
    task_type: str = ""
    script: str = ""
    steps: tuple[dict[str, Any], ...] = ()
    revision_id: int | None = None
    score: float = 0.0

    def as_text(self) -> str:
        """The procedure as a prompt shows it (script, else the recorded actions)."""
        if self.script.strip():
            return f"Task: {self.task_text}\n{self.script.strip()}"
        acts = [f"> {s.get('action')}\n{s.get('observation', '')}" for s in self.steps]
        return f"Task: {self.task_text}\n" + "\n".join(a for a in acts if a.strip())


Counts = dict[str, list[int]]  # kind -> [found, looked]


@dataclass
class Guide:
    """Knowledge read from memory. Empty when there is no memory."""

    where: Counts = field(default_factory=dict)  # the object: same-object procedures, summed
    second: Counts = field(default_factory=dict)  # puttwo: where the second one was
    other: Counts = field(default_factory=dict)  # the same counts for other objects
    open_closed: bool = False  # memory says the object hides in closed places
    tools: dict[str, str] = field(default_factory=dict)  # verb -> appliance kind
    avoid: dict[str, set[str]] = field(default_factory=dict)
    lamp: Counts = field(default_factory=dict)
    open_target: bool = False
    no_repeat: bool = False
    take_before_use: bool = False
    open_tools: set[str] = field(default_factory=set)  # appliances opened before use
    locked: set[str] = field(default_factory=set)  # kinds that never open here
    used: list[int] = field(default_factory=list)  # revision ids that contributed
    # The procedure for this very kind of task (same type, same object), if one was served:
    # the one a failure is reflected into. Hints from other procedures are borrowed, not
    # followed, so another object's failure never rewrites their counts.
    followed: int | None = None

    @property
    def hints(self) -> list[str]:
        """Kinds memory points to, best evidence first (for display and tests)."""
        own = [k for k, (f, _) in sorted(self.where.items(), key=lambda kv: -kv[1][0]) if f]
        return own + [k for k, (f, _) in self.other.items() if f and k not in own]

    def size(self) -> tuple[int, ...]:
        return (len(self.where), len(self.other), len(self.tools), int(self.open_target),
                len(self.lamp), int(self.no_repeat), len(self.avoid), len(self.open_tools),
                len(self.locked), int(self.take_before_use), int(self.open_closed))  # fmt: skip

    def absorb(self, lesson: Lesson, same_object: bool) -> None:
        """Add what one procedure teaches. Where to look counts fully for the same object
        and as ``other`` (weaker) evidence for other objects; the rest is about the room."""
        if lesson.where is not None:
            merge_counts(self.where if same_object else self.other, lesson.where.stats)
        if lesson.second is not None:
            merge_counts(self.second if same_object else self.other, lesson.second.stats)
        if lesson.lamp is not None:
            merge_counts(self.lamp, lesson.lamp.stats)
        self.open_closed |= lesson.open_closed
        for verb, kind in lesson.tools.items():
            self.tools.setdefault(verb, kind)
        for verb, kinds in lesson.avoid.items():
            self.avoid.setdefault(verb, set()).update(kinds)
        self.open_target |= lesson.open_target
        self.open_tools |= lesson.open_tools
        self.take_before_use |= lesson.take_before_use
        self.locked |= lesson.locked
        self.no_repeat |= lesson.no_repeat


def merge_counts(into: Counts, counts: Counts) -> None:
    for kind, (found, looked) in counts.items():
        entry = into.setdefault(kind, [0, 0])
        entry[0] += found
        entry[1] += looked


def read_guide(task: str, recalls: Sequence[Recall]) -> Guide:
    """Merge recalls, best first. Where to look comes from procedures about the same object
    (other objects' places are weaker hints), how to act from procedures of the same type."""
    facts = extract_facts(task)
    guide = Guide()

    def rank(r: Recall) -> tuple[bool, bool]:
        return extract_facts(r.task_text).object != facts.object, r.task_type != facts.task_type

    for recall in sorted(recalls, key=rank):
        before = guide.size()
        same_object = extract_facts(recall.task_text).object == facts.object
        guide.absorb(lesson_of(recall), same_object)
        if guide.size() != before and recall.revision_id is not None:
            guide.used.append(recall.revision_id)
        if guide.followed is None and same_object and recall.task_type == facts.task_type:
            guide.followed = recall.revision_id
    return guide


def lesson_of(recall: Recall) -> Lesson:
    """What a retrieved procedure teaches: its script read by the one reader, else what its
    recorded steps show."""
    if recall.script.strip():
        return read_lesson(recall.script, recall.task_text, recall.task_type)
    if recall.steps:
        return _steps_lesson(recall)
    return Lesson(recall.task_type)


def served(recall: Recall, parts: frozenset[str] | None) -> Recall:
    """``recall`` as memory serves it with only ``parts`` of its lesson (None: as it is)."""
    if parts is None:
        return recall
    script = lesson_of(recall).keep(parts).render()
    return replace(recall, script=script or "(nothing)", steps=())


def _steps_lesson(recall: Recall) -> Lesson:
    steps = [
        StepView(str(s.get("action") or ""), str(s.get("observation") or "")) for s in recall.steps
    ]
    rf = analyse(RunView(recall.task_text, recall.task_type, True, steps))
    out = Lesson(recall.task_type or rf.task_type)
    out.where = FindLine(OBJ)
    out.where.add(rf.found[:1] + rf.seen_at, found=True)
    out.where.add([k for k in rf.checked if k not in out.where.stats], found=False)
    if rf.found[1:2]:
        out.second = FindLine(SECOND, {k: [1, 1] for k in rf.found[1:2]})
    out.open_closed = rf.found_closed
    out.tools = dict(rf.tools_ok)
    out.avoid = {v: set(k) for v, k in rf.tools_bad.items()}
    if rf.lamp_at:
        out.lamp = FindLine(rf.lamp or "desklamp", {k: [1, 1] for k in rf.lamp_at})
    out.open_target = rf.target_closed
    out.open_tools = set(rf.opened_tools)
    out.locked = set(rf.locked)
    out.take_before_use = bool(rf.lamp_at) and not rf.lamp_before_object
    return out
