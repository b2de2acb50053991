"""What a procedure teaches: one reader (and one writer) for script text.

A script arrives as text written by any backend (the heuristic builder and reflector, an
LLM, a person), so it is read by keywords, not by an exact format. :func:`read_lesson` turns
it into a :class:`Lesson`, the knowledge an agent can carry to a new room, in five parts:

- ``locations``: where the object (a second one, the lamp) was found, with counts;
- ``tools``: which appliance does the change here (and which do not);
- ``opening``: what must be opened first (an appliance, the target, closed places);
- ``order``: the order of the steps (take the object before switching the lamp on);
- ``warnings``: what fails and must not be tried again (child-locked kinds, repeating an
  action that did nothing).

The household agent reads memory only through this function (via :mod:`memp_core.sim.guide`);
:meth:`Lesson.summary` is the one-line "what this procedure teaches" shown to people, from
the same reading. :meth:`Lesson.render` writes a lesson back as a script in the heuristic
backend's wording, and :meth:`Lesson.keep` drops parts: the learning bench's ablations serve
memory rewritten that way, so the agent reads the ablated text exactly as any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from memp_core.facts import extract_facts
from memp_core.sim.grammar import LAMP_TYPES, TRANSFORMS
from memp_core.sim.script import FindLine, kinds_in, parse_search

PARTS = ("locations", "tools", "opening", "order", "warnings")
OBJ, REC = "<object>", "<receptacle>"
SECOND = f"the second {OBJ}"
NO_REPEAT = "if it does nothing, do not repeat it"
NOTHING_HERE = "it does nothing here"

_FIND = re.compile(r"\b(find|search|look for|locate|check)\b")
_NEGATION = re.compile(r"\b(not|other than|except|instead of)\b")
_LOCKED = re.compile(r"\b(do not|don't|never|cannot|can't)\s+open\b|\blocked\b|\bstays? shut\b")
_NUM = re.compile(r"^\s*(?:step\s*)?\d+[.):]\s*")
_OPEN = re.compile(r"^open\s+(?:the\s+)?([a-z]+)")


@dataclass
class Lesson:
    """The knowledge one procedure hands an agent; empty parts teach nothing."""

    task_type: str = ""
    where: FindLine | None = None  # locations: the object
    second: FindLine | None = None  # locations: puttwo's second object
    lamp: FindLine | None = None  # locations: the lamp
    tools: dict[str, str] = field(default_factory=dict)  # verb -> appliance kind
    avoid: dict[str, set[str]] = field(default_factory=dict)  # tools: kinds that do not
    open_closed: bool = False  # opening: the object hides in closed places
    open_tools: set[str] = field(default_factory=set)  # opening: appliances opened before use
    open_target: bool = False  # opening: the target is opened before putting
    take_before_use: bool = False  # order: take the object, then switch the lamp on
    locked: set[str] = field(default_factory=set)  # warnings: kinds that never open here
    no_repeat: bool = False  # warnings: an action that did nothing is not repeated

    def keep(self, parts: set[str] | frozenset[str]) -> Lesson:
        """This lesson with only ``parts`` (names from :data:`PARTS`) left."""
        out = Lesson(self.task_type)
        if "locations" in parts:
            out.where, out.second, out.lamp = self.where, self.second, self.lamp
            if out.where is not None:  # the line keeps its place; its opening note does not
                out.where = replace(out.where, open_closed=False)
        elif self.where is not None and "opening" in parts:
            out.where = FindLine(OBJ, open_closed=self.where.open_closed)
        if "tools" in parts:
            out.tools, out.avoid = dict(self.tools), {v: set(k) for v, k in self.avoid.items()}
        if "opening" in parts:
            out.open_closed, out.open_tools = self.open_closed, set(self.open_tools)
            out.open_target = self.open_target
            if out.where is not None:
                out.where = replace(out.where, open_closed=self.open_closed)
        if "order" in parts:
            out.take_before_use = self.take_before_use
        if "warnings" in parts:
            out.locked, out.no_repeat = set(self.locked), self.no_repeat
        return out

    @property
    def empty(self) -> bool:
        return self.summary() == NOTHING

    def summary(self) -> str:
        """One line: what this procedure teaches (locations, tools, opening, order, warnings)."""
        out: list[str] = []
        for label, line in (("finds it", self.where), ("a second one", self.second),
                            ("the lamp", self.lamp)):  # fmt: skip
            if line is not None and line.hints:
                out.append(f"{label}: " + ", ".join(_entry(line, k) for k in line.hints[:3]))
        for verb in TRANSFORMS:
            tool, bad = self.tools.get(verb), sorted(self.avoid.get(verb, ()))
            if tool or bad:
                text = f"{verb}s with the {tool}" if tool else f"does not {verb} with"
                out.append(text + (f" (not {', '.join(bad)})" if tool and bad else
                                   f" {', '.join(bad)}" if bad else ""))  # fmt: skip
        opens = sorted(self.open_tools) + ["the target"] * self.open_target
        opens += ["closed places"] * self.open_closed
        if opens:
            out.append("opens " + ", ".join(opens) + " first")
        if self.take_before_use:
            out.append("takes the object before switching the lamp on")
        if self.locked:
            out.append(", ".join(sorted(self.locked)) + " never open")
        if self.no_repeat:
            out.append("does not repeat what did nothing")
        return "; ".join(out) or NOTHING

    def render(self) -> str:
        """The lesson as a numbered script in the heuristic backend's wording."""
        lines: list[str] = []
        if self.locked:
            lines.append(locked_line(self.locked))
        if self.where is not None:
            lines.append(_find_text(self.where))
        lamp = ([_find_text(self.lamp)] if self.lamp else []) + (
            [f"use {self.lamp.what}"] if self.lamp and self.take_before_use else []
        )
        if self.lamp and not self.take_before_use:  # no known order: the lamp comes first
            lines += lamp
            lamp = []
        if self.take_before_use or self.tools or self.avoid or self.open_target:
            lines.append(f"take {OBJ}")
        for verb in TRANSFORMS:
            if verb in self.tools or verb in self.avoid:
                tool = self.tools.get(verb, "")
                lines += tool_lines(verb, tool, self.avoid.get(verb, set()),
                                    tool in self.open_tools)  # fmt: skip
        opened = set(self.tools.values())
        lines += [f"open {k}" for k in sorted(self.open_tools - opened)]
        lines += lamp
        if self.open_target:
            lines += [f"go to {REC}", f"open {REC}", f"put {OBJ} in/on {REC}"]
        if self.second is not None:
            lines.append(_find_text(self.second))
        if self.no_repeat:
            lines.append(f"any step: {NO_REPEAT}")
        return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


NOTHING = "nothing it can use"


def _entry(line: FindLine, kind: str) -> str:
    found, looked = line.stats[kind]
    return f"{kind} {found}/{looked}" if line.counted else kind


def _find_text(line: FindLine) -> str:
    return line.render() if line.stats or line.open_closed else f"find {line.what}"


def tool_lines(verb: str, tool: str, avoid: set[str], open_first: bool) -> list[str]:
    """The lines of a change: go to the appliance, open it if it must be, use it; the
    appliances that did nothing are named after 'not' (a warning the reader keeps)."""
    bad = ", ".join(sorted(avoid - {tool}))
    if not tool:
        return [f"{verb} {OBJ}: try the appliances one by one, not {bad}"] if bad else []
    note = f"; not {bad} ({NOTHING_HERE})" if bad else ""
    opening = [f"open {tool}"] if open_first else []
    return [f"go to {tool}", *opening, f"{verb} {OBJ} with {tool}{note}"]


def locked_line(kinds: set[str]) -> str:
    names = ", ".join(sorted(kinds))
    return f"do not open {names}: {'they stay' if len(kinds) > 1 else 'it stays'} shut here"


def read_lesson(script: str, task_text: str = "", task_type: str = "") -> Lesson:
    """What ``script`` teaches. ``task_text`` is the task it was written for: a free-text
    script that names its own object and target reads them as ``<object>``/``<receptacle>``."""
    old = extract_facts(task_text)
    out = Lesson(task_type or old.task_type)
    lines = [_NUM.sub("", ln).strip().lower() for ln in script.splitlines()]
    take_at = use_at = None
    for i, line in enumerate(ln for ln in lines if ln):
        if "<" not in line:
            line = _roles(line, old.object, old.receptacle)
        verbs = [v for v in TRANSFORMS if re.search(rf"\b{v}\b", line)]
        lamp = next((lp for lp in LAMP_TYPES if lp in line), "")
        if "repeat" in line and re.search(r"\b(not|never|don't|avoid)\b", line):
            out.no_repeat = True
        if _LOCKED.search(line):
            out.locked.update(kinds_in(line))
        elif verbs:
            good, bad = _split_negated(line)
            for verb in verbs:
                if good:
                    out.tools.setdefault(verb, good[0])
                out.avoid.setdefault(verb, set()).update(k for k in bad if k not in good[:1])
        elif lamp and re.search(r"\b(use|turn on|switch on)\b", line):
            use_at = i if use_at is None else use_at
        elif lamp and _FIND.search(line):
            out.lamp = _merged(out.lamp, parse_search(line), lamp)
        elif _FIND.search(line) and OBJ in line:
            found = parse_search(line)
            out.open_closed |= found.open_closed
            if "second" in line:
                out.second = _merged(out.second, found, SECOND)
            else:
                out.where = _merged(out.where, found, OBJ)
        elif re.search(rf"\bopen\b.*{REC}", line):
            out.open_target = True
        elif m := _OPEN.match(line):
            out.open_tools.update(kinds_in(m.group(0)))
        if re.search(r"\b(take|pick up)\b", line) and take_at is None:
            take_at = i
    out.avoid = {v: k for v, k in out.avoid.items() if k}
    out.take_before_use = take_at is not None and use_at is not None and take_at < use_at
    return out


def _merged(into: FindLine | None, line: FindLine, what: str) -> FindLine:
    if into is None:
        return FindLine(what, {k: list(v) for k, v in line.stats.items()}, line.open_closed,
                        line.counted)  # fmt: skip
    for kind, (found, looked) in line.stats.items():
        entry = into.stats.setdefault(kind, [0, 0])
        entry[0] += found
        entry[1] += looked
    into.open_closed |= line.open_closed
    return into


def _split_negated(text: str) -> tuple[list[str], list[str]]:
    """Kinds named positively and kinds named after a negation ('not stoveburner')."""
    m = _NEGATION.search(text)
    if not m:
        return kinds_in(text), []
    return kinds_in(text[: m.start()]), kinds_in(text[m.end() :])


def _roles(line: str, obj: str, rec: str) -> str:
    if obj:
        line = re.sub(rf"\b{re.escape(obj)}s?\b", OBJ, line)
    if rec and not _FIND.search(line):  # in a search line the place is a place to look
        line = re.sub(rf"\b{re.escape(rec)}s?\b", REC, line)
    return line
