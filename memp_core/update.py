"""Update: what memory learns after a task or a group of tasks.

Policies (``UPDATE_POLICIES``):
- ``none``: memory is frozen (nothing is written, not even use counts).
- ``vanilla``: every trajectory with a recorded outcome is built into memory (failures too,
  as in the paper).
- ``validation``: only successful trajectories are built.
- ``reflect``: successes are built; each failure that followed a procedure revision is
  handed to the backend with that procedure's script, and the revised script becomes a new
  **child** revision (origin ``reflection``, the analysis as rationale, the failed run as
  evidence). A failure that followed no procedure, of a group
  (:func:`memp_core.build.group_identity`) with no live procedure and no build in the same
  update, is reflected on with an empty script: the backend writes the group's **first**
  procedure from the failure alone (origin ``reflection``, kind ``script``: a failed run's
  steps are no example to follow), saying
  what the run saw fail (the appliance that did nothing, the place that would not open,
  where the object was not) and nothing it did not see. Several such failures of one group
  in one update chain into that one revision. So a task type that always fails until the
  household's convention is known still gets a procedure to correct. Other failures that
  followed no procedure (their group already has a procedure they did not follow) are
  skipped; ``vanilla`` builds failures anyway and ``validation`` never learns from them.

A trajectory whose outcome is unknown (``success`` None: nobody recorded a verdict) is no
success and no failure: no policy builds or reflects on it, and it is not counted as a use.

For every policy but ``none``, each trajectory that followed a revision counts as a use of
its procedure (and a success if it succeeded); a procedure used at least
``settings.deprecate_min_uses`` times with a success rate below ``settings.deprecate_below``
is deprecated unless pinned. Call ``update`` once per trajectory: counts are not de-duplicated.

What waits for review (``auto_approve`` False) never takes an approved procedure out of
service: on an approved procedure a reflection or a merge that changes its content becomes
its pending proposal (:func:`memp_core.landing.land_revision`) and the approved revision stays
served until a person accepts it; several proposals chain (each reflects on or merges into
the latest). On a procedure waiting for review anyway, the new revision becomes current.
A procedure deprecated here drops its pending proposal (the revision stays in its lineage).

Backend calls run first with no transaction open; all writes of one update then land in a
single transaction. Revisions are only ever added, never changed or deleted. The audit log
names ``actor`` (who ran the update: ``memp:update`` by default, the program) for builds,
merges, reflections and deprecations; each revision's ``author`` names the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlmodel import Session

from memp_core.build import (
    Evidence,
    embed_revisions,
    group_identity,
    load_evidence,
    plan_builds,
    write_builds,
)
from memp_core.config import Settings
from memp_core.embeddings import Embedder
from memp_core.errors import ConflictError
from memp_core.facts import extract_facts, normalise_task
from memp_core.landing import (
    PlannedBuild,
    add_procedure,
    head_revision,
    head_revision_id,
    land_revision,
    live_in,
    live_procedure,
)
from memp_core.llm import Backend
from memp_core.models import Kind, Origin, Procedure, ProcedureRevision, Status
from memp_core.registry import resolve
from memp_core.store import Store

UPDATE_POLICIES: dict[str, str] = {
    "none": "memp_core.update:select_none",
    "vanilla": "memp_core.update:select_vanilla",
    "validation": "memp_core.update:select_validation",
    "reflect": "memp_core.update:select_reflect",
}
UPDATE_ACTOR = "memp:update"


@dataclass(frozen=True)
class Selection:
    """Which runs an update policy builds from and which it reflects on."""

    build: list[Evidence] = field(default_factory=list)
    reflect: list[Evidence] = field(default_factory=list)
    frozen: bool = False


@dataclass(frozen=True)
class UpdateReport:
    policy: str
    built: list[int] = field(default_factory=list)  # revision ids from build or merge
    reflected: list[int] = field(default_factory=list)  # revision ids from reflection
    founded: list[int] = field(default_factory=list)  # of those, first revisions of new procedures
    deprecated: list[int] = field(default_factory=list)  # procedure ids
    counted: int = 0  # trajectories counted as a use of a procedure
    skipped: list[int] = field(default_factory=list)  # failures that followed no procedure
    tokens: int = 0


@dataclass
class PlannedFounding:
    """A new procedure written by reflecting on failures that followed none."""

    slug: str
    title: str
    task_type: str
    revision: ProcedureRevision
    failed_ids: list[int]
    tokens: int


@dataclass
class PlannedReflection:
    procedure_id: int
    revision: ProcedureRevision
    failed_id: int
    followed_revision_id: int
    tokens: int


def select_none(runs: Sequence[Evidence]) -> Selection:
    return Selection(frozen=True)


def select_vanilla(runs: Sequence[Evidence]) -> Selection:
    return Selection(build=[r for r in runs if r.success is not None])


def select_validation(runs: Sequence[Evidence]) -> Selection:
    return Selection(build=[r for r in runs if r.success is True])


def select_reflect(runs: Sequence[Evidence]) -> Selection:
    return Selection(
        build=[r for r in runs if r.success is True],
        reflect=[r for r in runs if r.success is False],
    )


def update(
    store: Store,
    backend: Backend,
    embedder: Embedder,
    settings: Settings,
    trajectory_ids: Sequence[int],
    *,
    policy: str,
    build_policy: str = "script",
    auto_approve: bool = False,
    actor: str = UPDATE_ACTOR,
) -> UpdateReport:
    """Apply ``policy`` to the given trajectories; see the module docstring."""
    choose: Callable[[Sequence[Evidence]], Selection] = resolve(
        UPDATE_POLICIES, policy, "update policy"
    )
    runs = load_evidence(
        store, trajectory_ids, count_unreviewed=settings.count_unreviewed_judgements
    )
    chosen = choose(runs)
    if chosen.frozen:
        return UpdateReport(policy)
    builds = plan_builds(store, backend, chosen.build, policy=build_policy)
    reflections = plan_reflections(store, backend, chosen.reflect)
    building = {p.key for p in builds}
    foundings = plan_foundings(store, backend, chosen.reflect, building)
    revisions = [p.revision for p in builds] + [r.revision for r in reflections]
    embed_revisions(embedder, revisions + [f.revision for f in foundings])
    status = Status.approved if auto_approve else Status.pending_review
    with store.transaction() as s:
        built = write_builds(s, store, builds, status=status, actor=actor)
        advanced = {r.procedure_id: int(r.id or 0) for r in built}
        reflected = write_reflections(s, store, reflections, advanced, status, actor)
        founded = write_foundings(s, store, foundings, status, actor)
        counted, deprecated = count_uses(s, store, runs, settings, actor)
    learned = {i for f in foundings for i in f.failed_ids}
    return UpdateReport(
        policy=policy,
        built=[int(r.id or 0) for r in built],
        reflected=reflected + founded,
        founded=founded,
        deprecated=deprecated,
        counted=counted,
        skipped=[
            r.id
            for r in chosen.reflect
            if r.trajectory.procedure_revision_id is None and r.id not in learned
        ],
        tokens=sum(p.tokens for p in builds)
        + sum(r.tokens for r in reflections)
        + sum(f.tokens for f in foundings),
    )


def script_of(rev: ProcedureRevision) -> str:
    """The script a revision gives an agent; verbatim steps become numbered actions."""
    if rev.script.strip():
        return rev.script
    actions = [str(st["action"]) for st in rev.steps if st.get("action")]
    return "\n".join(f"{i}. {a}" for i, a in enumerate(actions, start=1))


def plan_reflections(
    store: Store, backend: Backend, failures: Sequence[Evidence]
) -> list[PlannedReflection]:
    """Reflect on each failure that followed a revision (backend calls; writes nothing).

    Several failures of one procedure in a batch chain: each reflects on the script the
    previous reflection wrote. When the procedure has moved on since the run started, the
    reflection revises its head (the newest knowledge: a pending proposal if there is one,
    else the current revision), not the one followed.
    """
    plans: list[PlannedReflection] = []
    latest: dict[int, ProcedureRevision] = {}
    for ev in failures:
        followed_id = ev.trajectory.procedure_revision_id
        if followed_id is None:
            continue
        followed = store.get(ProcedureRevision, followed_id)
        pid = followed.procedure_id
        base = latest.get(pid) or head_revision(store, store.get(Procedure, pid))
        refl = backend.reflect(ev.run_view(), script_of(base))
        moved = pid in latest or base.id != followed_id
        note = f" (the run followed revision {followed_id})" if moved else ""
        # A script stays a script; a revision with example steps keeps them under the new script.
        kind = Kind.script if base.kind == Kind.script.value else Kind.proceduralization
        child = ProcedureRevision(
            procedure_id=pid,
            kind=kind.value,
            task_text=base.task_text,
            script=refl.script,
            steps=list(base.steps),
            origin=Origin.reflection.value,
            author=backend.author,
            model=backend.model,
            rationale=refl.analysis + note,
            evidence_trajectory_ids=[ev.id],
            facts=dict(base.facts),
        )
        latest[pid] = child
        plans.append(PlannedReflection(pid, child, ev.id, followed_id, refl.tokens))
    return plans


def plan_foundings(
    store: Store, backend: Backend, failures: Sequence[Evidence], building: set[str]
) -> list[PlannedFounding]:
    """Reflect on failures that followed no procedure, in groups that have none (backend
    calls; writes nothing). ``building``: groups this update builds from successes anyway."""
    plans: dict[str, PlannedFounding] = {}
    for ev in failures:
        if ev.trajectory.procedure_revision_id is not None:
            continue
        task_type, slug = group_identity(ev.trajectory.task, ev.task_type)
        if slug in building or (slug not in plans and live_procedure(store, slug) is not None):
            continue
        plan = plans.get(slug)
        base = plan.revision.script if plan is not None else ""
        refl = backend.reflect(ev.run_view(), base)
        if plan is None:
            rev = ProcedureRevision(
                procedure_id=0,
                kind=Kind.script.value,
                task_text=normalise_task(ev.trajectory.task),
                script=refl.script,
                steps=[],
                origin=Origin.reflection.value,
                author=backend.author,
                model=backend.model,
                rationale=refl.analysis,
                evidence_trajectory_ids=[ev.id],
                facts=extract_facts(ev.trajectory.task).as_dict(),
            )
            title = normalise_task(ev.trajectory.task)
            plans[slug] = PlannedFounding(slug, title, task_type, rev, [ev.id], refl.tokens)
            continue
        plan.revision.script = refl.script
        plan.revision.rationale += f" Then run #{ev.id}: {refl.analysis}"
        plan.revision.evidence_trajectory_ids = [*plan.failed_ids, ev.id]
        plan.failed_ids.append(ev.id)
        plan.tokens += refl.tokens
    return list(plans.values())


def write_foundings(
    s: Session,
    store: Store,
    plans: Sequence[PlannedFounding],
    status: Status,
    actor: str = UPDATE_ACTOR,
) -> list[int]:
    """Create the planned procedures; one another writer created meanwhile is a
    :class:`ConflictError` (nothing is written: update again and the failure is skipped)."""
    out: list[int] = []
    for plan in plans:
        rival = live_in(s, plan.slug)
        if rival is not None:
            raise ConflictError(
                f"procedure {rival.key} was created by another writer while failures were "
                "reflected on; nothing was saved. Update again."
            )
        build = PlannedBuild(plan.slug, plan.title, plan.task_type, plan.revision)
        proc = add_procedure(s, build, status=status)
        store.audit(
            s, actor, "reflect", "procedure", proc.id, revision_id=plan.revision.id,
            parent_revision_id=None, failed_trajectory_ids=plan.failed_ids,
            followed_revision_id=None, tokens=plan.tokens, backend=plan.revision.author,
            new_procedure=True,
        )  # fmt: skip
        out.append(int(plan.revision.id or 0))
    return out


def write_reflections(
    s: Session,
    store: Store,
    plans: Sequence[PlannedReflection],
    advanced: dict[int, int],
    status: Status,
    actor: str = UPDATE_ACTOR,
) -> list[int]:
    """Append the planned child revisions, chaining several on one procedure; on an
    approved procedure waiting for review means becoming its proposal (``proposal`` in the
    audit event)."""
    out: list[int] = []
    for plan in plans:
        proc = s.get(Procedure, plan.procedure_id)
        expected = advanced.get(plan.procedure_id, head_revision_id(proc) if proc else None)
        rev = plan.revision
        proposed = land_revision(s, plan.procedure_id, rev, expected=expected, status=status)
        advanced[plan.procedure_id] = int(rev.id or 0)
        store.audit(
            s, actor, "reflect", "procedure", plan.procedure_id, revision_id=rev.id,
            parent_revision_id=expected, failed_trajectory_id=plan.failed_id,
            followed_revision_id=plan.followed_revision_id, tokens=plan.tokens,
            backend=plan.revision.author, proposal=proposed,
        )  # fmt: skip
        out.append(int(rev.id or 0))
    return out


def count_uses(
    s: Session,
    store: Store,
    runs: Sequence[Evidence],
    settings: Settings,
    actor: str = UPDATE_ACTOR,
) -> tuple[int, list[int]]:
    """Count each run as a use of the procedure it followed; deprecate the failing ones."""
    followed: list[tuple[Evidence, int]] = []
    for ev in runs:
        rid = ev.trajectory.procedure_revision_id
        if ev.success is None:
            continue  # unknown: counting it would read as a failure in the success rate
        rev = s.get(ProcedureRevision, rid) if rid is not None else None
        if rev is not None:
            followed.append((ev, rev.procedure_id))
    # Row locks (Postgres; SQLite's write lock is already held), taken in id order so two
    # concurrent updates never wait on each other crosswise: their counts add up.
    touched: dict[int, Procedure] = {}
    for pid in sorted({pid for _, pid in followed}):
        proc = s.get(Procedure, pid, with_for_update=True, populate_existing=True)
        if proc is not None:
            touched[pid] = proc
    counted = 0
    for ev, pid in followed:
        proc = touched.get(pid)
        if proc is None:
            continue
        proc.use_count += 1
        proc.success_count += int(ev.success)
        counted += 1
    deprecated: list[int] = []
    for pid, proc in touched.items():
        if should_deprecate(proc, settings):
            dropped, proc.proposed_revision_id = proc.proposed_revision_id, None
            proc.status = Status.deprecated.value
            deprecated.append(pid)
            store.audit(
                s, actor, "deprecate", "procedure", pid,
                use_count=proc.use_count, success_count=proc.success_count,
                min_uses=settings.deprecate_min_uses, below=settings.deprecate_below,
                dropped_proposal=dropped,
            )  # fmt: skip
        s.add(proc)
    return counted, deprecated


def should_deprecate(proc: Procedure, settings: Settings) -> bool:
    if proc.pinned or proc.status in (Status.deprecated.value, Status.rejected.value):
        return False
    if proc.use_count < settings.deprecate_min_uses or proc.use_count == 0:
        return False
    return proc.success_count / proc.use_count < settings.deprecate_below
