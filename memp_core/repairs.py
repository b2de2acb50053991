"""The heuristic backend's repairs: a script corrected by what one run showed.

A reflection (:meth:`memp_core.heuristic.HeuristicBackend.reflect`) applies them to the
script a failed run followed, or writes a first script from the failure alone
(:func:`from_failure`); an absorb applies the ones a success can teach (where the object
was, the appliance that worked, the lamp's place, locked kinds) to a reflected script. Each
repair reads the run's facts (:mod:`memp_core.sim.transcript`), changes only the lines it is
about, and says what it did in ``notes`` (the revision's rationale).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from memp_core.script_lines import generalise, number
from memp_core.sim.grammar import TRANSFORMS
from memp_core.sim.lesson import NO_REPEAT, OBJ, REC, locked_line, read_lesson, tool_lines
from memp_core.sim.script import FindLine, parse_search
from memp_core.sim.transcript import RunFacts


def from_failure(rf: RunFacts, task_type: str, notes: list[str]) -> list[str]:
    """A first script from a failed run that followed none: what the run saw fail (the
    appliance that did nothing, kinds that would not open, places without the object) and
    what it saw work, counted once; nothing it did not see (a place it never found the
    object in is a miss, not a hint)."""
    lines = generalise(rf, task_type, [rf])
    obj = rf.obj or "object"
    for second in (False, True):
        pattern = r"^find the second " if second else r"^find (?!the second)<object>"
        at = _index(lines, re.compile(pattern))
        if at is None:
            continue
        line = FindLine(f"the second {OBJ}" if second else OBJ, open_closed=rf.found_closed)
        where = rf.found[1:2] if second else list(dict.fromkeys(rf.found[:1] + rf.seen_at))
        line.add(where, found=True)
        if not second:
            line.add([k for k in rf.checked if k not in where], found=False)
        lines[at] = line.render()
    where = list(dict.fromkeys(rf.found[:1] + rf.seen_at))
    empty = [k for k in rf.checked if k not in where]
    for verb, bad in rf.tools_bad.items():
        good = rf.tools_ok.get(verb)
        tail = f": use the {good}." if good else "; the script says not to try it again."
        notes.append(f"The {', '.join(bad)} did not {verb} the {obj} here{tail}")
    for verb, good in rf.tools_ok.items():
        if verb not in rf.tools_bad and good in rf.opened_tools:
            notes.append(f"The {good} worked once opened; the script opens it first.")
    if rf.locked:
        notes.append(
            f"The {', '.join(sorted(rf.locked))} would not open; the script says not to try."
        )
    if where:
        notes.append(f"The {obj} was in the {where[0]}.")
    if empty:
        notes.append(f"It was not in the {', '.join(empty)}; counted as misses.")
    lines = repair_target(lines, rf, notes)
    lines = repair_loop(lines, rf, notes)
    if rf.lamp_before_object:
        notes.append(f"The lamp was used before holding the {obj}: the script takes it first.")
    notes.insert(0, "No procedure was followed; this first one is written from the failure alone.")
    return lines


def _index(lines: list[str], pred: re.Pattern[str]) -> int | None:
    return next((i for i, ln in enumerate(lines) if pred.search(ln)), None)


def repair_tool(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
    verb = rf.task_type
    if verb not in TRANSFORMS:
        return lines
    at = _index(lines, re.compile(rf"^{verb}\b"))
    good, bad = rf.tools_ok.get(verb), rf.tools_bad.get(verb, [])
    known = read_lesson(number(lines), task_type=verb)
    avoid = set(bad) | known.avoid.get(verb, set())
    if good:
        avoid.discard(good)
        opened = good in rf.opened_tools or good in known.open_tools
        new = tool_lines(verb, good, avoid, opened)
        if (
            at is not None
            and lines[at].startswith(new[-1])
            and (not opened or f"open {good}" in lines)
        ):
            return lines
        if bad:
            notes.append(f"The {', '.join(bad)} does not {verb} here: use the {good}.")
        else:
            notes.append(f"The {verb} step needs the {good}; the script now goes there.")
        if good in rf.opened_tools and good not in known.open_tools:
            notes.append(f"The {good} worked once opened; the script opens it first.")
    elif bad:
        new = tool_lines(verb, "", avoid, False)
        if at is not None and lines[at] == new[0]:
            return lines
        notes.append(f"{', '.join(bad)} did not {verb} the {rf.obj or 'object'}; excluded.")
    else:
        return lines
    if at is None:
        take = _index(lines, re.compile(r"^take\b"))
        at = len(lines) if take is None else take + 1
        return lines[:at] + new + lines[at:]
    if NO_REPEAT in lines[at] and NO_REPEAT not in new[-1]:  # a reflection's warning stays
        new[-1] += ("; " if ":" in new[-1] else ": ") + NO_REPEAT
    start = at
    while start > 0 and re.match(r"^(go to|open) (?!<)", lines[start - 1]):
        start -= 1  # the go/open lines of the old appliance go with it
    return lines[:start] + new + lines[at + 1 :]


def repair_hints(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
    """Add the failed run's evidence to the search counts: where the object was, and where
    it was looked for in vain. Counts, not a rewrite: one room does not erase many runs."""
    at = _index(lines, re.compile(r"^find (?:the )?(?!the second|second)<object>", re.I))
    if at is None:
        return lines
    old = parse_search(lines[at])
    new = parse_search(lines[at])
    new.what, new.counted = OBJ, True
    where = list(dict.fromkeys(rf.found[:1] + rf.seen_at))
    empty = [k for k in rf.checked if k not in where]
    new.add(where, found=True)
    new.add(empty, found=False)
    new.open_closed = old.open_closed or rf.found_closed
    if new.render() == lines[at]:
        return lines
    if where:
        notes.append(f"The {rf.obj or 'object'} was in the {where[0]}; counted for next time.")
    if empty:
        notes.append(f"It was looked for in vain in the {', '.join(empty)}; counted as misses.")
    if new.hints[:1] != old.hints[:1] and new.hints:
        notes.append(f"The search now starts at the {new.hints[0]}.")
    if new.open_closed and not old.open_closed:
        notes.append("It was inside a closed place; closed places are now opened.")
    return lines[:at] + [new.render()] + lines[at + 1 :]


def repair_target(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
    if not rf.target_closed or f"open {REC}" in lines:
        return lines
    out: list[str] = []
    for ln in lines:
        if ln.startswith("put "):
            out.append(f"open {REC}")
        out.append(ln)
    notes.append(f"The {rf.target or 'target'} was closed; the script opens it before putting.")
    return out


def repair_loop(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
    if rf.first_loop is None:
        return lines
    ev = next(e for e in rf.events if e.index == rf.first_loop)
    at = _phase_line(lines, rf, ev.index)
    what = f"`{ev.text}`" if ev.text else "an empty action"
    if at is None:
        notes.append(f"It was stuck repeating {what}.")
        return lines
    notes.append(f"It was stuck repeating {what} at step '{lines[at]}'; that step now says")
    notes.append("not to repeat an action that does nothing.")
    if NO_REPEAT not in lines[at]:
        sep = "; " if ":" in lines[at] else ": "
        lines = lines[:at] + [lines[at] + sep + NO_REPEAT] + lines[at + 1 :]
    return lines


def _phase_line(lines: list[str], rf: RunFacts, index: int) -> int | None:
    """The script line the run was working on at step ``index`` (by progress made so far)."""
    took = transformed = False
    for ev in rf.events:
        if ev.index >= index or ev.action is None or not ev.ok:
            continue
        took |= ev.action.verb == "take" and ev.action.obj == rf.obj
        transformed |= ev.action.verb in TRANSFORMS
    if not took:
        pattern = r"^find (?!the second)"
    elif rf.task_type in TRANSFORMS and not transformed:
        pattern = rf"^{rf.task_type}\b"
    elif rf.task_type == "examine":
        pattern = r"^use\b"
    else:
        pattern = r"^put\b"
    return _index(lines, re.compile(pattern, re.I))


def repair_lamp(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
    if rf.task_type != "examine":
        return lines
    lamp = rf.lamp or "desklamp"
    find = _index(lines, re.compile(rf"^find {lamp}\b"))
    use = _index(lines, re.compile(rf"^use {lamp}\b"))
    take = _index(lines, re.compile(r"^take\b"))
    if rf.lamp_at and find is not None:
        line = FindLine.parse(lines[find])
        line.add(rf.lamp_at[:1], found=True)
        lines = lines[:find] + [line.render()] + lines[find + 1 :]
        notes.append(f"The {lamp} was on the {rf.lamp_at[0]}; counted for next time.")
    if rf.lamp_before_object and use is not None and take is not None:
        if use < take:
            lamp_lines = [ln for ln in lines if re.match(rf"^(find|use) {lamp}\b", ln)]
            lines = [ln for ln in lines if ln not in lamp_lines] + lamp_lines
        obj = rf.obj or "object"
        notes.append(f"The {lamp} was used before holding the {obj}: take the {obj} first.")
    return lines


def repair_locked(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
    """Kinds whose closed places would not open: a warning line, so they are not tried."""
    known = read_lesson(number(lines)).locked
    new = set(rf.locked) - known
    if not new:
        return lines
    notes.append(f"The {', '.join(sorted(new))} would not open; the script says not to try.")
    kept = [ln for ln in lines if not ln.startswith("do not open ")]
    return [locked_line(known | new), *kept]


Repair = Callable[[list[str], RunFacts, list[str]], list[str]]

# What a failure corrects, applied in this order.
ON_FAILURE: tuple[Repair, ...] = (
    repair_tool, repair_hints, repair_target, repair_loop, repair_lamp, repair_locked,
)  # fmt: skip
# What a success can teach a reflected script: no loop to break in a run that succeeded.
ON_SUCCESS: tuple[Repair, ...] = (
    repair_hints, repair_tool, repair_target, repair_lamp, repair_locked,
)  # fmt: skip


def repaired(
    lines: list[str], rf: RunFacts, notes: list[str], repairs: Sequence[Repair]
) -> list[str]:
    """``lines`` after each of ``repairs`` in turn, each adding its note to ``notes``."""
    for repair in repairs:
        lines = repair(lines, rf, notes)
    return lines
