"""What an agent takes from retrieved procedures: the knowledge, adapted to its own task.

A procedure arrives as script text (written by any backend, so it is read by keywords, not
by an exact format) or as the verbatim steps of a past run. Either way the agent keeps what
transfers to a new room and a new object: where objects of the kind were found, which
appliance did the heating/cooling/cleaning, where the lamp stood, whether the target had to
be opened, the order of the steps, and warnings such as "do not repeat".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memp_core.facts import extract_facts
from memp_core.llm import RunView, StepView
from memp_core.sim.grammar import LAMP_TYPES, TRANSFORMS
from memp_core.sim.script import FindLine, kinds_in, parse_search
from memp_core.sim.transcript import analyse

_FIND = re.compile(r"\b(find|search|look for|locate|check)\b")
_NEGATION = re.compile(r"\b(not|other than|except|instead of)\b")
_NUM = re.compile(r"^\s*(?:step\s*)?\d+[.):]\s*")


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
                len(self.lamp), int(self.no_repeat))  # fmt: skip


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
        if recall.script.strip():
            _read_script(guide, recall, same_object)
        elif recall.steps:
            _read_steps(guide, recall, same_object)
        if guide.size() != before and recall.revision_id is not None:
            guide.used.append(recall.revision_id)
        if guide.followed is None and same_object and recall.task_type == facts.task_type:
            guide.followed = recall.revision_id
    return guide


def _split_negated(text: str) -> tuple[list[str], list[str]]:
    """Kinds named positively and kinds named after a negation ('not stoveburner')."""
    m = _NEGATION.search(text)
    if not m:
        return kinds_in(text), []
    return kinds_in(text[: m.start()]), kinds_in(text[m.end() :])


def _read_script(guide: Guide, recall: Recall, same_object: bool) -> None:
    old = extract_facts(recall.task_text)
    lines = [_NUM.sub("", ln).strip().lower() for ln in recall.script.splitlines()]
    take_at = use_at = None
    for i, line in enumerate(ln for ln in lines if ln):
        if "<" not in line:  # a script naming its own task's things: read them as roles
            line = _roles(line, old.object, old.receptacle)
        verbs = [v for v in TRANSFORMS if re.search(rf"\b{v}\b", line)]
        lamp = next((lp for lp in LAMP_TYPES if lp in line), "")
        if "repeat" in line and re.search(r"\b(not|never|don't|avoid)\b", line):
            guide.no_repeat = True
        if verbs:
            good, bad = _split_negated(line)
            for verb in verbs:
                if good:
                    guide.tools.setdefault(verb, good[0])
                guide.avoid.setdefault(verb, set()).update(bad)
        elif lamp and re.search(r"\b(use|turn on|switch on)\b", line):
            use_at = i if use_at is None else use_at
        elif lamp and _FIND.search(line):
            merge_counts(guide.lamp, parse_search(line).stats)
        elif _FIND.search(line) and "<object>" in line:
            _read_find(guide, line, same_object)
        elif re.search(r"\bopen\b.*<receptacle>", line):
            guide.open_target = True
        if re.search(r"\b(take|pick up)\b", line) and take_at is None:
            take_at = i
    if take_at is not None and use_at is not None and take_at < use_at:
        guide.take_before_use = True


def _read_find(guide: Guide, line: str, same_object: bool) -> None:
    """'find <object>: check A (3/4); rarely in X (0/2); open closed ones', or free text."""
    found = parse_search(line)
    guide.open_closed |= found.open_closed
    if same_object:
        merge_counts(guide.second if "second" in line else guide.where, found.stats)
    else:
        merge_counts(guide.other, found.stats)


def _roles(line: str, obj: str, rec: str) -> str:
    if obj:
        line = re.sub(rf"\b{re.escape(obj)}s?\b", "<object>", line)
    if rec and not _FIND.search(line):  # in a search line the place is a place to look
        line = re.sub(rf"\b{re.escape(rec)}s?\b", "<receptacle>", line)
    return line


def _read_steps(guide: Guide, recall: Recall, same_object: bool) -> None:
    steps = [
        StepView(str(s.get("action") or ""), str(s.get("observation") or "")) for s in recall.steps
    ]
    rf = analyse(RunView(recall.task_text, recall.task_type, True, steps))
    where = FindLine("<object>")
    where.add(rf.found[:1] + rf.seen_at, found=True)
    if same_object:
        where.add([k for k in rf.checked if k not in where.stats], found=False)
        merge_counts(guide.where, where.stats)
        merge_counts(guide.second, {k: [1, 1] for k in rf.found[1:2]})
    else:
        merge_counts(guide.other, where.stats)
    guide.open_closed |= rf.found_closed
    for verb, kind in rf.tools_ok.items():
        guide.tools.setdefault(verb, kind)
    for verb, kinds in rf.tools_bad.items():
        guide.avoid.setdefault(verb, set()).update(kinds)
    merge_counts(guide.lamp, {k: [1, 1] for k in rf.lamp_at})
    guide.open_target |= rf.target_closed
    if rf.lamp_at and not rf.lamp_before_object:
        guide.take_before_use = True
