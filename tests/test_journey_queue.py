"""The review queue's read model on SQLite and Postgres: what waits for review, by origin.

A procedure's revision under review is its proposal when one waits beside the served
revision, else its current revision; the origin filter and the queue's columns (origin,
author, evidence, revisions) describe that revision.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memp_core.models import Procedure, ProcedureRevision
from memp_core.queue import list_procedures, next_after, origins, queue_rows
from memp_core.store import Store


@pytest.fixture(name="queue_store")
def queue_store_fixture(any_url: str) -> Iterator[tuple[Store, dict[str, int]]]:
    """Three procedures: a build waiting, an approved one with a reflection proposed beside
    its served build, and an approved agent proposal turned current. Their ids by name."""
    store = Store(any_url)
    ids: dict[str, int] = {}
    with store.transaction() as s:
        for name, status, waiting in [("built", "pending_review", None),
                                      ("reflected", "approved", "reflection"),
                                      ("proposed", "approved", None)]:  # fmt: skip
            p = Procedure(key=name, title=f"put {name} mug in cabinet", task_type="put",
                          status=status)  # fmt: skip
            s.add(p)
            s.flush()
            root = ProcedureRevision(procedure_id=p.id or 0, script="1. Find the mug.",
                                     origin="proposal" if name == "proposed" else "build",
                                     author="agent:bot" if name == "proposed" else "heuristic",
                                     evidence_trajectory_ids=[1, 2])  # fmt: skip
            s.add(root)
            s.flush()
            p.current_revision_id = root.id
            if waiting:
                child = ProcedureRevision(
                    procedure_id=p.id or 0, parent_revision_id=root.id, origin=waiting,
                    script="1. Open the cabinet first.", author="llm:m",
                    evidence_trajectory_ids=[3, 4, 5],
                )  # fmt: skip
                s.add(child)
                s.flush()
                p.proposed_revision_id = child.id
            ids[name] = p.id or 0
    yield store, ids
    store.dispose()


@pytest.mark.parametrize(("origin", "expected"), [("build", ["built"]),
                                                  ("reflection", ["reflected"]),
                                                  ("proposal", ["proposed"]),
                                                  ("merge", [])])  # fmt: skip
def test_the_origin_filter_reads_the_revision_under_review(
    queue_store: tuple[Store, dict[str, int]], origin: str, expected: list[str]
) -> None:
    store, ids = queue_store
    page = list_procedures(store, origin=origin)
    assert sorted(p.id for p in page.rows) == sorted(ids[n] for n in expected)
    assert page.total == len(expected)


def test_the_origin_filter_combines_with_the_others(
    queue_store: tuple[Store, dict[str, int]],
) -> None:
    store, ids = queue_store
    found = list_procedures(store, origin="reflection", status="approved", with_proposal=True,
                            text="reflected")  # fmt: skip
    assert [p.id for p in found.rows] == [ids["reflected"]]
    assert list_procedures(store, origin="reflection", status="pending_review").total == 0


def test_the_queue_columns_describe_the_revision_under_review(
    queue_store: tuple[Store, dict[str, int]],
) -> None:
    store, ids = queue_store
    rows = {r.procedure.id: r for r in queue_rows(store, list_procedures(store).rows)}
    got = {n: (rows[i].origin, rows[i].author, rows[i].evidence, rows[i].revisions)
           for n, i in ids.items()}  # fmt: skip
    assert got == {
        "built": ("build", "heuristic", 2, 1),
        "reflected": ("reflection", "llm:m", 3, 2),
        "proposed": ("proposal", "agent:bot", 2, 1),
    }
    assert set(origins(store)) == {"build", "reflection", "proposal"}


@pytest.mark.parametrize(("ids", "target", "expected"), [
    ([5, 6, 7], 6, 7),  # the row after it
    ([5, 6, 7], 7, 5),  # the last moves on to the first
    ([5, 6, 7], 9, 5),  # opened from a link, not in the queue: the first
    ([6], 6, None),  # nothing else waits
    ([], 6, None),
])  # fmt: skip
def test_the_next_in_the_queue(ids: list[int], target: int, expected: int | None) -> None:
    assert next_after(ids, target) == expected
