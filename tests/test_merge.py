"""Merging near-duplicates: only a person accepts, every revision and both lineages are kept,
rejecting changes nothing, and a rollback to before the merge restores both procedures."""

from __future__ import annotations

from pathlib import Path

import pytest
from household_runs import add_run
from test_dedupe import EGG, HEAT, add, planted_copy
from typer.testing import CliRunner

from memp_core.actor import Actor, system
from memp_core.cli import app
from memp_core.dedupe import dedupe
from memp_core.embeddings import Embedder
from memp_core.errors import ConflictError, PermissionDeniedError
from memp_core.lineage import merge_parents, procedure_graph, task_type_graph
from memp_core.memory import ProceduralMemory
from memp_core.merge import merge_view
from memp_core.models import Procedure, ProcedureRevision, Step
from memp_core.review import ReviewError, approve, edit, reject, rollback
from memp_core.store import Store

RITA = Actor("rita", "reviewer")


class Pair:
    """An approved procedure and a pending near-duplicate of it, with a proposal filed."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        runs = [add_run(store, EGG, [Step(index=0, action="go to countertop 1")], task_type="heat")
                for _ in range(3)]  # fmt: skip
        self.kept = add(store, embedder, "heat-egg", EGG, HEAT, uses=4)
        self.kept = approve(store, int(self.kept.id or 0), actor=RITA)  # a person serves it
        self.dup = add(store, embedder, "heat-egg-copy", EGG, planted_copy(HEAT), uses=2)
        with store.transaction() as s:  # each cites its own runs as evidence
            for proc, ids in ((self.kept, runs[:1]), (self.dup, runs[1:])):
                rev = s.get(ProcedureRevision, proc.current_revision_id)
                assert rev is not None
                rev.evidence_trajectory_ids = ids
                s.add(rev)
        self.runs = runs
        (filing,) = dedupe(store, actor=system("dedupe")).filings
        self.proposal = int(filing.revision_id or 0)
        self.store = store

    def get(self, proc: Procedure) -> Procedure:
        return self.store.get(Procedure, int(proc.id or 0))

    def accept(self, actor: Actor = RITA) -> Procedure:
        return approve(self.store, int(self.kept.id or 0), actor=actor,
                       revision_id=self.proposal, comment="same thing")  # fmt: skip


@pytest.fixture(name="pair")
def pair_fixture(store: Store, embedder: Embedder) -> Pair:
    return Pair(store, embedder)


def test_the_proposal_waits_and_the_served_procedure_stays_as_it_was(pair: Pair) -> None:
    kept, dup = pair.get(pair.kept), pair.get(pair.dup)
    assert (kept.status, kept.current_revision_id) == ("approved", pair.kept.current_revision_id)
    assert kept.proposed_revision_id == pair.proposal
    assert (dup.status, dup.merged_into_id) == ("pending_review", None)
    view = merge_view(pair.store, pair.proposal)
    assert view is not None and view.state == "pending"
    assert [(s.procedure.id, s.kept, s.evidence) for s in view.sides] == [
        (kept.id, True, 1), (dup.id, False, 2),
    ]  # fmt: skip


def test_agents_viewers_and_memp_itself_cannot_accept_a_merge(pair: Pair) -> None:
    for actor in (Actor("bot", "admin", kind="agent"), Actor("vic", "viewer"), system("dedupe")):
        with pytest.raises(PermissionDeniedError):
            pair.accept(actor)
    assert pair.get(pair.dup).status == "pending_review"
    assert pair.get(pair.kept).proposed_revision_id == pair.proposal


def test_accepting_merges_with_both_lineages_and_every_revision_kept(pair: Pair) -> None:
    store = pair.store
    before = {r.id for p in (pair.kept, pair.dup) for r in store.revisions_of(int(p.id or 0))}
    kept = pair.accept()
    dup = pair.get(pair.dup)
    assert (kept.status, kept.current_revision_id, kept.proposed_revision_id) == (
        "approved", pair.proposal, None,
    )  # fmt: skip
    assert (kept.use_count, kept.success_count) == (4 + 2, 2 + 1)
    assert (dup.status, dup.merged_into_id) == ("merged", kept.id)
    after = {r.id for p in (kept, dup) for r in store.revisions_of(int(p.id or 0))}
    assert after == before  # the merge revision was already there as the proposal
    merged_rev = store.get(ProcedureRevision, pair.proposal)
    assert merged_rev.parent_revision_id == pair.kept.current_revision_id
    assert sorted(merged_rev.evidence_trajectory_ids) == sorted(pair.runs)
    for g in (procedure_graph(store, int(kept.id or 0)), procedure_graph(store, int(dup.id or 0))):
        assert set(g.nodes) == before  # either procedure's graph shows both lineages
        assert list(g.predecessors(pair.proposal)) == [pair.kept.current_revision_id,
                                                       pair.dup.current_revision_id]  # fmt: skip
        assert merge_parents(g, pair.proposal) == [pair.dup.current_revision_id]
        assert g.edges[pair.dup.current_revision_id, pair.proposal]["kind"] == "merge"
    assert merge_parents(task_type_graph(store, "heat"), pair.proposal) == [
        pair.dup.current_revision_id
    ]
    actions = [e.action for e in store.audit_events(object_type="procedure")]
    assert actions[:2] == ["merge_accept", "merged_into"]
    view = merge_view(store, pair.proposal)
    assert view is not None and view.state == "accepted"


def test_a_proposed_merge_is_drawn_as_proposed_until_accepted(pair: Pair) -> None:
    g = procedure_graph(pair.store, int(pair.dup.id or 0))
    assert g.edges[pair.dup.current_revision_id, pair.proposal]["kind"] == "proposed_merge"


def test_rejecting_the_proposal_leaves_both_as_they_were(pair: Pair) -> None:
    kept = reject(pair.store, int(pair.kept.id or 0), actor=RITA, reason="not the same",
                  revision_id=pair.proposal)  # fmt: skip
    dup = pair.get(pair.dup)
    assert (kept.status, kept.current_revision_id, kept.proposed_revision_id) == (
        "approved", pair.kept.current_revision_id, None,
    )  # fmt: skip
    assert (kept.use_count, dup.status, dup.merged_into_id) == (4, "pending_review", None)
    with pytest.raises(ConflictError):
        pair.accept()


def test_rollback_to_before_the_merge_unmerges_and_keeps_every_revision(pair: Pair) -> None:
    store = pair.store
    approve(store, int(pair.dup.id or 0), actor=RITA)  # it was served before the merge
    pair.accept()
    assert pair.get(pair.dup).status == "merged"
    n_before = len(store.revisions_of(int(pair.kept.id or 0)))
    before_merge = int(pair.kept.current_revision_id or 0)
    rev = rollback(store, int(pair.kept.id or 0), actor=RITA, to_revision_id=before_merge,
                   comment="two after all")  # fmt: skip
    kept, dup = pair.get(pair.kept), pair.get(pair.dup)
    assert (dup.status, dup.merged_into_id) == ("approved", None)
    assert (kept.status, kept.current_revision_id) == ("approved", rev.id)
    assert (kept.use_count, kept.success_count) == (4, 2)
    assert len(store.revisions_of(int(kept.id or 0))) == n_before + 1  # nothing deleted
    assert pair.get(pair.dup).current_revision_id == pair.dup.current_revision_id
    events = store.audit_events(object_type="procedure")
    assert [e.action for e in events[:3]] == ["rollback", "unmerge", "unmerge"]
    assert events[0].detail["unmerged"] == [dup.id]
    view = merge_view(store, pair.proposal)
    assert view is not None and view.state == "undone"


def test_rollback_to_the_merge_itself_leaves_the_merge_in_place(pair: Pair) -> None:
    store = pair.store
    pair.accept()
    kept_id = int(pair.kept.id or 0)
    edited = edit(store, kept_id, actor=RITA, script=HEAT + "\n7. done", comment="tidy",
                  base_revision_id=pair.proposal)  # fmt: skip
    rollback(store, kept_id, actor=RITA, to_revision_id=pair.proposal, base_revision_id=edited.id)
    assert pair.get(pair.dup).status == "merged"


def test_a_merged_procedure_is_not_served_by_retrieval(pair: Pair, embedder: Embedder) -> None:
    store = pair.store
    approve(store, int(pair.dup.id or 0), actor=RITA)
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    served = {i.procedure.id for i in mem.retrieve(EGG, k=5, log=False).items}
    assert served == {pair.kept.id, pair.dup.id}
    pair.accept()
    served = {i.procedure.id for i in mem.retrieve(EGG, k=5, log=False).items}
    assert served == {pair.kept.id}


def test_a_merged_procedure_takes_no_status_change(pair: Pair) -> None:
    pair.accept()
    with pytest.raises(ReviewError, match="merged into procedure"):
        approve(pair.store, int(pair.dup.id or 0), actor=RITA)
    assert pair.get(pair.dup).status == "merged"


def test_accepting_after_the_kept_procedure_moved_on_is_refused(pair: Pair) -> None:
    store = pair.store
    edit(store, int(pair.kept.id or 0), actor=RITA, script=HEAT + "\n7. done", comment="more",
         base_revision_id=int(pair.kept.current_revision_id or 0))  # fmt: skip
    with pytest.raises(ConflictError, match="moved on"):
        pair.accept()
    assert pair.get(pair.dup).status == "pending_review"


def test_accepting_after_the_merged_procedure_moved_on_is_refused(
    pair: Pair, embedder: Embedder
) -> None:
    reject(pair.store, int(pair.dup.id or 0), actor=RITA, reason="wrong")
    with pytest.raises(ConflictError, match="rejected now"):
        pair.accept()
    kept = pair.get(pair.kept)
    assert (kept.current_revision_id, kept.use_count) == (pair.kept.current_revision_id, 4)


def test_merge_unmerge_and_a_new_proposal_on_sqlite_and_postgres(
    any_store: Store, embedder: Embedder
) -> None:
    pair = Pair(any_store, embedder)
    pair.accept()
    assert pair.get(pair.dup).status == "merged"
    kept_id = int(pair.kept.id or 0)
    rollback(any_store, kept_id, actor=RITA, to_revision_id=int(pair.kept.current_revision_id or 0))
    assert (pair.get(pair.dup).status, pair.get(pair.dup).merged_into_id) == (
        "pending_review",
        None,
    )
    # the kept procedure moved on (a rollback revision): the pair may be proposed anew
    (again,) = dedupe(any_store, actor=RITA).filings
    assert again.state == "filed" and again.revision_id != pair.proposal


def test_a_restored_backup_keeps_the_merge_edges_and_can_unmerge(
    pair: Pair, embedder: Embedder, tmp_path: Path
) -> None:
    """Audit details name revisions only, which export and restore map to the new rows."""
    pair.accept()
    cli = CliRunner()
    out = cli.invoke(app, ["export", str(tmp_path / "exp"), "--what", "procedures",
                           "--db", pair.store.url])  # fmt: skip
    assert out.exit_code == 0, out.output
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    for i in range(3):  # rows already there: every id differs after the restore
        add(other, embedder, f"put-thing-{i}", f"put some thing{i} on shelf", HEAT,
            task_type="put")  # fmt: skip
    out = cli.invoke(app, ["import", str(tmp_path / "exp" / "procedures.jsonl"), "--format",
                           "jsonl", "--restore", "--db", other.url])  # fmt: skip
    assert out.exit_code == 0, out.output
    by_key = {p.key: p for p in other.procedures()}
    kept, dup = by_key["heat-egg"], by_key["heat-egg-copy"]
    assert (dup.status, dup.merged_into_id) == ("merged", kept.id)
    g = procedure_graph(other, int(kept.id or 0))
    assert merge_parents(g, int(kept.current_revision_id or 0)) == [dup.current_revision_id]
    first = other.revisions_of(int(kept.id or 0))[0]
    rollback(other, int(kept.id or 0), actor=RITA, to_revision_id=int(first.id or 0))
    dup = other.get(Procedure, int(dup.id or 0))
    assert (dup.status, dup.merged_into_id) == ("pending_review", None)
    assert [p.status for p in other.procedures(task_type="put")] == ["pending_review"] * 3


def test_a_new_run_of_a_merged_procedures_task_lands_on_the_kept_one(
    store: Store, embedder: Embedder
) -> None:
    """The merged-away procedure holds the task's own key: learning must follow its pointer,
    not revive it (before: the run landed on it and made it pending review while merged)."""
    kept = add(store, embedder, "heat-egg-first", EGG, HEAT, uses=4)
    kept = approve(store, int(kept.id or 0), actor=RITA)
    dup = add(store, embedder, "heat-egg-garbagecan", EGG, planted_copy(HEAT), uses=2)
    (filing,) = dedupe(store, actor=system("dedupe")).filings
    approve(store, int(kept.id or 0), actor=RITA, revision_id=int(filing.revision_id or 0))
    assert store.get(Procedure, int(dup.id or 0)).status == "merged"
    steps = [Step(index=0, action="go to countertop 1", observation="You see a egg 1.")]
    run = add_run(store, EGG, steps, task_type="heat")
    mem = ProceduralMemory(store, embedder=embedder, backend="heuristic")
    mem.update([run], policy="validation", actor=RITA)
    dup = store.get(Procedure, int(dup.id or 0))
    assert (dup.status, dup.merged_into_id) == ("merged", kept.id)
    assert len(store.revisions_of(int(dup.id or 0))) == 1  # nothing landed on it
    after = store.get(Procedure, int(kept.id or 0))
    proposal = store.get(ProcedureRevision, int(after.proposed_revision_id or 0))
    assert run in proposal.evidence_trajectory_ids  # the run's evidence went to the kept one
