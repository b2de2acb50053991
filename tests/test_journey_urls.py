"""Links to share (issue 16 item 10), with AppTest on real SQLite databases.

On every page the filters and the open object live in the URL: a link opens the same view,
a changed filter changes the URL; ids in tables link to the page that shows that object
(``Trajectories?trajectory=N``, ``Procedures?procedure=N``). Import defaults to ``auto``.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from test_pages import PROCS, ROOT, fill_database

from memp_core.actor import Actor
from memp_core.agents.keys import AGENT_SCOPES, create_key
from memp_core.embeddings import Embedder
from memp_core.store import Store

AUDIT, PLAY = "pages/8_Audit_log.py", "pages/5_Retrieval_playground.py"
AGENTS, IMPORT = "pages/9_Agents.py", "pages/7_Import_Export.py"


@pytest.fixture(name="filled")
def filled_fixture(store: Store, embedder: Embedder) -> dict[str, int]:
    return fill_database(store, embedder)


def open_with(path: str, **query: str) -> AppTest:
    """Open ``path`` the way a shared link does: app started, URL with a query string."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(path)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def param(at: AppTest, name: str) -> str | None:
    value = at.query_params.get(name)
    return value[-1] if isinstance(value, list) else value


def table_with(at: AppTest, column: str):  # noqa: ANN201 (a DataFrame)
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_import_reads_the_format_from_the_content_by_default(store: Store) -> None:
    at = open_with(IMPORT)
    assert at.selectbox(key="io_format").value == "auto"
    at = open_with(IMPORT, format="react")  # a link may still name the format
    assert at.selectbox(key="io_format").value == "react"


def test_a_link_to_the_audit_log_opens_its_filter_and_ids_link_to_their_object(
    filled: dict[str, int],
) -> None:
    at = open_with(AUDIT, who="bob")
    assert at.selectbox(key="audit_actor").value == "bob"
    rows = table_with(at, "detail")
    assert list(rows["who"]) == ["bob"]
    assert list(rows["id"]) == [f"Procedures?procedure={int(rows['id'][0].split('=')[1])}"]
    at.selectbox(key="audit_action").set_value("reject").run()
    assert (param(at, "who"), param(at, "action")) == ("bob", "reject")
    at.selectbox(key="audit_actor").set_value("(all)").run()
    assert param(at, "who") is None  # the default stays out of the URL


def test_an_unknown_value_in_a_link_falls_back_to_the_default(filled: dict[str, int]) -> None:
    at = open_with(AUDIT, who="nobody-of-that-name", page="x")
    assert at.selectbox(key="audit_actor").value == "(all)"
    assert at.number_input(key="audit_page").value == 1


def test_the_playground_question_is_a_link(filled: dict[str, int]) -> None:
    at = open_with(PLAY, task="put a cup in cabinet", policies="query,facts", k="2", all="1")
    assert at.text_area(key="play_task").value == "put a cup in cabinet"
    assert at.multiselect(key="play_policies").value == ["query", "facts"]
    assert at.number_input(key="play_k").value == 2
    assert at.checkbox(key="play_all").value is True
    assert [t.label for t in at.tabs] == ["query", "facts"]
    found = at.tabs[0].dataframe[0].value
    assert len(found) <= 2
    assert found["procedure"][0] == f"Procedures?procedure={filled['approved']}"
    at.multiselect(key="play_policies").set_value(["hybrid"]).run()
    assert param(at, "policies") == "hybrid"


def test_an_agent_link_opens_that_agent(store: Store) -> None:
    admin = Actor("root", "admin")
    for name in ("alpha", "beta"):
        create_key(store, agent=name, scopes=AGENT_SCOPES, actor=admin)
    at = open_with(AGENTS, agent="alpha")
    assert at.selectbox(key="agents_pick").value == "alpha"
    at.selectbox(key="agents_pick").set_value("beta").run()
    assert param(at, "agent") == "beta"


def test_evidence_runs_link_to_the_trajectories_page(filled: dict[str, int]) -> None:
    at = open_with(PROCS, status="(all)", procedure=str(filled["approved"]))
    runs = table_with(at, "outcome")
    assert list(runs["run"]) == ["Trajectories?trajectory=1"]  # the reflection's evidence


def test_a_run_links_to_its_trajectories(filled: dict[str, int]) -> None:
    at = open_with("pages/6_Experiments.py")
    runs = table_with(at, "condition")
    assert list(runs["id"]) == [f"Trajectories?run={n}" for n in (3, 2, 1)]  # newest first


def test_an_emptied_box_stays_empty(filled: dict[str, int]) -> None:
    """A box whose default is not empty: emptying it is a choice the URL keeps."""
    at = open_with(PLAY)
    at.text_area(key="play_task").set_value("").run()
    assert param(at, "task") == ""
    assert at.text_area(key="play_task").value == ""
    at.multiselect(key="play_policies").set_value([]).run()
    assert at.multiselect(key="play_policies").value == []
    assert any("Type a task" in i.value for i in at.info)
