"""An agent's proposal becomes a procedure (or a revision) that waits for a person's review.

The rule (simplest sound one): the proposal's title and task type give the same group key
builds use (:func:`memp_core.build.group_identity`). If the group's live procedure is itself
still waiting for review (``pending_review`` or ``draft``), the proposal becomes its next
revision and it stays pending. Otherwise (no live procedure, or an approved one) the proposal
becomes a new ``pending_review`` procedure (key ``<group>-2`` ... beside an approved one):
a proposal never takes a served procedure out of service and never changes what agents are
served before a person approves it.
"""

from __future__ import annotations

from memp_core.agents.keys import Identity
from memp_core.agents.schemas import ProposalIn, ProposalOut
from memp_core.build import (
    PlannedBuild,
    add_procedure,
    append_revision,
    embed_revisions,
    group_identity,
    live_in,
)
from memp_core.embeddings import Embedder
from memp_core.errors import MempError
from memp_core.facts import extract_facts, normalise_task
from memp_core.models import Kind, Origin, ProcedureRevision, Status
from memp_core.prompts import normalise_script
from memp_core.store import Store

OPEN = (Status.pending_review.value, Status.draft.value)


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
        if live is not None and live.status in OPEN:
            parent = live.current_revision_id
            append_revision(s, int(live.id or 0), rev, expected_current=parent,
                            status=Status.pending_review.value)  # fmt: skip
            procedure_id = int(live.id or 0)
            note = (
                f"a new revision of procedure {procedure_id}, which was already waiting for review"
            )
        else:
            plan = PlannedBuild(key=key, title=proposal.title.strip(), task_type=task_type,
                                revision=rev)  # fmt: skip
            procedure_id = int(add_procedure(s, plan, status=Status.pending_review).id or 0)
            parent = None
            note = "a new procedure, waiting for review"
            if live is not None:
                note += f"; procedure {live.id} ({live.status}) is served as before meanwhile"
        store.audit(s, who.author, "propose", "procedure", procedure_id, revision_id=rev.id,
                    parent_revision_id=parent, evidence=evidence)  # fmt: skip
        return ProposalOut(
            procedure_id=procedure_id, revision_id=int(rev.id or 0), parent_revision_id=parent,
            status=Status.pending_review.value, note=note,
        )  # fmt: skip
