"""Build: turn trajectories into procedures (the paper's three build policies).

- ``trajectory``: the verbatim steps of the best run (success first, then fewest steps).
- ``script``: a numbered, general script the backend distils from the group's runs.
- ``proceduralization``: the script plus the best run's steps as a worked example.

Runs are grouped by task type and key facts (object, receptacle, tool), so near-identical
tasks ("put a hot apple in fridge", "heat some apple and put it in fridge") share one
procedure; sentences the fact parser does not know group by their normalised text. A group
whose procedure already exists gets a ``merge`` revision (the new runs join its evidence);
the script is re-distilled only while the procedure's content has come from runs alone (no
reflection, edit or rollback in its history). Once a reflection shaped it, a merge keeps
the reflection and *absorbs* the new successful runs into it (the backend's ``absorb``: the
heuristic adds their counts, the appliance that worked, what had to be opened; the openai
backend asks the model to keep the correction and add what the runs showed), so a corrected
procedure keeps learning; a backend without ``absorb`` keeps the content and the runs only
join the evidence. A reviewer's edit or a rollback is never rewritten by a merge.

How a planned revision lands (new procedure, merge, or the pending proposal of an approved
procedure, under optimistic concurrency) is :mod:`memp_core.landing`. Merges plan from the
procedure's head (its pending proposal if there is one), so several proposals chain.

Backend calls happen in :func:`plan_builds` (no transaction open); :func:`write_builds` then
writes everything inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from memp_core.embeddings import Embedder, to_bytes
from memp_core.errors import ConfigError, NotFoundError
from memp_core.facts import extract_facts, normalise_task
from memp_core.landing import (
    PlannedBuild,
    add_procedure,
    created_meanwhile,
    head_revision,
    land_revision,
    live_in,
    live_procedure,
)
from memp_core.llm import Backend, RunView, StepView
from memp_core.models import (
    Judgement,
    Kind,
    Origin,
    Procedure,
    ProcedureRevision,
    Status,
    Step,
    Trajectory,
)
from memp_core.outcomes import effective_outcomes
from memp_core.store import Store

BUILD_POLICIES: dict[str, Kind] = {
    "trajectory": Kind.trajectory,
    "script": Kind.script,
    "proceduralization": Kind.proceduralization,
}
MAX_RUNS_PER_SCRIPT = 5  # the best runs of a group that the backend reads


@dataclass(frozen=True)
class Evidence:
    """A stored trajectory with its steps, as the engine reads it."""

    trajectory: Trajectory
    steps: list[Step]
    # The outcome of a run whose recorded one is unknown, as memp_core.outcomes rules it: a
    # reviewed judgement's, or (where the setting allows) an unreviewed one's; None: unknown.
    judged_outcome: bool | None = None

    @property
    def success(self) -> bool | None:
        """The outcome builds and updates use: recorded, else judged (``judged_outcome``)."""
        recorded = self.trajectory.success
        return recorded if recorded is not None else self.judged_outcome

    @property
    def id(self) -> int:
        return int(self.trajectory.id or 0)

    @property
    def task_type(self) -> str:
        return self.trajectory.task_type or extract_facts(self.trajectory.task).task_type

    def run_view(self) -> RunView:
        steps = [StepView(s.action or "", s.observation or "", s.thought or "") for s in self.steps]
        t = self.trajectory
        return RunView(t.task, self.task_type, bool(self.success), steps, trajectory_id=t.id,
                       ended=_recorded_ending(t.facts))  # fmt: skip

    def step_dicts(self) -> list[dict[str, Any]]:
        return [
            {"thought": s.thought, "action": s.action, "observation": s.observation}
            for s in self.steps
        ]


def kind_of(policy: str) -> Kind:
    kind = BUILD_POLICIES.get(policy)
    if kind is None:
        valid = ", ".join(BUILD_POLICIES)
        raise ConfigError(f"unknown build policy {policy!r}; valid names: {valid}")
    return kind


def retrieval_text(kind: str, task_text: str, script: str) -> str:
    """What a revision's embedding is computed from: the task, plus the script if it has one."""
    if kind == Kind.trajectory.value or not script.strip():
        return task_text
    return f"{task_text}\n{script}"


def load_evidence(
    store: Store, ids: Sequence[int], *, count_unreviewed: bool = False
) -> list[Evidence]:
    """Trajectories with their steps, in the order asked, each with its effective outcome
    (``count_unreviewed``: settings.count_unreviewed_judgements); NotFoundError names
    missing ids."""
    wanted = list(dict.fromkeys(int(i) for i in ids))
    if not wanted:
        return []
    with store.session() as s:
        trajs = {t.id: t for t in s.exec(select(Trajectory).where(col(Trajectory.id).in_(wanted)))}
        missing = [i for i in wanted if i not in trajs]
        if missing:
            raise NotFoundError(f"trajectories not found: {', '.join(map(str, missing[:10]))}")
        steps: dict[int, list[Step]] = {i: [] for i in wanted}
        for st in s.exec(
            select(Step).where(col(Step.trajectory_id).in_(wanted)).order_by(col(Step.index))
        ):
            steps[st.trajectory_id].append(st)
    found = effective_outcomes(store, wanted, count_unreviewed=count_unreviewed)
    return [Evidence(trajs[i], steps[i], found[i].success) for i in wanted]


def unused_successes(store: Store, *, count_unreviewed: bool = False) -> list[int]:
    """Successful trajectories that no revision cites as evidence yet (oldest first): a
    recorded success, or an unknown outcome whose judgement counts as one (outcomes)."""
    with store.session() as s:
        used: set[int] = set()
        for ids in s.exec(select(ProcedureRevision.evidence_trajectory_ids)):
            used.update(ids or [])
        recorded = s.exec(select(Trajectory.id).where(col(Trajectory.success).is_(True))).all()
        # Of the unknown runs only those a judge read can count: the rest stay unknown.
        judged = s.exec(
            select(Judgement.trajectory_id)
            .join(Trajectory, col(Trajectory.id) == col(Judgement.trajectory_id))
            .where(col(Trajectory.success).is_(None))
            .distinct()
        ).all()
    maybe = sorted({int(i) for i in judged} - used)
    found = effective_outcomes(store, maybe, count_unreviewed=count_unreviewed)
    ids = {int(i or 0) for i in recorded} | {i for i in maybe if found[i].success is True}
    return sorted(ids - used)


def group_identity(task: str, task_type: str) -> tuple[str, str]:
    """``(task_type, slug)``: runs with the same pair share a procedure."""
    facts = extract_facts(task)
    task_type = task_type or facts.task_type
    if facts.task_type and facts.object:
        parts = [task_type, facts.object, facts.receptacle or facts.tool]
        return task_type, _slug("-".join(p for p in parts if p))
    text = normalise_task(task)
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    prefix = _slug(f"{task_type or 'task'}-{text}")[:48]
    return task_type, f"{prefix}-{digest}"


def best_first(runs: Sequence[Evidence]) -> list[Evidence]:
    """The evaluation order used everywhere: success first, then fewer steps, then newer."""
    return sorted(runs, key=lambda e: (e.success is not True, len(e.steps), -e.id))


def judged(runs: Sequence[Evidence]) -> list[Evidence]:
    """The runs with a recorded outcome. An unknown outcome (``success`` None) builds
    nothing, not even under ``vanilla``: it is not a success, and not a failure either,
    until it is judged or a person labels it (memp_core.outcomes)."""
    return [e for e in runs if e.success is not None]


def plan_builds(
    store: Store, backend: Backend, runs: Sequence[Evidence], *, policy: str
) -> list[PlannedBuild]:
    """Group ``runs`` and draft one revision per group (calls the backend; writes nothing).

    Runs whose outcome is unknown are left out (see :func:`judged`).
    """
    kind = kind_of(policy)
    groups: dict[tuple[str, str], list[Evidence]] = {}
    for ev in judged(runs):
        groups.setdefault(group_identity(ev.trajectory.task, ev.task_type), []).append(ev)
    plans: list[PlannedBuild] = []
    for (task_type, slug), members in groups.items():
        existing = live_procedure(store, slug)
        if existing is None:
            plans.append(_plan_new(backend, kind, task_type, slug, members))
        else:
            plans.append(_plan_merge(store, backend, kind, existing, members))
    return plans


def _plan_new(
    backend: Backend, kind: Kind, task_type: str, slug: str, runs: list[Evidence]
) -> PlannedBuild:
    ranked = best_first(runs)
    script, rationale, tokens = _distil(backend, kind, task_type, ranked)
    rev = _revision(backend, kind, ranked, script, rationale, [e.id for e in runs])
    rev.origin = Origin.build.value
    title = normalise_task(ranked[0].trajectory.task)
    return PlannedBuild(slug, title, task_type, rev, tokens=tokens, new_evidence=rev_ids(rev))


def _plan_merge(
    store: Store, backend: Backend, kind: Kind, proc: Procedure, runs: list[Evidence]
) -> PlannedBuild:
    current = head_revision(store, proc)  # a pending proposal is the newest knowledge
    known = [i for i in current.evidence_trajectory_ids if i not in {e.id for e in runs}]
    old = load_evidence(store, _existing_ids(store, known[-MAX_RUNS_PER_SCRIPT:]))
    ranked = best_first([*runs, *old])
    evidence = list(dict.fromkeys([*current.evidence_trajectory_ids, *(e.id for e in runs)]))
    shaped = shaping_origins(store, int(proc.id or 0))
    absorb = getattr(backend, "absorb", None)
    good = [e.run_view() for e in runs if e.trajectory.success is True]
    if not shaped:
        script, rationale, tokens = _distil(backend, kind, proc.task_type, ranked)
        rev = _revision(backend, kind, ranked, script, rationale, evidence)
    elif shaped == {Origin.reflection.value} and absorb is not None and good:
        # a reflection shaped it: keep the correction, and learn from the new successes too
        draft = absorb(current.script, good)
        tokens = draft.tokens
        rev = _copy_content(current, evidence)
        rev.script, rev.author, rev.model = draft.script, backend.author, backend.model
        rev.embedding = None if draft.script != current.script else current.embedding
        rev.rationale = f"{draft.rationale} Reflection kept from revision {current.id}."
    else:  # keep the reviewed (or reflected) wording; the runs only join the evidence
        tokens = 0
        rev = _copy_content(current, evidence)
        rev.rationale = (
            f"merged {len(runs)} run(s) as evidence; content kept from revision {current.id}"
        )
    rev.origin = Origin.merge.value
    rev.parent_revision_id = current.id
    changed = (rev.script, rev.steps) != (current.script, current.steps)
    return PlannedBuild(
        proc.key, proc.title, proc.task_type, rev, procedure_id=proc.id,
        expected_current=current.id, content_changed=changed, tokens=tokens,
        new_evidence=[e.id for e in runs],
    )  # fmt: skip


def content_from_runs(store: Store, procedure_id: int) -> bool:
    """True while no reflection, edit or rollback ever shaped this procedure's content."""
    return not shaping_origins(store, procedure_id)


def shaping_origins(store: Store, procedure_id: int) -> set[str]:
    """The origins (reflection, human edit, rollback) that ever shaped this procedure.

    Merges that keep content also have origin ``merge``, so the current revision's origin
    alone cannot tell; the history is read.
    """
    shaped = (Origin.reflection.value, Origin.human_edit.value, Origin.rollback.value)
    with store.session() as s:
        found = s.exec(
            select(ProcedureRevision.origin)
            .where(ProcedureRevision.procedure_id == procedure_id)
            .where(col(ProcedureRevision.origin).in_(shaped))
            .distinct()
        ).all()
    return {str(o) for o in found}


def _distil(
    backend: Backend, kind: Kind, task_type: str, ranked: list[Evidence]
) -> tuple[str, str, int]:
    if kind == Kind.trajectory:
        return "", "", 0
    good = [e for e in ranked if e.success is True] or ranked  # vanilla: failures too
    draft = backend.write_script(task_type, [e.run_view() for e in good[:MAX_RUNS_PER_SCRIPT]])
    return draft.script, draft.rationale, draft.tokens


def _revision(
    backend: Backend,
    kind: Kind,
    ranked: list[Evidence],
    script: str,
    rationale: str,
    evidence: list[int],
) -> ProcedureRevision:
    best = ranked[0]
    steps = best.step_dicts() if kind != Kind.script else []
    # Verbatim steps were written by the agent: its model is the revision's model (transfer).
    model = best.trajectory.agent_model if kind == Kind.trajectory else backend.model
    return ProcedureRevision(
        procedure_id=0,
        kind=kind.value,
        task_text=normalise_task(best.trajectory.task),
        script=script,
        steps=steps,
        author=backend.author,
        model=model,
        rationale=rationale,
        evidence_trajectory_ids=evidence,
        facts=extract_facts(best.trajectory.task).as_dict(),
    )


def _copy_content(src: ProcedureRevision, evidence: list[int]) -> ProcedureRevision:
    return ProcedureRevision(
        procedure_id=src.procedure_id,
        kind=src.kind,
        task_text=src.task_text,
        script=src.script,
        steps=list(src.steps),
        author=src.author,
        model=src.model,
        evidence_trajectory_ids=evidence,
        facts=dict(src.facts),
        embedding=src.embedding,
    )


def _existing_ids(store: Store, ids: list[int]) -> list[int]:
    if not ids:
        return []
    with store.session() as s:
        found = set(s.exec(select(Trajectory.id).where(col(Trajectory.id).in_(ids))).all())
    return [i for i in ids if i in found]


def rev_ids(rev: ProcedureRevision) -> list[int]:
    return list(rev.evidence_trajectory_ids)


# -- writing ----------------------------------------------------------------------------


def write_builds(
    s: Session, store: Store, plans: Sequence[PlannedBuild], *, status: Status, actor: str
) -> list[ProcedureRevision]:
    """Write planned builds inside the caller's transaction (embeddings already set).

    A group planned as new whose procedure another writer created meanwhile is a
    :class:`ConflictError` (nothing is written): building again merges into that procedure.
    """
    out: list[ProcedureRevision] = []
    for plan in plans:
        if plan.procedure_id is None:
            rival = live_in(s, plan.key)
            if rival is not None:
                raise created_meanwhile(rival.key)
            proc = add_procedure(s, plan, status=status)
            store.audit(s, actor, "build", "procedure", proc.id, revision_id=plan.revision.id,
                        evidence=plan.new_evidence, tokens=plan.tokens)  # fmt: skip
        else:
            proposed = land_revision(
                s, plan.procedure_id, plan.revision, expected=plan.expected_current,
                status=status, content_changed=plan.content_changed,
            )  # fmt: skip
            store.audit(s, actor, "merge", "procedure", plan.procedure_id,
                        revision_id=plan.revision.id, evidence=plan.new_evidence,
                        tokens=plan.tokens, proposal=proposed)  # fmt: skip
        out.append(plan.revision)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def embed_revisions(embedder: Embedder, revisions: Sequence[ProcedureRevision]) -> None:
    """Set the embedding of every revision that has none, in one batch."""
    todo = [r for r in revisions if r.embedding is None]
    if not todo:
        return
    texts = [retrieval_text(r.kind, r.task_text, r.script) for r in todo]
    for rev, vec in zip(todo, embedder.embed_array(texts), strict=True):
        rev.embedding = to_bytes(vec)


def _recorded_ending(facts: dict[str, Any] | None) -> str:
    """``facts["ended"]`` (written by the simulator loop) as one line, or ""."""
    ended = (facts or {}).get("ended")
    if not isinstance(ended, dict):
        return ""
    reason, detail = str(ended.get("reason") or ""), str(ended.get("detail") or "")
    return f"{reason.replace('_', ' ')}: {detail}" if reason and detail else reason or detail
