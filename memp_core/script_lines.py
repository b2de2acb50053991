"""Script lines the heuristic backend writes from runs: numbering, search lines, the plan.

:func:`generalise` turns the facts of the best run (and the counts of all of a group's runs)
into numbered, general steps: ``<object>`` and ``<receptacle>`` for the task's own object and
target, appliances and places concrete (see :mod:`memp_core.heuristic`). Worded as
:mod:`memp_core.sim.lesson` writes and reads them.
"""

from __future__ import annotations

import re

from memp_core.sim.grammar import TRANSFORMS
from memp_core.sim.lesson import OBJ, REC, locked_line, tool_lines
from memp_core.sim.script import FindLine
from memp_core.sim.transcript import RunFacts

_NUM = re.compile(r"^\s*\d+[.)]\s*")


def number(lines: list[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


def unnumber(script: str) -> list[str]:
    return [_NUM.sub("", ln).strip() for ln in script.splitlines() if ln.strip()]


def _search(what: str, runs: list[RunFacts], second: bool, opens: bool) -> FindLine:
    """The find line for the first (or second) object, with counts over ``runs``.

    Runs that never saw the object contribute where they looked; when no run saw it at all
    (a script from failures only), the line just copies where the runs went, uncounted.
    """
    line = FindLine(what, open_closed=opens)
    if not any(f.found or f.seen_at for f in runs):
        line.counted = False
        line.add([k for f in runs for k in f.checked], found=True)
        return line
    for f in runs:
        where = f.found[1:2] if second else f.found[:1] + f.seen_at
        if second and not where:
            continue
        line.add(where, found=True)
        if not second:
            line.add([k for k in f.checked if k not in where], found=False)
    return line


def _lamp_search(lamp: str, runs: list[RunFacts]) -> FindLine:
    line = FindLine(lamp)
    for f in runs:
        line.add(f.lamp_at, found=True)
    return line


def generalise(best: RunFacts, task_type: str, runs: list[RunFacts]) -> list[str]:
    """Lines from the effective actions of ``best``; hints merged over ``runs``."""
    opens = any(f.found_closed for f in runs)
    first = _search(OBJ, runs, False, opens)
    second = _search(f"the second {OBJ}", runs, True, opens)
    if not second.stats:
        second.stats = {k: list(v) for k, v in first.stats.items()}
    lamp = best.lamp or "desklamp"
    lamp_line = _lamp_search(lamp, runs)
    bad = {v: {k for f in runs for k in f.tools_bad.get(v, [])} for v in TRANSFORMS}
    opened = {k for f in runs for k in f.opened_tools}
    locked = {k for f in runs for k in f.locked}
    lines: list[str] = [locked_line(locked)] if locked else []
    takes = 0
    holding = False
    for ev in best.events:
        act = ev.action
        if act is None or not ev.ok:
            continue
        if act.verb == "take" and act.obj == best.obj:
            lines += [(second if takes else first).render(), f"take {OBJ}"]
            takes += 1
            holding = True
        elif act.verb in TRANSFORMS and holding:
            lines += tool_lines(act.verb, act.place, bad[act.verb], act.place in opened)
        elif act.verb == "put" and act.place == best.target and holding:
            lines.append(f"go to {REC}")
            if best.target_closed:
                lines.append(f"open {REC}")
            lines.append(f"put {OBJ} in/on {REC}")
            holding = False
        elif act.verb == "use" and holding:
            lines += [lamp_line.render(), f"use {lamp}"]
    return _complete(lines, task_type, first, second, lamp_line, bad)


def _complete(
    lines: list[str], task_type: str, first: FindLine, second: FindLine, lamp_line: FindLine,
    bad: dict[str, set[str]],
) -> list[str]:  # fmt: skip
    """Add the parts a run never reached, without knowledge it did not show."""
    lamp = lamp_line.what
    if not any(ln.startswith("take") for ln in lines):
        lines = [first.render(), f"take {OBJ}"] + lines
    if task_type in TRANSFORMS and not any(ln.startswith(task_type) for ln in lines):
        at = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("take")), len(lines))
        lines.insert(at, f"{task_type} {OBJ}: try the appliances one by one")
    if task_type in TRANSFORMS and bad.get(task_type):
        at = next(i for i, ln in enumerate(lines) if ln.startswith(task_type))
        if " with " not in lines[at] and "not" not in lines[at]:
            lines[at] = tool_lines(task_type, "", bad[task_type], False)[0]
    if task_type == "examine" and not any(ln.startswith("use") for ln in lines):
        lines += [lamp_line.render(), f"use {lamp}"]
    if task_type != "examine" and not any(ln.startswith("put") for ln in lines):
        lines += [f"go to {REC}", f"put {OBJ} in/on {REC}"]
    if task_type == "puttwo" and sum(ln.startswith("put") for ln in lines) < 2:
        lines += [second.render(), f"take {OBJ}"]
        lines += [f"go to {REC}", f"put {OBJ} in/on {REC}"]
    return lines
