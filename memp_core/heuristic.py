"""The offline backend: deterministic scripts and reflections without any model.

Labelled ``heuristic`` wherever it appears (author and model of what it writes). It reads
runs through :mod:`memp_core.sim.transcript`, so it works on household-sim runs and on real
ALFWorld transcripts alike; ``think:`` steps are thoughts, never actions.

Script lines it writes (one action per line, hints after a colon)::

    1. do not open drawer: it stays shut here
    2. find <object>: check fridge (3/4), countertop (1/1); rarely in cabinet (0/2)
    3. take <object>
    4. go to stoveburner
    5. heat <object> with stoveburner; not microwave (it does nothing here)
    6. go to <receptacle>
    7. put <object> in/on <receptacle>

``<object>`` and ``<receptacle>`` are the task's object and target; appliances, lamps and the
places in search hints stay concrete, because they are the reusable knowledge: where things
were, which appliance worked and which did nothing, what had to be opened first (``open
fridge`` before ``cool``), kinds whose places never opened, the order of the steps. Lines
are worded as :mod:`memp_core.sim.lesson` writes and reads them.
"""

from __future__ import annotations

import re
from collections import Counter

from memp_core.config import Settings
from memp_core.errors import MempError
from memp_core.llm import Backend, Reflection, RunView, ScriptDraft
from memp_core.sim.ending import search_detail
from memp_core.sim.grammar import TRANSFORMS
from memp_core.sim.lesson import NO_REPEAT, OBJ, REC, locked_line, read_lesson, tool_lines
from memp_core.sim.script import FindLine, parse_search
from memp_core.sim.transcript import RunFacts, analyse

_NUM = re.compile(r"^\s*\d+[.)]\s*")


class HeuristicBackend(Backend):
    """Generalises successful runs into scripts; repairs scripts from failed runs."""

    name = "heuristic"
    model = "heuristic"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def write_script(self, task_type: str, runs: list[RunView]) -> ScriptDraft:
        if not runs:
            raise MempError("write_script needs at least one run")
        good = [r for r in runs if r.success]
        used = good or list(runs)
        facts = [analyse(r) for r in used]
        best = min(facts, key=lambda f: (len(f.events), f.first_problem is not None))
        lines = generalise(best, task_type or best.task_type, facts)
        ids = ", ".join(f"#{r.trajectory_id}" for r in used if r.trajectory_id is not None)
        kind = "successful" if good else "unsuccessful (no successful run given)"
        rationale = f"Generalised by the offline heuristic from {len(used)} {kind} run(s)"
        rationale += f" {ids}." if ids else "."
        found = Counter(p for f in facts for p in f.found[:1])
        if found:
            rationale += " Object found in " + ", ".join(f"{p} ({n})" for p, n in found.items())
        tools = {v: t for f in facts for v, t in f.tools_ok.items()}
        if tools:
            rationale += "; " + ", ".join(f"{v} with {t}" for v, t in tools.items())
        return ScriptDraft(number(lines), rationale + ".")

    def reflect(self, failed: RunView, script: str) -> Reflection:
        rf = analyse(failed)
        notes: list[str] = []
        if unnumber(script):
            lines = unnumber(script)
            lines = _repair_tool(lines, rf, notes)
            lines = _repair_hints(lines, rf, notes)
            lines = _repair_target(lines, rf, notes)
            lines = _repair_loop(lines, rf, notes)
            lines = _repair_lamp(lines, rf, notes)
            lines = _repair_locked(lines, rf, notes)
        else:  # no procedure was followed: the failure alone writes the first one
            lines = _from_failure(rf, rf.task_type or failed.task_type, notes)
        where = rf.first_problem
        head = "The run failed"
        if where is not None:
            step = failed.steps[where]
            obs = (step.observation or "").strip()
            head += f" at step {where + 1} (`{step.action.strip()}` -> {obs!r})"
        elif failed.ended:  # the run recorded why it ended: quote it rather than guess
            where = rf.events[-1].index if rf.events else None
            head += f" without a failing action ({failed.ended})"
        elif rf.events:
            # no action failed: say what the steps show it was doing when it stopped
            where = rf.events[-1].index
            head += f" without a failing action: after {len(failed.steps)} steps it "
            head += search_detail(rf)
        if not notes:
            notes.append("No single step explains it; the script is kept and re-checked.")
        return Reflection(number(lines), head + ". " + " ".join(notes), where)

    def absorb(self, script: str, runs: list[RunView]) -> ScriptDraft:
        """Successful runs merged into a script a reflection shaped: the reflection's lines
        stay, the runs add their evidence (where the object was and was not, the appliance
        that worked and whether it had to be opened, the lamp's place, locked kinds)."""
        lines = unnumber(script)
        notes: list[str] = []
        for run in runs:
            rf = analyse(run)
            lines = _repair_hints(lines, rf, notes)
            lines = _repair_tool(lines, rf, notes)
            lines = _repair_target(lines, rf, notes)
            lines = _repair_lamp(lines, rf, notes)
            lines = _repair_locked(lines, rf, notes)
        head = f"Merged {len(runs)} successful run(s) into the reflected script"
        return ScriptDraft(number(lines), head + (": " + " ".join(notes) if notes else "."))


# -- writing ------------------------------------------------------------------------------


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


# -- reflecting ---------------------------------------------------------------------------


def _from_failure(rf: RunFacts, task_type: str, notes: list[str]) -> list[str]:
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
    lines = _repair_target(lines, rf, notes)
    lines = _repair_loop(lines, rf, notes)
    if rf.lamp_before_object:
        notes.append(f"The lamp was used before holding the {obj}: the script takes it first.")
    notes.insert(0, "No procedure was followed; this first one is written from the failure alone.")
    return lines


def _index(lines: list[str], pred: re.Pattern[str]) -> int | None:
    return next((i for i, ln in enumerate(lines) if pred.search(ln)), None)


def _repair_tool(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
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


def _repair_hints(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
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


def _repair_target(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
    if not rf.target_closed or f"open {REC}" in lines:
        return lines
    out: list[str] = []
    for ln in lines:
        if ln.startswith("put "):
            out.append(f"open {REC}")
        out.append(ln)
    notes.append(f"The {rf.target or 'target'} was closed; the script opens it before putting.")
    return out


def _repair_loop(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
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


def _repair_lamp(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
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


def _repair_locked(lines: list[str], rf: RunFacts, notes: list[str]) -> list[str]:
    """Kinds whose closed places would not open: a warning line, so they are not tried."""
    known = read_lesson(number(lines)).locked
    new = set(rf.locked) - known
    if not new:
        return lines
    notes.append(f"The {', '.join(sorted(new))} would not open; the script says not to try.")
    kept = [ln for ln in lines if not ln.startswith("do not open ")]
    return [locked_line(known | new), *kept]
