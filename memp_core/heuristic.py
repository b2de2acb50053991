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
are worded as :mod:`memp_core.sim.lesson` writes and reads them. :mod:`memp_core.script_lines`
writes them from runs; reflections and absorbs correct them with :mod:`memp_core.repairs`.
"""

from __future__ import annotations

from collections import Counter

from memp_core.config import Settings
from memp_core.errors import MempError
from memp_core.llm import Backend, Reflection, RunView, ScriptDraft
from memp_core.repairs import ON_FAILURE, ON_SUCCESS, from_failure, repaired
from memp_core.script_lines import generalise, number, unnumber
from memp_core.sim.ending import search_detail
from memp_core.sim.transcript import analyse


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
            lines = repaired(unnumber(script), rf, notes, ON_FAILURE)
        else:  # no procedure was followed: the failure alone writes the first one
            lines = from_failure(rf, rf.task_type or failed.task_type, notes)
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
            lines = repaired(lines, analyse(run), notes, ON_SUCCESS)
        head = f"Merged {len(runs)} successful run(s) into the reflected script"
        return ScriptDraft(number(lines), head + (": " + " ".join(notes) if notes else "."))
