"""The review gate as the pages hold it: the procedure a reviewer acts on is the one they opened.

Each test replays something that went wrong in a real browser (issue 16 item 1): a row is
picked in the queue, the procedure is saved (the queue re-sorts by last update), and Approve
must still act on the procedure that was picked, never on whatever now sits in that row.
AppTest cannot click a table row, so a row is picked the way the browser reports it: by
writing the table's selection state (``{"selection": {"rows": [i]}}``) under its key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest
from test_pages import PROCS, ROOT, T0, id_input, run_page

from memp_core.build import embed_revisions
from memp_core.embeddings import Embedder
from memp_core.models import Procedure, ProcedureRevision
from memp_core.store import Store
from ui.safe import md, md_badge

ALL = "(all)"
QUEUE = 8  # pending procedures in the queue, oldest update last


@pytest.fixture(name="queue")
def queue_fixture(store: Store, embedder: Embedder) -> list[int]:
    return add_queue(store, embedder)


def add_queue(store: Store, embedder: Embedder) -> list[int]:
    """QUEUE pending procedures, each updated a minute after the previous one; their ids,
    newest update first (the order the queue shows them in)."""
    ids: list[int] = []
    with store.transaction() as s:
        for i in range(QUEUE):
            at = T0 + timedelta(minutes=i)
            p = Procedure(key=f"queue-{i}", title=f"put thing {i} in cabinet", task_type="put",
                          created_at=at, updated_at=at)  # fmt: skip
            s.add(p)
            s.flush()
            rev = ProcedureRevision(procedure_id=p.id, origin="build", author="heuristic",
                                    script=f"1. Find thing {i}.\n2. Put it in the cabinet.",
                                    created_at=at)  # fmt: skip
            embed_revisions(embedder, [rev])
            s.add(rev)
            s.flush()
            p.current_revision_id = rev.id
            ids.append(p.id)
    return list(reversed(ids))


def table_ids(at: AppTest) -> list[int]:
    table = next(d for d in at.dataframe if "revisions" in d.value.columns)
    return [int(x) for x in table.value["id"]]


def pick_row(at: AppTest, row: int) -> AppTest:
    """What the browser sends when a reviewer clicks row ``row`` of the queue."""
    at.session_state["procs_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def open_procedure_shown(at: AppTest) -> int:
    heading = next(h.value for h in at.subheader if h.value.startswith("Procedure "))
    return int(heading.split()[1])


def approvals(store: Store) -> list[int]:
    return [e.object_id for e in store.audit_events(limit=50) if e.action == "approve"]


def test_picked_row_saved_then_approved_approves_the_picked_procedure(
    store: Store, queue: list[int]
) -> None:
    at = run_page(PROCS)
    assert table_ids(at) == queue
    picked = queue[3]
    pick_row(at, 3)
    assert open_procedure_shown(at) == picked
    # Save an edit: the procedure moves to the top of the queue (most recently updated).
    at.text_area(key=f"procs_edit_text_{picked}").set_value("1. Find it.\n2. Put it away.")
    at.button(key="procs_save").click().run()
    assert not at.exception, at.exception
    assert table_ids(at)[0] == picked  # the queue re-sorted under the reviewer's feet
    assert open_procedure_shown(at) == picked
    at.button(key="procs_approve").click().run()
    assert not at.exception, at.exception
    assert approvals(store) == [picked]
    assert store.get(Procedure, picked).status == "approved"
    others = [store.get(Procedure, pid).status for pid in queue if pid != picked]
    assert set(others) == {"pending_review"}


def test_review_buttons_name_the_procedure_and_revision_they_act_on(
    store: Store, queue: list[int]
) -> None:
    at = run_page(PROCS)
    pick_row(at, 2)
    pid = queue[2]
    rev = store.get(Procedure, pid).current_revision_id
    assert at.button(key="procs_approve").label == f"Approve procedure {pid} · revision {rev}"
    assert at.button(key="procs_reject").label == f"Reject procedure {pid} · revision {rev}"
    assert at.button(key="procs_save").label == (
        f"Save as a new revision of procedure {pid} (from revision {rev})"
    )
    assert at.button(key="procs_deprecate").label == f"Deprecate procedure {pid}"


def test_after_a_write_the_ticked_row_is_the_open_procedure(store: Store, queue: list[int]) -> None:
    at = run_page(PROCS)
    pick_row(at, 5)
    pid = queue[5]
    at.text_area(key=f"procs_edit_text_{pid}").set_value("1. Find it first.\n2. Put it in.")
    at.button(key="procs_save").click().run()
    rows = at.session_state["procs_table"]["selection"]["rows"]
    assert [table_ids(at)[r] for r in rows] == [pid]


def test_the_open_procedure_is_in_the_url(store: Store, queue: list[int]) -> None:
    at = run_page(PROCS)
    pick_row(at, 4)
    assert at.query_params.get("procedure") == str(queue[4])


def test_a_linked_procedure_opens_and_approve_acts_on_it(store: Store, queue: list[int]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PROCS)
    at.query_params["procedure"] = str(queue[6])
    at.run()
    assert open_procedure_shown(at) == queue[6]
    at.button(key="procs_approve").click().run()
    assert approvals(store) == [queue[6]]


def test_approving_after_someone_else_changed_it_is_refused(
    store: Store, queue: list[int], embedder: Embedder
) -> None:
    from memp_core.actor import Actor
    from memp_core.review import edit

    at = run_page(PROCS)
    pick_row(at, 1)
    pid = queue[1]
    shown = store.get(Procedure, pid).current_revision_id
    edit(store, pid, actor=Actor("bob", "reviewer"), script="1. Bob's version.", comment="b",
         base_revision_id=shown, embedder=embedder)  # fmt: skip
    at.button(key="procs_approve").click().run()
    assert any("moved on" in e.value for e in at.error)
    assert store.get(Procedure, pid).status == "pending_review"
    assert not [e for e in store.audit_events(limit=50) if e.action == "approve"]


# -- data is shown as text: hostile strings in every field a page shows (issue 11 item 8) -------


def hostile(port: int = 9) -> str:
    """Markdown and HTML an imported file could carry: a remote image (a viewer's browser
    would fetch it), a fake sign-in link, raw HTML, an icon shortcode and LaTeX."""
    return (
        f"![x](http://127.0.0.1:{port}/md.png) "
        "[Session expired: sign in again](http://evil.example/) "
        f"<img src=http://127.0.0.1:{port}/html.png> <a href='http://evil.example/a'>a</a> "
        ":material/lock: $x^2$ www.evil.example"
    )


def fill_hostile(store: Store, embedder: Embedder, evil: str) -> dict[str, int]:
    """Every text field the pages show holds ``evil``; ids of what to open."""
    from memp_core.models import AuditEvent, Retrieval, Run, Step, Trajectory

    ids: dict[str, int] = {}
    with store.transaction() as s:
        runs = [
            Run(name=evil, kind="experiment", agent=evil, agent_model=evil, environment=evil,
                build_policy=evil, retrieve_policy=evil, update_policy=evil, k=3, seed=seed,
                n_tasks=4, n_groups=2, status=evil, source=evil, created_at=T0,
                finished_at=T0 + timedelta(hours=1),
                metrics=[{"index": g, "tasks": 2, "success_rate": 0.5 * g, "mean_steps": 3.0}
                         for g in range(2)])
            for seed in (0, 1)
        ]  # fmt: skip
        s.add_all(runs)
        s.flush()
        procs = [
            Procedure(key=f"{evil} {i}", title=evil, task_type=evil, status=status,
                      created_at=T0, updated_at=T0 + timedelta(minutes=i))
            for i, status in enumerate(["pending_review", evil])
        ]  # fmt: skip
        s.add_all(procs)
        s.flush()
        for p in procs:
            root = ProcedureRevision(procedure_id=p.id, origin=evil, author=evil, model=evil,
                                     script=evil, rationale=evil, task_text=evil,
                                     created_at=T0 + timedelta(minutes=10))  # fmt: skip
            s.add(root)
            s.flush()
            child = ProcedureRevision(procedure_id=p.id, parent_revision_id=root.id,
                                      origin=evil, author=evil, model=evil, rationale=evil,
                                      script=evil + " 2",
                                      created_at=T0 + timedelta(minutes=20))  # fmt: skip
            embed_revisions(embedder, [root, child])
            s.add(child)
            s.flush()
            p.current_revision_id = child.id
        for run in runs:
            for g in range(2):
                for j, ok in enumerate((True, False)):
                    traj = Trajectory(task=evil, task_type=evil, environment=evil, source=evil,
                                      agent_model=evil, success=ok, run_id=run.id, group_index=g,
                                      reflections=[evil], procedure_revision_id=child.id,
                                      created_at=T0 + timedelta(minutes=10 * g + j))  # fmt: skip
                    store.add_trajectory(s, traj, [
                        Step(index=0, thought=evil, action=evil, observation=evil),
                        Step(index=1, thought=evil, action=evil, observation=evil),
                    ])  # fmt: skip
                    s.add(Retrieval(run_id=run.id, trajectory_id=traj.id, query=evil, policy=evil,
                                    k=3, created_at=traj.created_at, results=[
                                        {"procedure_id": procs[0].id, "revision_id": child.id,
                                         "score": 0.5, "title": evil, "task_type": evil,
                                         "matched": {evil: evil}}]))  # fmt: skip
        s.add(AuditEvent(actor=evil, action=f"approve {evil}", object_type=evil,
                         object_id=procs[0].id, detail={evil: evil},
                         created_at=T0 + timedelta(minutes=15)))  # fmt: skip
        ids.update(procedure=procs[0].id, other=procs[1].id, trajectory=traj.id)
    return ids


# Elements that show text as text (no Markdown, no HTML), and proto fields holding data
# rather than something rendered as Markdown (a widget's value, a table's bytes ...).
PLAIN_ELEMENTS = {"text", "code", "arrow_data_frame", "dataframe", "plotly_chart", "json",
                  "selectbox", "multiselect", "text_input", "text_area", "exception"}  # fmt: skip
DATA_FIELDS = {"id", "form_id", "default", "value", "options", "spec", "icon", "key",
               "page_script_hash", "url_path", "page", "query_string", "color"}  # fmt: skip
ACTIVE_MARKUP = re.compile(
    r"!\[|\]\(|(?<!\\)<\s*(img|a|iframe|script)\b|https?://|www\.evil|:material/lock:|\$x\^2\$",
    re.IGNORECASE,
)


def _strings(proto: object) -> list[str]:
    out: list[str] = []
    for field, value in proto.ListFields():  # type: ignore[attr-defined]
        if field.name in DATA_FIELDS:
            continue
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        for v in values:
            if isinstance(v, str):
                out.append(v)
            elif hasattr(v, "ListFields"):
                out.extend(_strings(v))
    return out


def markdown_shown(at: AppTest) -> list[str]:
    """Every string the page hands Streamlit's Markdown renderer (bodies, labels, captions)."""
    out: list[str] = []
    for node in [*at.main, *at.sidebar]:
        if getattr(node, "type", "") in PLAIN_ELEMENTS or getattr(node, "proto", None) is None:
            continue
        out.extend(_strings(node.proto))
    return out


def plot_strings(at: AppTest) -> list[str]:
    """Every string in the page's plotly figures (names, legends, hover text, tick labels)."""
    out: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for node in [*at.main, *at.sidebar]:
        if getattr(node, "type", "") == "plotly_chart":
            walk(json.loads(node.proto.spec))
    return out


@pytest.fixture(name="hostile_db")
def hostile_db_fixture(store: Store, embedder: Embedder) -> dict[str, int]:
    return fill_hostile(store, embedder, hostile())


Action = Callable[[AppTest, dict[str, int]], object]
# (page, what to do there) for every view that shows hostile data.
HOSTILE_VIEWS: list[tuple[str, Action]] = [
    ("app.py", lambda at, ids: None),
    ("pages/1_Trajectories.py", lambda at, ids: None),
    ("pages/2_Procedures.py", lambda at, ids: at.selectbox(key="procs_status").set_value(ALL)),
    ("pages/2_Procedures.py",
     lambda at, ids: id_input(at, "Procedure id").set_value(ids["other"])),
    ("pages/3_Lineage.py", lambda at, ids: None),
    ("pages/3_Lineage.py",
     lambda at, ids: at.radio(key="lin_mode").set_value("All procedures of a task type")),
    ("pages/4_Learning_curves.py",
     lambda at, ids: at.radio(key="curves_color").set_value("model")),  # conditions
    ("pages/4_Learning_curves.py",
     lambda at, ids: (at.radio(key="curves_view").set_value("runs").run(),
                      at.radio(key="curves_color").set_value("model"))),  # single runs
    ("pages/9_Agents.py", lambda at, ids: None),
    ("pages/5_Retrieval_playground.py", lambda at, ids: at.checkbox(key="play_all").check()),
    ("pages/6_Experiments.py", lambda at, ids: None),
    ("pages/7_Import_Export.py", lambda at, ids: None),
    ("pages/8_Audit_log.py", lambda at, ids: None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "action"), HOSTILE_VIEWS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(HOSTILE_VIEWS)]
)
def test_no_page_renders_markup_from_the_data(
    path: str, action: Action, hostile_db: dict[str, int]
) -> None:
    at = run_page(path)
    action(at, hostile_db)
    at.run()
    assert not at.exception, at.exception
    texts = markdown_shown(at)
    active = [t for t in texts if ACTIVE_MARKUP.search(t)]
    assert not active
    # The data did reach the page (the sidebar lists the data sources), shown as text.
    assert any(md(hostile()) in t for t in texts)
    plots = [p for p in plot_strings(at) if re.search(r"<\s*(img|a)\b", p, re.IGNORECASE)]
    assert not plots


# -- a very long run pages through its steps (issue 11 item 6, page side) ----------------------

LONG = 70_000


@pytest.fixture(name="long_run")
def long_run_fixture(store: Store) -> int:
    """A 70,000-step trajectory written straight through the store (the importers now refuse
    such transcripts, but a database may already hold one); step 65,432 is flagged an error."""
    from sqlalchemy import insert

    from memp_core.models import Step, Trajectory

    with store.transaction() as s:
        traj = Trajectory(task="put a mug in cabinet", task_type="put", success=False,
                          source="simulator", step_count=LONG, created_at=T0)  # fmt: skip
        s.add(traj)
        s.flush()
        rows = [
            {"trajectory_id": traj.id, "index": i, "thought": None,
             "action": f"go to cabinet {i}", "observation": f"The cabinet {i} is closed.",
             "is_error": i == 65_432, "is_loop": False}
            for i in range(LONG)
        ]  # fmt: skip
        s.exec(insert(Step.__table__), params=rows)  # type: ignore[attr-defined]
        return int(traj.id or 0)


def step_table(at: AppTest):  # noqa: ANN201 (a pandas DataFrame)
    return next(d.value for d in at.dataframe if "observation" in d.value.columns)


def test_a_70000_step_run_opens_on_the_page_of_its_failing_step(long_run: int) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/1_Trajectories.py")
    at.query_params["trajectory"] = str(long_run)
    at.run()
    assert not at.exception, at.exception
    assert any("First problem at step 65432: error" in w.value for w in at.warning)
    steps = step_table(at)
    assert len(steps) == 200
    assert 65_432 in set(steps["step"])  # the page holding the failing step
    at.number_input(key=f"traj_steps_page_{long_run}").set_value(1).run()
    assert not at.exception, at.exception
    assert list(step_table(at)["step"])[:3] == [0, 1, 2]


def test_md_shows_hostile_text_as_text() -> None:
    shown = md(hostile())
    assert not ACTIVE_MARKUP.search(shown)
    assert "\n" not in md("line one\n# line two")
    assert md_badge("[x](http://evil.example/)").startswith("[x]\\(")  # st.badge escapes [ ]


def test_the_sidebar_url_hides_passwords_also_in_the_query() -> None:
    from ui.common import safe_url

    shown = safe_url("postgresql+psycopg://memp:s3cret@db.example/memp?sslmode=require")
    assert "s3cret" not in shown and "sslmode=require" in shown
    assert "hunter2" not in safe_url("postgresql+psycopg://memp@/memp?host=/run&password=hunter2")
    assert "s3cret" not in safe_url("postgresql://memp:s3cret@[::1")  # unparseable: still hidden


def test_the_curves_csv_download_keeps_formulas_from_the_data_inert(store: Store) -> None:
    import csv
    import io

    from memp_core import curves
    from memp_core.models import Run

    formula = '=HYPERLINK("http://evil.example/","Session expired")'
    with store.transaction() as s:
        group = {"index": 0, "tasks": 2, "success_rate": 0.5, "mean_steps": -1.0}
        s.add(Run(name=formula, kind="import", agent="@SUM(1)", agent_model="-1+1",
                  status="done", source="+cmd", created_at=T0, metrics=[group]))  # fmt: skip
    rows = list(
        csv.DictReader(io.StringIO(curves.to_csv(curves.curve_points(store, store.runs()))))
    )
    assert rows[0]["condition"] == "'" + formula
    assert rows[0]["model"] == "'-1+1"
    assert rows[0]["mean_steps"] == "-1.0"  # numbers stay numbers
