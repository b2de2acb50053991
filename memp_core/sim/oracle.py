"""The ceiling of the learning bench: memory that knows what the simulator knows.

The ``oracle`` condition serves the test tasks procedures written from the world's own truth
instead of from experience: where the scene generator puts the object (its placement weights
over receptacle kinds, as counts per 100), which appliance does the job in this household
and which does nothing, which appliances must be opened first, which kinds are locked, that
timer lamps need the object in hand before the lamp is switched on. They are written by the
one lesson writer (:mod:`memp_core.sim.lesson`) and read by the same agent through the same
retrieval as every other condition.

No memory built from runs can tell the agent more than this (it cannot know which of nine
cabinets holds the object today), so the oracle's test figure is the most any update policy
can reach with this agent at this patience; reflect's distance to it is what learning leaves
on the table. It is a measuring instrument of the benchmark: its procedures live only in the
bench's throw-away database, authored ``household-sim/oracle``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from memp_core.build import embed_revisions, group_identity
from memp_core.embeddings import Embedder
from memp_core.facts import extract_facts
from memp_core.landing import PlannedBuild, add_procedure
from memp_core.models import ProcedureRevision
from memp_core.sim.catalog import LAMP_PLACES, ROOM_OBJECTS, ROOM_RECEPTACLES
from memp_core.sim.household import Household, household
from memp_core.sim.lesson import OBJ, SECOND, Lesson
from memp_core.sim.priors import APPLIANCES_FOR
from memp_core.sim.script import FindLine
from memp_core.sim.tasks import Task, make_scene
from memp_core.store import Store
from memp_core.vocab import Kind, Origin, Status

AUTHOR = "household-sim/oracle"
SCALE = 100  # placement weights become counts "found n of SCALE"


def truth_lesson(tasks: Sequence[Task], home: Household) -> Lesson:
    """What the world knows about these tasks (one task sentence in one kind of room)."""
    first = tasks[0]
    lesson = Lesson(first.task_type, locked=set(home.locked), no_repeat=True)
    where = FindLine(OBJ, open_closed=True)
    for task in tasks:
        weights = {
            k: w
            for k, w in ROOM_OBJECTS[task.room][task.obj].items()
            if k not in home.locked and k != task.target  # never starts there (tasks.py)
        }
        total = sum(weights.values()) or 1
        for kind, w in weights.items():
            entry = where.stats.setdefault(kind, [0, 0])
            entry[0] += round(SCALE * w / total)
            entry[1] += SCALE
    lesson.where = where
    if first.task_type == "puttwo":
        lesson.second = FindLine(SECOND, {k: list(v) for k, v in where.stats.items()})
    if first.task_type == "examine":
        total = sum(LAMP_PLACES.values())
        lesson.lamp = FindLine(first.lamp, {k: [round(SCALE * w / total), SCALE]
                                            for k, w in LAMP_PLACES.items()})  # fmt: skip
        lesson.take_before_use = home.lamps_timed
    tools = home.appliance(first.task_type, first.room)
    if tools:
        tool = tools[0]
        lesson.tools[first.task_type] = tool
        # "does nothing here" only of an appliance this kind of room has: a kitchen has no
        # bathtubbasin, and saying it does nothing would mislead a bathroom task reading it
        present = {spec.kind for spec in ROOM_RECEPTACLES[first.room]}
        others = (set(APPLIANCES_FOR.get(first.task_type, ())) & present) - {tool}
        if others:
            lesson.avoid[first.task_type] = others
        lesson.open_tools = {tool} & set(home.open_first)
    return lesson


def oracle_store(
    seeds: Sequence[tuple[int, str]], house: int, embedder: Embedder, store: Store
) -> Store:
    """``store`` holding one approved truth procedure per task sentence and kind of room of
    ``seeds`` (scene seed, task type) in household ``house`` (one sentence may be a kitchen
    task and a bathroom task, and the two wash in different places)."""
    home = household(house)
    by_text: dict[tuple[str, str], list[Task]] = defaultdict(list)
    for seed, task_type in seeds:
        task = make_scene(seed, task_type, house).task
        by_text[task.text, task.room].append(task)
    plans: list[PlannedBuild] = []
    for (text, _), tasks in by_text.items():
        lesson = truth_lesson(tasks, home)
        task_type, slug = group_identity(text, tasks[0].task_type)
        rev = ProcedureRevision(
            procedure_id=0, kind=Kind.script.value, task_text=text, script=lesson.render(),
            origin=Origin.build.value, author=AUTHOR, model="simulator-truth",
            rationale="Written from the simulator's truth: the learning bench's ceiling.",
            evidence_trajectory_ids=[], facts=extract_facts(text).as_dict(),
        )  # fmt: skip
        plans.append(PlannedBuild(slug, text, task_type, rev))
    embed_revisions(embedder, [p.revision for p in plans])
    with store.transaction() as s:
        for plan in plans:
            add_procedure(s, plan, status=Status.approved)
    return store
