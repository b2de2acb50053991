"""The dashboard, page by page, with Streamlit's AppTest on real SQLite databases.

Every page renders on an empty and on a filled database; the review actions change the
database; an edit conflict keeps the typed text; a viewer cannot approve.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from memp_core.models import (
    AuditEvent,
    Procedure,
    ProcedureRevision,
    Retrieval,
    Run,
    Step,
    Trajectory,
)
from memp_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages import the top-level `ui` package, as `streamlit run` does
    sys.path.insert(0, str(ROOT))

PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
XSS_TASK = "put a <script>alert(1)</script> mug in <img src=x onerror=alert(1)> cabinet"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TYPES = ("put", "clean", "heat", "cool", "examine", "puttwo")
TASKS = {
    "put": "put a mug in cabinet",
    "clean": "put a clean cloth in drawer",
    "heat": "heat some egg and put it in garbagecan",
    "cool": "cool some apple and put it in fridge",
    "examine": "look at bowl under the desklamp",
    "puttwo": "put two pillow in sofa",
}


# -- a filled database, written row by row (no engine needed) ---------------------------------


def _steps(success: bool, task_type: str, loop: bool) -> list[Step]:
    steps = [
        Step(index=0, thought="I need to find the target first.", action="go to countertop 1",
             observation="On the countertop 1, you see a mug 1."),
        Step(index=1, action="take mug 1 from countertop 1",
             observation="You pick up the mug 1 from the countertop 1."),
    ]  # fmt: skip
    if loop:
        steps += [
            Step(index=2, action="go to cabinet 1", observation="The cabinet 1 is closed."),
            Step(index=3, action="go to cabinet 1", observation="The cabinet 1 is closed."),
        ]
    if success:
        steps.append(
            Step(index=len(steps), action="put mug 1 in/on cabinet 1",
                 observation="You put the mug 1 in/on the cabinet 1.")
        )  # fmt: skip
    return steps


def _revision(pid: int, parent: int | None, origin: str, script: str, at: datetime,
              **kw: object) -> ProcedureRevision:  # fmt: skip
    return ProcedureRevision(
        procedure_id=pid, parent_revision_id=parent, origin=origin, script=script,
        author=kw.pop("author", "heuristic"), model=kw.pop("model", "heuristic"),
        created_at=at, **kw,
    )  # fmt: skip


def fill_database(store: Store) -> dict[str, int]:
    """A small database with every kind of row the pages show; returns ids tests use."""
    ids: dict[str, int] = {}
    with store.transaction() as s:
        runs = [
            Run(name="reflect seed 0", kind="experiment", agent="heuristic",
                agent_model="heuristic-strong", environment="household-sim",
                build_policy="script", retrieve_policy="query", update_policy="reflect", k=3,
                seed=0, n_tasks=24, n_groups=4, status="done", source="simulator",
                created_at=T0),
            Run(name="reflect seed 1", kind="experiment", agent="heuristic",
                agent_model="heuristic-strong", environment="household-sim",
                build_policy="script", retrieve_policy="query", update_policy="reflect", k=3,
                seed=1, n_tasks=24, n_groups=4, status="done", source="simulator",
                created_at=T0 + timedelta(hours=1)),
            Run(name="reflexion trials", kind="import", agent="reflexion", agent_model="gpt-3",
                environment="alfworld", status="done", source="import:reflexion:logs",
                created_at=T0 + timedelta(hours=2)),
        ]  # fmt: skip
        s.add_all(runs)
        s.flush()
        procs = []
        for i, t in enumerate(TYPES[:4]):
            p = Procedure(key=f"{t}-1", title=f"{TASKS[t]}", task_type=t,
                          status=["approved", "pending_review", "deprecated", "rejected"][i],
                          use_count=[10, 4, 6, 1][i], success_count=[8, 2, 1, 0][i],
                          created_at=T0)  # fmt: skip
            s.add(p)
            procs.append(p)
        s.flush()
        revs: list[ProcedureRevision] = []
        for p in procs:
            r = _revision(p.id, None, "build", f"1. Find the <object> for {p.task_type}.\n"
                          "2. Take it.\n3. Put it in the <receptacle>.", T0,
                          task_text=p.title, rationale="built from 2 successful runs")  # fmt: skip
            s.add(r)
            s.flush()
            revs.append(r)
            p.current_revision_id = r.id
        put = procs[0]
        child = _revision(put.id, revs[0].id, "reflection",
                          "1. Find the <object>: check countertops, then cabinets.\n"
                          "2. Take it.\n3. Open the <receptacle> if closed.\n"
                          "4. Put it in the <receptacle>.", T0 + timedelta(minutes=2),
                          rationale="Step 3 looped on a closed cabinet: open it first.",
                          evidence_trajectory_ids=[1])  # fmt: skip
        s.add(child)
        s.flush()
        put.current_revision_id = child.id
        ids.update(approved=put.id, pending=procs[1].id, rev_root=revs[0].id, rev_child=child.id)
        # Trajectories: 2 simulator runs x 4 groups x 6 tasks, 1 import run x 3 trials x 6.
        n = 0
        for run in runs:
            sim = run.kind != "import"
            for g in range(4 if sim else 3):
                for j, t in enumerate(TYPES):
                    success = (j + g + (run.seed or 0)) % 3 != 0 if sim else j < 2 + g
                    at = run.created_at + timedelta(minutes=g, seconds=j)
                    traj = Trajectory(
                        task=TASKS[t], task_type=t, environment=run.environment,
                        source=run.source.split(":logs")[0], agent_model=run.agent_model,
                        success=success, run_id=run.id, group_index=g, created_at=at,
                        procedure_revision_id=child.id if t == "put" and sim else None,
                    )  # fmt: skip
                    store.add_trajectory(s, traj, _steps(success, t, loop=not success))
                    n += 1
                    if sim:
                        s.add(Retrieval(run_id=run.id, trajectory_id=traj.id, query=traj.task,
                                        policy="query", k=3, created_at=at, results=[
                                            {"procedure_id": put.id, "revision_id": child.id,
                                             "score": 0.91, "title": put.title,
                                             "task_type": "put", "matched": {"task_type": "put"}}
                                        ]))  # fmt: skip
            if sim:
                run.metrics = [
                    {"index": g, "tasks": 6, "successes": sum(
                        (j + g + (run.seed or 0)) % 3 != 0 for j in range(6)),
                     "success_rate": sum((j + g + (run.seed or 0)) % 3 != 0
                                         for j in range(6)) / 6,
                     "mean_steps": 4.0 - 0.3 * g}
                    for g in range(4)
                ]  # fmt: skip
                run.finished_at = run.created_at + timedelta(minutes=4)
        hostile = Trajectory(task=XSS_TASK, task_type="put", environment="household-sim",
                             source="simulator", agent_model="heuristic-weak", success=False,
                             created_at=T0 + timedelta(hours=3))  # fmt: skip
        store.add_trajectory(s, hostile, [
            Step(index=0, thought="<script>alert(1)</script>",
                 action="go to <img src=x onerror=alert(1)>",
                 observation="<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>"),
        ])  # fmt: skip
        s.flush()
        ids["hostile"] = hostile.id
        ids["trajectories"] = n + 1
        s.add(
            AuditEvent(
                actor="alice",
                action="approve",
                object_type="procedure",
                object_id=put.id,
                created_at=T0 + timedelta(minutes=2, seconds=30),
            )
        )
        s.add(AuditEvent(actor="bob", action="reject", object_type="procedure",
                         object_id=procs[3].id, detail={"reason": "too vague"},
                         created_at=T0 + timedelta(minutes=3)))  # fmt: skip
    return ids


@pytest.fixture(name="filled")
def filled_fixture(store: Store) -> dict[str, int]:
    return fill_database(store)


def run_page(path: str) -> AppTest:
    """Open app.py, then switch to the page, as a user clicking the sidebar does."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    if path != "app.py":
        at.switch_page(path).run()
    return at


def errors_of(at: AppTest) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


# -- every page renders -----------------------------------------------------------------------


def test_there_are_nine_pages() -> None:
    assert len(PAGES) >= 8, PAGES


@pytest.mark.parametrize("path", ["app.py", *PAGES])
def test_page_renders_on_an_empty_database(path: str, store: Store) -> None:
    at = run_page(path)
    assert not at.exception, at.exception


TITLES = {
    "app.py": "Memp Studio",
    "pages/1_Trajectories.py": "Trajectories",
    "pages/2_Procedures.py": "Procedures",
    "pages/3_Lineage.py": "Lineage",
    "pages/4_Learning_curves.py": "Learning curves",
    "pages/5_Retrieval_playground.py": "Retrieval playground",
    "pages/6_Experiments.py": "Experiments",
    "pages/7_Import_Export.py": "Import / Export",
    "pages/8_Audit_log.py": "Audit log",
}


@pytest.mark.parametrize("path", ["app.py", *PAGES])
def test_page_renders_on_a_filled_database(path: str, filled: dict[str, int]) -> None:
    at = run_page(path)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == TITLES[path]
