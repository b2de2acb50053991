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

from memp_core.actor import Actor
from memp_core.build import embed_revisions
from memp_core.embeddings import Embedder
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


def _succeeds(task: int, group: int, seed: int | None) -> bool:
    """Success grows with the group index, differently per seed (so bands have width)."""
    return task < 2 + group - (seed or 0) % 2


def _revision(pid: int, parent: int | None, origin: str, script: str, at: datetime,
              **kw: object) -> ProcedureRevision:  # fmt: skip
    return ProcedureRevision(
        procedure_id=pid, parent_revision_id=parent, origin=origin, script=script,
        author=kw.pop("author", "heuristic"), model=kw.pop("model", "heuristic"),
        created_at=at, **kw,
    )  # fmt: skip


def fill_database(store: Store, embedder: Embedder | None = None) -> dict[str, int]:
    """A small database with every kind of row the pages show; returns ids tests use.

    With an embedder, revisions get real embeddings so retrieval by query finds them.
    """
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
        if embedder is not None:
            embed_revisions(embedder, [*revs, child])
        ids.update(approved=put.id, pending=procs[1].id, rev_root=revs[0].id, rev_child=child.id)
        # Trajectories: 2 simulator runs x 4 groups x 6 tasks, 1 import run x 3 trials x 6.
        n = 0
        for run in runs:
            sim = run.kind != "import"
            for g in range(4 if sim else 3):
                for j, t in enumerate(TYPES):
                    success = _succeeds(j, g, run.seed) if sim else j < 2 + g
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
                    {"index": g, "tasks": 6,
                     "successes": sum(_succeeds(j, g, run.seed) for j in range(6)),
                     "success_rate": sum(_succeeds(j, g, run.seed) for j in range(6)) / 6,
                     "mean_steps": 9.0 - 1.2 * g + (run.seed or 0)}
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


def id_input(at: AppTest, label: str):  # noqa: ANN201 (AppTest's NumberInput)
    """The number input that opens one object (its key changes with its default)."""
    return next(n for n in at.number_input if n.label == label)


def errors_of(at: AppTest) -> list[str]:
    return [e.value for e in at.exception] + [e.value for e in at.error]


# -- every page renders -----------------------------------------------------------------------


def test_every_page_is_in_the_navigation_and_nothing_else_is() -> None:
    from ui.common import NAV

    assert sorted(path for path, _, _ in NAV if path != "app.py") == PAGES


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
    "pages/9_Agents.py": "Agents",
}


@pytest.mark.parametrize("path", ["app.py", *PAGES])
def test_page_renders_on_a_filled_database(path: str, filled: dict[str, int]) -> None:
    at = run_page(path)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == TITLES[path]


# -- review actions change the database -------------------------------------------------------

PROCS = "pages/2_Procedures.py"


@pytest.fixture(name="memory_filled")
def memory_filled_fixture(store: Store, embedder: Embedder) -> dict[str, int]:
    """The filled database with real embeddings (edits embed their new revision)."""
    return fill_database(store, embedder)


def open_procedure(pid: int) -> AppTest:
    at = run_page(PROCS)
    at.selectbox(key="procs_status").set_value("(all)").run()
    id_input(at, "Procedure id").set_value(pid).run()
    assert not at.exception, at.exception
    return at


def test_approve_button_approves_the_pending_procedure(
    store: Store, filled: dict[str, int]
) -> None:
    at = open_procedure(filled["pending"])
    at.text_input(key=f"procs_comment_{filled['pending']}").set_value("looks right")
    at.button(key="procs_approve").click().run()
    assert not at.exception, at.exception
    assert store.get(Procedure, filled["pending"]).status == "approved"
    event = store.audit_events(limit=1)[0]
    assert (event.action, event.object_id, event.actor) == ("approve", filled["pending"],
                                                           "human:local")  # fmt: skip
    assert any("Approved" in s.value for s in at.success)


def test_reject_needs_a_reason_and_then_rejects(store: Store, filled: dict[str, int]) -> None:
    pid = filled["pending"]
    at = open_procedure(pid)
    at.button(key="procs_reject").click().run()
    assert any("reason" in e.value for e in at.error)
    assert store.get(Procedure, pid).status == "pending_review"
    at.text_input(key=f"procs_reason_{pid}").set_value("too vague to follow")
    at.button(key="procs_reject").click().run()
    assert store.get(Procedure, pid).status == "rejected"
    assert store.audit_events(limit=1)[0].detail["comment"] == "too vague to follow"


def test_edit_saves_a_child_revision_with_the_comment(
    store: Store, memory_filled: dict[str, int]
) -> None:
    pid = memory_filled["approved"]
    at = open_procedure(pid)
    script = "1. Find the <object>.\n2. Open the <receptacle>.\n3. Put it in."
    at.text_area(key=f"procs_edit_text_{pid}").set_value(script).run()
    assert any("your edit" in c.value for c in at.code)  # the diff preview
    at.text_input(key=f"procs_edit_comment_{pid}").set_value("shorter")
    at.button(key="procs_save").click().run()
    assert not at.exception, at.exception
    proc = store.get(Procedure, pid)
    rev = store.current_revision(proc)
    assert (rev.origin, rev.script, rev.rationale) == ("human_edit", script, "shorter")
    assert rev.parent_revision_id == memory_filled["rev_child"]
    assert rev.author == "human:local"


def test_rollback_adds_a_revision_copying_the_old_one(store: Store, filled: dict[str, int]) -> None:
    pid = filled["approved"]
    at = open_procedure(pid)
    target = next(o for o in at.selectbox(key=f"procs_rb_target_{pid}").options
                  if o.startswith(f"revision {filled['rev_root']} "))  # fmt: skip
    at.selectbox(key=f"procs_rb_target_{pid}").set_value(target).run()
    at.button(key="procs_rollback").click().run()
    assert not at.exception, at.exception
    rev = store.current_revision(store.get(Procedure, pid))
    root = store.get(ProcedureRevision, filled["rev_root"])
    assert rev.origin == "rollback"
    assert rev.script == root.script
    assert rev.parent_revision_id == filled["rev_child"]
    assert len(store.revisions_of(pid)) == 3


def test_edit_conflict_is_refused_and_keeps_the_typed_text(
    store: Store, memory_filled: dict[str, int], embedder: Embedder
) -> None:
    from memp_core.review import edit

    pid = memory_filled["approved"]
    at = open_procedure(pid)
    mine = "1. My careful rewrite.\n2. Done."
    at.text_area(key=f"procs_edit_text_{pid}").set_value(mine).run()
    # Someone else saves first, from the same revision.
    theirs = edit(store, pid, actor=Actor("bob", "reviewer"), script="1. Bob's version.",
                  comment="bob", base_revision_id=memory_filled["rev_child"],
                  embedder=embedder)  # fmt: skip
    at.button(key="procs_save").click().run()
    assert not at.exception, at.exception
    assert any("moved on" in e.value and "nothing was saved" in e.value for e in at.error)
    assert at.text_area(key=f"procs_edit_text_{pid}").value == mine
    assert store.current_revision(store.get(Procedure, pid)).id == theirs.id
    assert all(r.script != mine for r in store.revisions_of(pid))


def write_credentials(path: Path) -> Path:
    from streamlit_authenticator import Hasher

    users = {
        "vera": {"name": "Vera Viewer", "email": "vera@example.com",
                 "password": Hasher.hash("vera-pass"), "roles": ["viewer"]},
        "rita": {"name": "Rita Reviewer", "email": "rita@example.com",
                 "password": Hasher.hash("rita-pass"), "roles": ["reviewer"]},
    }  # fmt: skip
    import yaml

    path.write_text(yaml.safe_dump({
        "credentials": {"usernames": users},
        "cookie": {"name": "memp_test", "key": "a-test-signing-key-of-32-bytes-or-more",
                   "expiry_days": 1},
    }))  # fmt: skip
    return path


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].set_value(username)
    at.text_input[1].set_value(password)
    at.button[0].click().run()
    return at


def test_without_signing_in_nothing_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filled: dict[str, int]
) -> None:
    monkeypatch.setenv("MEMP_AUTH_FILE", str(write_credentials(tmp_path / "auth.yaml")))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert not at.metric  # no data before sign-in
    sign_in(at, "vera", "wrong")
    assert any("incorrect" in e.value for e in at.error)
    assert not at.metric


def test_a_viewer_cannot_approve(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filled: dict[str, int]
) -> None:
    monkeypatch.setenv("MEMP_AUTH_FILE", str(write_credentials(tmp_path / "auth.yaml")))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    sign_in(at, "vera", "vera-pass")
    assert not at.exception, at.exception
    assert any("role: viewer" in t.value for t in at.sidebar.text)
    at.switch_page(PROCS).run()
    id_input(at, "Procedure id").set_value(filled["pending"]).run()
    assert at.button(key="procs_approve").disabled
    assert at.button(key="procs_save").disabled
    assert any("can read but not change" in c.value for c in at.caption)
    # The rule lives in memp_core: the same request as the page would send is refused.
    from memp_core.errors import PermissionDeniedError
    from memp_core.review import approve

    with pytest.raises(PermissionDeniedError, match="viewer role"):
        approve(store, filled["pending"], actor=Actor("vera", "viewer"))
    assert store.get(Procedure, filled["pending"]).status == "pending_review"


def test_a_signed_in_reviewer_approves_under_their_name(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filled: dict[str, int]
) -> None:
    monkeypatch.setenv("MEMP_AUTH_FILE", str(write_credentials(tmp_path / "auth.yaml")))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    sign_in(at, "rita", "rita-pass")
    assert [b.label for b in at.sidebar.button] == ["Sign out"]
    at.switch_page(PROCS).run()
    id_input(at, "Procedure id").set_value(filled["pending"]).run()
    at.button(key="procs_approve").click().run()
    assert store.get(Procedure, filled["pending"]).status == "approved"
    assert store.audit_events(limit=1)[0].actor == "human:rita"


def test_experiments_page_runs_the_simulator_and_records_a_run(store: Store) -> None:
    at = run_page("pages/6_Experiments.py")
    at.number_input(key="exp_tasks").set_value(6)
    at.number_input(key="exp_groups").set_value(2)
    next(b for b in at.button if b.label == "Start run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    runs = store.runs()
    assert len(runs) == 1
    assert runs[0].status == "done" and runs[0].source == "simulator"
    assert [g["tasks"] for g in runs[0].metrics] == [3, 3]
    assert store.counts().trajectories == 6
    assert any(f"Run #{runs[0].id} done" in s.value for s in at.success)


def test_playground_shows_each_policy_and_logs_nothing(
    store: Store, memory_filled: dict[str, int]
) -> None:
    before = store.counts().retrievals
    at = run_page("pages/5_Retrieval_playground.py")
    at.text_area(key="play_task").set_value("put a cup in cabinet").run()
    at.checkbox(key="play_all").check().run()
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["query", "facts", "random", "hybrid"]
    query_results = at.tabs[0].dataframe[0].value
    assert query_results.iloc[0]["task type"] == "put"  # the nearest procedure is the put one
    assert store.counts().retrievals == before


# -- import / export ---------------------------------------------------------------------------

ALFWORLD_LOG = """Your task is to: put some spraybottle on toilet.
> go to cabinet 1
On the cabinet 1, you see a spraybottle 2.
> take spraybottle 2 from cabinet 1
You pick up the spraybottle 2 from the cabinet 1.
> go to toilet 1
On the toilet 1, you see nothing.
> put spraybottle 2 in/on toilet 1
You put the spraybottle 2 in/on the toilet 1.
"""


def test_preview_counts_an_upload_and_writes_nothing(store: Store) -> None:
    from memp_core.uploads import Upload, preview_uploads

    p = preview_uploads([Upload("run.txt", ALFWORLD_LOG.encode())], "alfworld")
    # a transcript without a STATUS line records no verdict: unknown, not a success
    assert (p.trajectories, p.succeeded, p.unknown, p.steps) == (1, 0, 1, 4)
    assert p.sample[0].task_type == "put" and p.sample[0].success is None
    assert store.counts().trajectories == 0


def test_import_of_an_upload_lands_and_is_audited(store: Store) -> None:
    from memp_core.uploads import Upload, import_uploads

    rita = Actor("rita", "reviewer")
    report = import_uploads(store, [Upload("../../etc/run.txt", ALFWORLD_LOG.encode())],
                            "alfworld", actor=rita)  # fmt: skip
    assert report.trajectories == 1
    assert store.counts().trajectories == 1
    assert store.audit_events(limit=1)[0].action == "import"
    again = import_uploads(store, [Upload("run.txt", ALFWORLD_LOG.encode())], "alfworld",
                           actor=rita)  # fmt: skip
    assert again.duplicates_skipped == 1 and store.counts().trajectories == 1


def test_an_unreadable_upload_is_refused_whole(store: Store) -> None:
    from memp_core.errors import ImportFormatError
    from memp_core.uploads import Upload, import_uploads

    with pytest.raises(ImportFormatError):
        import_uploads(
            store, [Upload("x.json", b"\x00\x01binary")], "chat", actor=Actor("rita", "reviewer")
        )
    assert store.counts().trajectories == 0


def test_export_page_offers_a_zip_of_the_database(filled: dict[str, int]) -> None:
    import io
    import zipfile

    at = run_page("pages/7_Import_Export.py")
    at.button(key="io_export").click().run()
    assert not at.exception, at.exception
    data = at.session_state["io_export_zip"][1]
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert {"runs.jsonl", "trajectories.jsonl", "procedures.jsonl", "curves.csv"} <= names


# -- what the debugging pages show -------------------------------------------------------------


def test_trajectory_detail_points_at_the_looping_step(filled: dict[str, int]) -> None:
    at = run_page("pages/1_Trajectories.py")
    at.selectbox(key="traj_outcome").set_value("failure").run()
    at.selectbox(key="traj_source").set_value("simulator").run()
    at.text_input(key="traj_text").set_value("look at bowl").run()
    assert not at.exception, at.exception
    assert any("First problem at step 3: loop" in w.value for w in at.warning)
    assert any("repeats step 2" in t.value for t in at.text)
    # The memory it was given: the retrieval logged for this run, with its score.
    scores = [df.value for df in at.dataframe if "score" in df.value.columns]
    assert scores and scores[0].iloc[0]["score"] == pytest.approx(0.91)
    # Side by side: a successful run of the same task type.
    assert any(m.value.startswith("**Successful: trajectory") for m in at.markdown)


def test_lineage_page_shows_the_reflection_and_its_diff(filled: dict[str, int]) -> None:
    at = run_page("pages/3_Lineage.py")
    assert not at.exception, at.exception
    assert at.selectbox(key="lin_procedure").value.startswith(f"{filled['approved']}: ")
    diff = next(c.value for c in at.code if c.value.startswith("---"))
    assert "+3. Open the <receptacle> if closed." in diff
    at.radio(key="lin_mode").set_value("All procedures of a task type").run()
    assert not at.exception, at.exception


def test_learning_curves_mark_memory_changes_and_export_csv(
    store: Store, filled: dict[str, int]
) -> None:
    from memp_core import conditions, curves, markers

    runs = store.runs()
    points = curves.curve_points(store, runs)
    assert len(points) == 4 + 4 + 3  # groups of the two simulator runs and three trials
    csv = curves.to_csv(points).splitlines()
    assert csv[0].startswith("run_id,run,condition") and len(csv) == 1 + len(points)
    bands = conditions.bands(points)
    assert bands and all(b.seeds == 2 and b.success_lo < b.success_hi for b in bands)
    kinds = {(m.position, m.kind) for m in markers.memory_markers(store, [runs[0]])}
    assert (2.0, "revision added") in kinds  # the reflection, during group 2
    assert (2.5, "approved") in kinds  # approved between groups 2 and 3
    from memp_core.curves_chart import figure, figure_png

    assert figure_png(figure(points, bands), engine="matplotlib").data[:4] == b"\x89PNG"


def test_overview_alerts_on_a_falling_run_and_a_failing_procedure(
    store: Store, filled: dict[str, int]
) -> None:
    from memp_core.config import get_settings
    from memp_core.overview import overview

    with store.transaction() as s:
        run = s.get(Run, 1)
        run.metrics = [{"index": g, "tasks": 6, "success_rate": r, "mean_steps": 5.0}
                       for g, r in enumerate([0.5, 0.9, 0.9, 0.9, 0.4, 0.3])]  # fmt: skip
        s.add(run)
    ov = overview(store, get_settings())
    assert [a.run.id for a in ov.run_alerts] == [1]
    assert [a.procedure.id for a in ov.procedure_alerts] == [filled["pending"]]
    at = run_page("app.py")
    assert any("whose success is falling" in w.value for w in at.warning)


def test_a_step_with_no_effect_is_the_problem_when_nothing_loops() -> None:
    from memp_core.debug import locate_problem

    steps = [
        Step(index=0, trajectory_id=1, action="go to fridge 1", observation="It is closed."),
        Step(
            index=1,
            trajectory_id=1,
            action="heat egg with fridge 1",
            observation="Nothing happens.",
        ),
        Step(index=2, trajectory_id=1, action="think: oops", observation="OK."),
    ]
    problem = locate_problem(steps)
    assert problem is not None and (problem.index, problem.kind) == (1, "no_effect")
    assert locate_problem(steps[:1]) is None


def test_replay_compares_a_revision_with_its_parent_and_writes_nothing(
    store: Store, filled: dict[str, int]
) -> None:
    at = open_procedure(filled["approved"])
    before = store.counts()
    at.number_input(key="procs_replay_n").set_value(3)
    at.button(key="procs_replay").click().run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert f"Success, revision {filled['rev_child']}" in labels
    assert f"Success, parent revision {filled['rev_root']}" in labels
    assert store.counts() == before
