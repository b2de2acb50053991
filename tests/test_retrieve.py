"""Retrieval over procedures built from the simulator's ALFWorld transcripts, with the real
MiniLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from household_runs import add_run
from test_build import approved_template, pending_template, store_from

from memp_core.embeddings import Embedder
from memp_core.errors import ConfigError, NotFoundError
from memp_core.memory import ProceduralMemory
from memp_core.models import Procedure, Retrieval, Status, Step
from memp_core.retrieve import link_retrieval
from memp_core.review import Actor, approve, deprecate

NEW_TASKS = [  # unseen objects and places; the type is what must carry over
    ("heat some egg and put it in garbagecan", "heat"),
    ("put a clean cloth in drawer", "clean"),
    ("cool some lettuce and put it in countertop", "cool"),
    ("examine the book with the desklamp", "examine"),
    ("put two pillow in sofa", "puttwo"),
    ("put a hot potato in countertop", "heat"),
    ("look at the vase under the desklamp", "examine"),
    ("put some soapbar on toilet", "put"),
]
ADMIN = Actor("rita", "reviewer")
__all__ = ["approved_template", "pending_template"]  # session fixtures shared with test_build


@pytest.fixture(name="mem")
def mem_fixture(
    approved_template: Path, db_url: str, embedder: Embedder
) -> Iterator[ProceduralMemory]:
    """The 12 procedures built from the ALFWorld transcripts, approved."""
    store = store_from(approved_template, db_url)
    yield ProceduralMemory(store, embedder=embedder, backend="heuristic")
    store.dispose()


def _types(mem: ProceduralMemory, policy: str, **kw: object) -> list[str]:
    return [
        (r.first().procedure.task_type if (r := mem.retrieve(t, policy=policy, k=1, log=False,
                                                            **kw)).first() else "")  # type: ignore[arg-type]
        for t, _ in NEW_TASKS
    ]  # fmt: skip


def test_hybrid_and_facts_find_a_procedure_of_the_right_type_for_new_tasks(
    mem: ProceduralMemory,
) -> None:
    want = [t for _, t in NEW_TASKS]
    assert _types(mem, "hybrid") == want
    assert _types(mem, "facts") == want


def test_query_cosine_ranks_by_similarity_and_beats_random_on_task_type(
    mem: ProceduralMemory,
) -> None:
    want = [t for _, t in NEW_TASKS]
    by_query = sum(a == b for a, b in zip(_types(mem, "query"), want, strict=True))
    by_random = [
        sum(a == b for a, b in zip(_types(mem, "random", seed=s), want, strict=True))
        for s in range(5)
    ]
    assert by_query >= 4 and by_query > np.mean(by_random)
    items = mem.retrieve("heat some mug and put it in garbagecan", k=5, log=False).items
    scores = [it.score for it in items]
    assert scores == sorted(scores, reverse=True) and len(items) == 5
    assert items[0].procedure.title == "heat some mug and put it in sinkbasin"


def test_random_policy_is_seeded_and_ignores_the_query(mem: ProceduralMemory) -> None:
    a = [it.procedure.id for it in mem.retrieve("x", policy="random", k=4, seed=3, log=False)]
    b = [it.procedure.id for it in mem.retrieve("y", policy="random", k=4, seed=3, log=False)]
    c = [it.procedure.id for it in mem.retrieve("x", policy="random", k=4, seed=4, log=False)]
    assert a == b and a != c and len(set(a)) == 4


def test_facts_policy_reports_what_matched(mem: ProceduralMemory) -> None:
    top = mem.retrieve("put a hot apple in garbagecan", policy="facts", k=1, log=False).first()
    assert top is not None and top.procedure.title == "put a hot apple in cabinet"
    assert top.matched == {"task_type": "heat", "object": "apple", "tool": "microwave"}
    assert top.score == pytest.approx(0.8)
    assert mem.retrieve("tidy up the room", policy="facts", log=False).items == []


def test_agents_are_served_approved_procedures_only(
    pending_template: Path, db_url: str, embedder: Embedder
) -> None:
    store = store_from(pending_template, db_url)
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    assert mem.retrieve("put two pillow in sofa", log=False).items == []
    everything = mem.retrieve("put two pillow in sofa", all_statuses=True, log=False)
    assert len(everything) == 3
    approve(store, everything.items[1].procedure.id or 0, actor=ADMIN)
    served = mem.retrieve("put two pillow in sofa", k=3, log=False)
    assert [it.procedure.id for it in served] == [everything.items[1].procedure.id]


def test_deprecated_procedures_stop_being_served(mem: ProceduralMemory) -> None:
    first = mem.retrieve("put two pillow in sofa", k=1, log=False).items[0]
    deprecate(mem.store, first.procedure.id or 0, actor=ADMIN, reason="keeps failing")
    again = mem.retrieve("put two pillow in sofa", k=1, log=False).items[0]
    assert again.procedure.id != first.procedure.id
    live = mem.retrieve("put two pillow in sofa", k=20, log=False, statuses=["approved"])
    assert first.procedure.id not in {it.procedure.id for it in live}


def test_every_retrieval_is_logged_and_can_be_linked_to_its_trajectory(
    mem: ProceduralMemory,
) -> None:
    result = mem.retrieve("put a clean cloth in drawer", policy="hybrid", k=2,
                          agent_model="weak-model")  # fmt: skip
    row = mem.store.get(Retrieval, result.retrieval_id or 0)
    assert (row.query, row.policy, row.k, row.agent_model) == (
        "put a clean cloth in drawer", "hybrid", 2, "weak-model",
    )  # fmt: skip
    assert [r["revision_id"] for r in row.results] == [it.revision.id for it in result.items]
    assert row.results[0]["task_type"] == "clean" and row.results[0]["score"] > 0
    assert row.results[0]["matched"]["task_type"] == "clean"
    traj = add_run(mem.store, "put a clean cloth in drawer", [Step(index=0, action="look")])
    link_retrieval(mem.store, result.retrieval_id or 0, traj)
    assert mem.store.retrievals_for(traj)[0].id == result.retrieval_id
    with pytest.raises(NotFoundError):
        link_retrieval(mem.store, 9999, traj)


def test_author_model_restricts_retrieval_to_that_models_revisions(
    mem: ProceduralMemory,
) -> None:
    run = add_run(mem.store, "heat some bread and put it in countertop",
                  mem.store.steps_of(1), task_type="heat", agent_model="strong")  # fmt: skip
    (rev,) = mem.build([run], policy="trajectory", status=Status.approved)
    assert rev.model == "strong"
    only = mem.retrieve("heat some egg and put it in garbagecan", k=3, author_model="strong",
                        log=False)  # fmt: skip
    assert [it.revision.id for it in only] == [rev.id]
    assert mem.retrieve("x", k=3, author_model="nobody", log=False).items == []


def test_threshold_drops_weak_matches(mem: ProceduralMemory) -> None:
    loose = mem.retrieve("heat some mug and put it in garbagecan", k=12, log=False)
    strict = mem.retrieve("heat some mug and put it in garbagecan", k=12, threshold=0.5,
                          log=False)  # fmt: skip
    assert 0 < len(strict) < len(loose) and all(it.score >= 0.5 for it in strict)


def test_index_picks_up_revisions_written_by_another_memory_incrementally(
    mem: ProceduralMemory, embedder: Embedder
) -> None:
    index = mem.index
    seen, size = index.seen_revision_id, len(index)
    other = ProceduralMemory(mem.store, embedder=embedder, backend="heuristic")
    run = add_run(mem.store, "put some keychain in safe", mem.store.steps_of(13), task_type="put")
    (rev,) = other.build([run], status=Status.approved)
    assert mem.index is index and len(index) == size + 1
    assert index.seen_revision_id == rev.id and rev.id == seen + 1
    top = mem.retrieve("put some keychain in safe", k=1, log=False).first()
    assert top is not None and top.revision.id == rev.id


def test_unknown_policy_lists_the_valid_names(mem: ProceduralMemory) -> None:
    with pytest.raises(ConfigError, match="facts, hybrid, query, random"):
        mem.retrieve("x", policy="bm25")


def test_procedure_rows_come_back_fresh(mem: ProceduralMemory) -> None:
    top = mem.retrieve("put two pillow in sofa", k=1, log=False).items[0]
    assert isinstance(top.procedure, Procedure) and top.procedure.status == "approved"
    assert top.revision.id == top.procedure.current_revision_id
