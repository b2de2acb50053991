"""The review queue's read model as the Procedures page uses it: the filter choices (with the
pseudo-status "approved, with a proposal"), a page of the queue for a filter, each row's
success rate, and the revisions a procedure can be rolled back to."""

from __future__ import annotations

from memp_core.models import Procedure, ProcedureRevision
from memp_core.queue import (
    WITH_PROPOSAL,
    QueueFilter,
    procedure_detail,
    proposals_waiting,
    queue_options,
    queue_page,
    queue_rows,
)
from memp_core.store import Store
from memp_core.vocab import Status


def add(
    store: Store, key: str, status: str, *, task_type: str = "put", revisions: int = 1,
    proposal: bool = False, uses: int = 0, successes: int = 0, current: int = -1,
) -> int:  # fmt: skip
    """A procedure with ``revisions`` revisions in a chain, ``current`` (an index) served,
    and a proposal waiting beside it if ``proposal``."""
    with store.transaction() as s:
        p = Procedure(key=key, title=f"{key} the mug", task_type=task_type, status=status,
                      use_count=uses, success_count=successes)  # fmt: skip
        s.add(p)
        s.flush()
        chain: list[ProcedureRevision] = []
        for i in range(revisions + int(proposal)):
            rev = ProcedureRevision(
                procedure_id=p.id or 0, script=f"{i + 1}. Find the mug.",
                parent_revision_id=chain[-1].id if chain else None,
                origin="reflection" if proposal and i == revisions else "build",
                author="heuristic",
            )  # fmt: skip
            s.add(rev)
            s.flush()
            chain.append(rev)
        p.current_revision_id = chain[:revisions][current].id
        if proposal:
            p.proposed_revision_id = chain[-1].id
        return int(p.id or 0)


def keys(store: Store, flt: QueueFilter) -> list[str]:
    return sorted(p.key for p in queue_page(store, flt).rows)


def test_the_status_choices_are_every_status_then_approved_with_a_proposal(
    store: Store,
) -> None:
    add(store, "put", "pending_review", task_type="put")
    add(store, "heat", "approved", task_type="heat", proposal=True)
    add(store, "blank", "draft", task_type="")
    options = queue_options(store)
    assert options.statuses == [*(s.value for s in Status), "approved, with a proposal"]
    assert options.statuses[-1] == WITH_PROPOSAL
    assert options.task_types == ["heat", "put"]  # a blank task type is no choice
    assert options.origins == ["build", "reflection"]


def test_approved_with_a_proposal_finds_served_procedures_whose_proposal_waits(
    store: Store,
) -> None:
    add(store, "waiting", "approved", proposal=True)
    add(store, "served", "approved")
    add(store, "new", "pending_review")
    add(store, "other", "approved", task_type="heat", proposal=True)
    assert keys(store, QueueFilter(status=WITH_PROPOSAL)) == ["other", "waiting"]
    assert keys(store, QueueFilter(status="approved")) == ["other", "served", "waiting"]
    assert keys(store, QueueFilter(status="pending_review")) == ["new"]
    assert keys(store, QueueFilter()) == ["new", "other", "served", "waiting"]
    both = QueueFilter(status=WITH_PROPOSAL, task_type="put", origin="reflection")
    assert keys(store, both) == ["waiting"]
    assert queue_page(store, QueueFilter(status=WITH_PROPOSAL), limit=0).total == 2
    assert proposals_waiting(store) == 2


def test_a_queue_page_is_the_latest_changed_first_with_the_total(store: Store) -> None:
    ids = [add(store, f"p{i}", "pending_review") for i in range(5)]
    first = queue_page(store, QueueFilter(status="pending_review", text="the mug"), limit=2)
    rest = queue_page(store, QueueFilter(status="pending_review"), offset=2, limit=10)
    assert [p.id for p in first.rows] == ids[::-1][:2]
    assert [p.id for p in rest.rows] == ids[::-1][2:]
    assert (first.total, rest.total) == (5, 5)


def test_each_queue_row_carries_the_success_rate_of_its_procedure(store: Store) -> None:
    add(store, "used", "approved", uses=4, successes=3)
    add(store, "failing", "approved", uses=2, successes=0)
    unused = add(store, "unused", "pending_review")
    rows = queue_rows(store, queue_page(store, QueueFilter()).rows)
    rates = {r.procedure.key: r.success_rate for r in rows}
    assert rates == {"used": 0.75, "failing": 0.0, "unused": None}  # no uses: no rate, not 0%
    assert procedure_detail(store, unused).success_rate is None
    (used,) = [r for r in rows if r.procedure.key == "used"]
    assert procedure_detail(store, used.procedure.id or 0).success_rate == used.success_rate


def test_the_rollback_targets_are_every_revision_but_the_current_newest_first(
    store: Store,
) -> None:
    pid = add(store, "chain", "approved", revisions=4, current=1)  # rolled back once
    d = procedure_detail(store, pid)
    ids = [r.id for r in d.revisions]
    assert d.current is not None and d.current.id == ids[1]
    assert [r.id for r in d.rollback_targets] == [ids[3], ids[2], ids[0]]


def test_a_proposal_is_a_rollback_target_and_one_revision_has_none(store: Store) -> None:
    pid = add(store, "proposed", "approved", proposal=True)
    d = procedure_detail(store, pid)
    assert d.proposed is not None
    assert [r.id for r in d.rollback_targets] == [d.proposed.id]
    single = procedure_detail(store, add(store, "single", "pending_review"))
    assert single.rollback_targets == []
