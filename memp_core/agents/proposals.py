"""An agent's proposal becomes a revision or a procedure that waits for a person's review.

The rule: the proposal's title and task type give the same group key builds use
(:func:`memp_core.build.group_identity`). If the group has a live procedure, the proposal
becomes its next revision through :func:`memp_core.landing.land_revision`: on an approved
procedure it is the pending proposal (chained on an earlier one), and the approved revision
stays served until a person accepts it; on one still waiting for review (``pending_review``
or ``draft``) it becomes the current revision and the procedure stays pending. Without a
live procedure it becomes a new ``pending_review`` procedure. Either way a proposal never
changes what agents are served before a person approves it.
"""

from __future__ import annotations

from memp_core.agents.keys import Identity
from memp_core.agents.schemas import ProposalIn, ProposalOut
from memp_core.build import embed_revisions, group_identity
from memp_core.embeddings import Embedder
from memp_core.errors import MempError
from memp_core.facts import extract_facts, normalise_task
from memp_core.landing import PlannedBuild, add_procedure, head_revision_id, land_revision, live_in
from memp_core.models import Kind, Origin, ProcedureRevision, Status
from memp_core.prompts import normalise_script
from memp_core.store import Store


class ProposalError(MempError):
    """A proposal that cannot be saved as it is (e.g. its script is not numbered steps)."""


def write_proposal(
    store: Store, embedder: Embedder, who: Identity, proposal: ProposalIn, evidence: list[int]
) -> ProposalOut:
    try:
        script = normalise_script(proposal.script)
    except ValueError as exc:
        raise ProposalError(f"script: {exc}") from None
    facts = extract_facts(proposal.title)
    task_type = (proposal.task_type or facts.task_type or "").strip()
    _, key = group_identity(proposal.title, task_type)
    rev = ProcedureRevision(
        procedure_id=0, kind=Kind.script.value, task_text=normalise_task(proposal.title),
        script=script, origin=Origin.proposal.value, author=who.author, model=who.agent,
        rationale=proposal.rationale, evidence_trajectory_ids=evidence, facts=facts.as_dict(),
    )  # fmt: skip
    embed_revisions(embedder, [rev])
    with store.transaction() as s:
        live = live_in(s, key)
        if live is not None:
            procedure_id = int(live.id or 0)
            parent = head_revision_id(live)
            proposed = land_revision(
                s, procedure_id, rev, expected=parent, status=Status.pending_review
            )
            note = _note(procedure_id, proposed)
        else:
            plan = PlannedBuild(key=key, title=proposal.title.strip(), task_type=task_type,
                                revision=rev)  # fmt: skip
            procedure_id = int(add_procedure(s, plan, status=Status.pending_review).id or 0)
            parent, proposed = None, False
            note = "a new procedure, waiting for review"
        store.audit(s, who.author, "propose", "procedure", procedure_id, revision_id=rev.id,
                    parent_revision_id=parent, evidence=evidence,
                    proposal=proposed)  # fmt: skip
        return ProposalOut(
            procedure_id=procedure_id, revision_id=int(rev.id or 0), parent_revision_id=parent,
            status=Status.pending_review.value, note=note,  # the revision waits either way
        )  # fmt: skip


def _note(procedure_id: int, proposed: bool) -> str:
    if proposed:
        return (
            f"a proposed revision of procedure {procedure_id}, waiting for review; its "
            "approved revision is served as before meanwhile"
        )
    return f"a new revision of procedure {procedure_id}, which was already waiting for review"
