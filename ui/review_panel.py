"""The review queue's "why proposed" panel: what a reviewer reads before deciding on a revision.

Who wrote the revision under review and why, what it teaches the household agent, a merge's
procedures side by side, what it changes against the served revision (or its parent), the
runs cited as its evidence, and Replay against its parent on seeded simulator tasks. It lives
apart from pages/2_Procedures.py so that the page holds the queue and the review actions; the
approve and reject buttons stay on the page, under this panel, bound to the revision it shows.
Everything read from the database is shown as text (ui/safe.py).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from memp_core import loop
from memp_core.lineage import diff_to_parent, revision_text, unified_diff
from memp_core.models import Origin, Procedure, ProcedureRevision, Status, Trajectory
from memp_core.outcomes import outcome_of
from memp_core.queue import ProcedureDetail
from memp_core.sim.lesson import read_lesson
from memp_core.sim.replay import ReplayResult
from memp_core.store import Store
from ui.common import errors_shown, pct
from ui.merge_panel import merge_panel
from ui.picker import id_link, page_url
from ui.safe import md

TRAJ = "pages/1_Trajectories.py"
RUNS = {"run": id_link("trajectory", width="small")}  # trajectory id columns link to the run
REPLAY = "procs_replay_result"  # session key: the last replay, shown for its procedure only


def review_panel(store: Store, d: ProcedureDetail, rev: ProcedureRevision) -> None:
    """Why revision ``rev`` of ``d.procedure`` waits: who wrote it and why, what it changes,
    the runs behind it, and Replay, one click away."""
    proc, cur, prop = d.procedure, d.current, d.proposed
    proposed = prop is not None and cur is not None
    _heading(proc, rev, cur if proposed else None)
    if rev.origin == Origin.merge.value:
        merge_panel(store, rev.id or 0)
    older = cur if proposed else next((r for r in d.revisions
                                       if r.id == rev.parent_revision_id), None)  # fmt: skip
    view = "changes" if older is None else st.segmented_control(
        "Compare", ["changes", "side by side"], default="changes", key="procs_diff_view",
        label_visibility="collapsed")  # fmt: skip
    if view == "side by side" and older is not None:
        _side_by_side(older, rev, proposed)
    changes = view != "side by side"  # else both texts are above, the evidence goes left
    left, right = st.columns([3, 2] if changes else [1, 1])
    if changes:
        with left:
            _changes(store, proc, rev, cur if proposed else None)
    with right if changes else left:
        _evidence(rev, d.under_review_evidence)
    with right:
        _replay_controls(store, rev)
    res = st.session_state.get(REPLAY)
    if res is not None and res.procedure_id == proc.id:
        show_replay(res)


def _heading(proc: Procedure, rev: ProcedureRevision, served: ProcedureRevision | None) -> None:
    """Who wrote the revision, why, and what it teaches; ``served``: the approved revision
    agents get while ``rev`` is proposed beside it (None: ``rev`` is the current one)."""
    if served is not None:
        st.markdown(f"**Revision {rev.id} proposed, waiting for review** · origin "
                    f"{md(rev.origin)} · author {md(rev.author or '–')} · model "
                    f"{md(rev.model or '–')}")  # fmt: skip
        st.caption(f"Agents are served revision {served.id} until a reviewer approves this one."
                   if proc.status == Status.approved else "Agents are served nothing of this "
                   "procedure until a reviewer approves it.")  # fmt: skip
    else:
        st.markdown(f"**Current revision {rev.id}** · {md(rev.kind)} · origin {md(rev.origin)} · "
                    f"author {md(rev.author or '–')} · model {md(rev.model or '–')}")  # fmt: skip
        if rev.author == "heuristic":
            st.caption("Written by the offline heuristic backend (deterministic, no model).")
    if rev.rationale:
        st.caption("Why it was written")
        st.text(rev.rationale)
    lesson = read_lesson(rev.script, rev.task_text, proc.task_type)
    if not lesson.empty:  # the household agent reads memory with this very function
        st.caption("What it teaches")
        st.text(lesson.summary())


def _side_by_side(older: ProcedureRevision, rev: ProcedureRevision, proposed: bool) -> None:
    """Both texts in two columns: the served revision (or the parent) left, ``rev`` right."""
    was, now = st.columns(2)
    was.caption(f"Revision {older.id}" + (" (served)" if proposed else " (its parent)"))
    was.code(revision_text(older) or "(empty)", language=None, wrap_lines=True)
    now.caption(f"Revision {rev.id}" + (" (proposed)" if proposed else ""))
    now.code(revision_text(rev) or "(empty)", language=None, wrap_lines=True)


def _changes(
    store: Store, proc: Procedure, rev: ProcedureRevision, served: ProcedureRevision | None
) -> None:
    """A proposal as its diff to the served revision; else the revision's text, with its
    diff to the previous revision (open while the procedure waits for review)."""
    if served is not None:
        st.code(unified_diff(revision_text(served), revision_text(rev),
                             old_label=f"revision {served.id} (served)",
                             new_label=f"revision {rev.id} (proposed)")
                or "(same text as the served revision: the proposal adds evidence)",
                language="diff", wrap_lines=True)  # fmt: skip
        return
    st.code(revision_text(rev) or "(empty)", language=None, wrap_lines=True)
    with errors_shown():
        diff = diff_to_parent(store, rev)
    if diff is not None:
        with st.expander("Diff to the previous revision",
                         expanded=proc.status == Status.pending_review):  # fmt: skip
            st.code(diff or "(same text as the previous revision)", language="diff",
                    wrap_lines=True)  # fmt: skip


def _evidence(rev: ProcedureRevision, runs: list[Trajectory]) -> None:
    """The runs cited as the revision's evidence, each id a link to the run."""
    n = len(rev.evidence_trajectory_ids)
    st.caption(f"Evidence: {n} run{'' if n == 1 else 's'}" + (
        " (click an id to open the run)" if runs else ""))  # fmt: skip
    if runs:
        st.dataframe(
            pd.DataFrame([{"run": page_url(TRAJ, trajectory=t.id), "outcome":
                           outcome_of(t.success), "steps": t.step_count, "task": t.task}
                          for t in runs]),
            hide_index=True, width="stretch", height=min(38 + 35 * len(runs), 216),
            column_config=RUNS,
        )  # fmt: skip


def _replay_controls(store: Store, rev: ProcedureRevision) -> None:
    """Tasks, seed and the Replay button; the result is kept in the session under REPLAY."""
    r1, r2, r3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    n_tasks = r1.number_input("Tasks", 1, 200, 10, key="procs_replay_n")
    seed = r2.number_input("Seed", 0, 10_000, 0, key="procs_replay_seed")
    if r3.button(f"Replay revision {rev.id}", key="procs_replay",
                 help="Run it against its parent on seeded tasks of the household "
                 "simulator (a synthetic world, not ALFWorld); writes nothing"):  # fmt: skip
        with st.spinner("Running the household simulator…"), errors_shown():
            st.session_state[REPLAY] = loop.replay(
                store, rev.id or 0, parent=True, n_tasks=int(n_tasks), seed=int(seed)
            )


def show_replay(res: ReplayResult) -> None:
    """Revision vs its parent (or no memory), side by side."""
    mine, base = res.revision, res.baseline
    st.caption(f"{res.revision.tasks} {md(res.task_type)} tasks, seed {res.seed}: {md(res.note)}.")
    m = st.columns(4)
    m[0].metric(f"Success, {md(mine.label)}", pct(mine.success_rate),
                f"{res.delta_success * 100:+.0f} points",
                delta_color="normal" if round(res.delta_success * 100) else "off",
                delta_arrow="auto" if round(res.delta_success * 100) else "off",
                border=True)  # fmt: skip
    m[1].metric(f"Success, {md(base.label)}", pct(base.success_rate), border=True)
    m[2].metric(
        f"Mean steps, {md(mine.label)}",
        f"{mine.mean_steps:.1f}",
        f"{res.delta_steps:+.1f}",
        border=True,
        delta_color="inverse" if round(res.delta_steps, 1) else "off",
        delta_arrow="auto" if round(res.delta_steps, 1) else "off",  # no arrow on "no change"
    )  # fmt: skip  (fewer: better)
    m[3].metric(f"Mean steps, {md(base.label)}", f"{base.mean_steps:.1f}", border=True)
    with st.expander("Task by task"):
        st.dataframe(pd.DataFrame(res.per_task), hide_index=True, width="stretch")
