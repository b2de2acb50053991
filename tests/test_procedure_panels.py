"""The Procedures page says what a procedure teaches, read by the function the household agent
reads memory with, and shows a merge proposal's procedures side by side (issues 13 and 14)."""

from __future__ import annotations

from test_dedupe import EGG, HEAT, add, planted_copy
from test_journey_review import open_in_all

from memp_core.actor import Actor, system
from memp_core.build import embed_revisions
from memp_core.dedupe import dedupe
from memp_core.embeddings import Embedder
from memp_core.models import Procedure, ProcedureRevision
from memp_core.review import approve
from memp_core.sim.lesson import read_lesson
from memp_core.store import Store

RITA = Actor("rita", "reviewer")
SCRIPT = """1. Find the egg: check fridge (3/4), countertop (1/4).
2. Take the egg.
3. Heat the egg with the microwave.
4. Go to the garbagecan and put the egg in it."""


def texts(at) -> list[str]:  # noqa: ANN001 (AppTest)
    return [t.value for t in at.text]


def test_the_page_says_what_the_procedure_teaches(store: Store, embedder: Embedder) -> None:
    with store.transaction() as s:
        proc = Procedure(key="heat-egg", title=EGG, task_type="heat")
        s.add(proc)
        s.flush()
        rev = ProcedureRevision(procedure_id=proc.id or 0, task_text=EGG, script=SCRIPT)
        embed_revisions(embedder, [rev])
        s.add(rev)
        s.flush()
        proc.current_revision_id = rev.id
        pid = int(proc.id or 0)
    at = open_in_all(pid)
    assert not at.exception, at.exception
    taught = read_lesson(SCRIPT, EGG, "heat").summary()
    assert "fridge" in taught and "microwave" in taught
    assert taught in texts(at)


def test_a_merge_proposal_shows_both_procedures(store: Store, embedder: Embedder) -> None:
    kept = add(store, embedder, "heat-egg", EGG, HEAT, uses=4)
    approve(store, int(kept.id or 0), actor=RITA)
    dup = add(store, embedder, "heat-egg-copy", EGG, planted_copy(HEAT), uses=2)
    (filing,) = dedupe(store, actor=system("dedupe")).filings
    at = open_in_all(int(kept.id or 0))
    assert not at.exception, at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "Merge of 2 near-duplicate procedures" in shown
    assert f"{dup.id}" in shown and filing.revision_id is not None


def test_a_proposal_on_a_pending_procedure_does_not_claim_anything_is_served(
    store: Store, embedder: Embedder
) -> None:
    kept = add(store, embedder, "heat-egg", EGG, HEAT, uses=4)  # pending: nothing served
    add(store, embedder, "heat-egg-copy", EGG, planted_copy(HEAT), uses=2)
    dedupe(store, actor=system("dedupe"))
    at = open_in_all(int(kept.id or 0))
    captions = [c.value for c in at.caption]
    assert "Agents are served nothing of this procedure until a reviewer approves it." in captions
    assert not any(c.startswith("Agents are served revision") for c in captions)
