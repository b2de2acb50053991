"""Procedures and the review queue: read, edit, approve, reject, roll back, replay, pin.

The open procedure is held by its id (``?procedure=N`` in the URL, see ui/picker.py), never by
a row of the queue: the queue re-sorts by last update after every write. Every review button
names the procedure and revision it acts on and carries them as its callback's arguments, so
a click acts on exactly what the reviewer read on screen.
"""

from collections.abc import Callable

import pandas as pd
import streamlit as st

from memp_core import loop, review
from memp_core.agents.activity import feedback_on, proposed_by
from memp_core.agents.reads import with_revisions
from memp_core.errors import ConflictError, MempError
from memp_core.lineage import RevisionUse, diff_to_parent, revision_text, unified_diff
from memp_core.models import Procedure, Status
from memp_core.outcomes import outcome_of
from memp_core.queue import ProcedureDetail, list_procedures, procedure_detail
from ui.common import changed, errors_shown, link, memory, page, pct
from ui.picker import id_input, id_table, open_id
from ui.safe import md, md_badge

PAGE_SIZE = 25
ALL = "(all)"
PROPOSED = "approved, with a proposal"  # served, with a newer revision waiting for review
TABLE = "procs_table"
FEEDBACK = "procs_feedback"
STATUS_COLORS = {"approved": "green", "pending_review": "orange", "rejected": "red",
                 "deprecated": "gray", "draft": "blue"}  # fmt: skip

ctx = page(
    "Procedures",
    ":material/rule:",
    "Review what agents will be served: only approved procedures are.",
)
store = ctx.store
can_review = ctx.person.can_review

cols = st.columns([1, 1, 2])


def new_filter() -> None:
    """A changed filter opens the first match again, not the procedure opened before."""
    st.query_params.pop("procedure", None)


status = cols[0].selectbox(
    "Status", [ALL, *(s.value for s in Status), PROPOSED], index=2, key="procs_status",
    on_change=new_filter,
)  # index 2 = pending_review: the queue is what reviewers open this page for  # fmt: skip
filters = {
    "status": Status.approved.value if status == PROPOSED else (None if status == ALL else status),
    "with_proposal": True if status == PROPOSED else None,
}
with errors_shown():
    types = store.distinct_values(Procedure.task_type)
task_type = cols[1].selectbox("Task type", [ALL, *types], key="procs_type", on_change=new_filter)
text = cols[2].text_input("Title contains", key="procs_text", on_change=new_filter)
with errors_shown():
    total = list_procedures(
        store, **filters, task_type=None if task_type == ALL else task_type,
        text=text or None, limit=0,
    ).total  # fmt: skip
    pages = max(1, -(-total // PAGE_SIZE))
    page_no = st.columns(4)[0].number_input(f"Page (of {pages})", 1, pages, 1, key="procs_page")
    result = list_procedures(
        store, **filters, task_type=None if task_type == ALL else task_type, text=text or None,
        offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE,
    )  # fmt: skip
    waiting = list_procedures(store, status=Status.approved.value, with_proposal=True, limit=0)
    by_agent = proposed_by(store, result.rows)  # the agent whose proposal waits, if any
st.caption(f"{result.total:,} procedures match. Click a row to open it.")
if waiting.total and status == Status.pending_review.value:
    st.caption(f"{waiting.total:,} approved procedures also have a revision proposed, waiting "
               f"for review: choose status “{PROPOSED}”.")  # fmt: skip
pid = open_id(TABLE, "procedure", result.rows[0].id if result.rows else None) or 0
table = pd.DataFrame(
    [{"id": p.id, "title": p.title, "task type": p.task_type, "status": p.status,
      "proposal": p.proposed_revision_id, "proposed by": by_agent.get(p.id or 0, ""),
      "pinned": p.pinned, "uses": p.use_count,
      "successes": p.success_count,
      "success": p.success_count / p.use_count if p.use_count else None,
      "updated": p.updated_at} for p in result.rows],
    columns=["id", "title", "task type", "status", "proposal", "proposed by", "pinned", "uses",
             "successes", "success", "updated"],
)  # fmt: skip
id_table(
    table, [p.id for p in result.rows], pid, key=TABLE,
    height=min(38 + 35 * max(len(table), 1), 360),
    column_config={
        "title": st.column_config.TextColumn(width="large"),
        "pinned": st.column_config.CheckboxColumn(),
        "proposal": st.column_config.NumberColumn(help="A revision waiting for review "
                                                  "while the approved one is served"),
        "proposed by": st.column_config.TextColumn(help="The agent (API key) whose proposal "
                                                   "waits for review"),
        "success": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
        "updated": st.column_config.DatetimeColumn(format="distance"),
    },
)  # fmt: skip

st.divider()
pid = id_input("Procedure id", pid, key="procs_open_id", param="procedure")
if not pid:
    st.info("No procedure to show. Pick a row above or type an id.")
    st.stop()
with errors_shown():
    d: ProcedureDetail = procedure_detail(store, pid)
proc, cur = d.procedure, d.current
cur_id = cur.id if cur is not None else None  # approving names what was read: no stale approvals
of_this = f"procedure {pid}" + (f" · revision {cur_id}" if cur_id is not None else "")

st.subheader(f"Procedure {proc.id}")
st.text(proc.title)
b = st.columns([1, 1, 6])
b[0].badge(md_badge(proc.status), color=STATUS_COLORS.get(proc.status, "gray"))
if proc.pinned:
    b[1].badge("pinned", icon=":material/push_pin:", color="violet")
st.caption(f"Task type {md(proc.task_type or '–')} · key {md(proc.key)}")
m = st.columns(4)
m[0].metric("Uses", proc.use_count, border=True)
m[1].metric("Successes", proc.success_count, border=True)
m[2].metric("Success rate", pct(d.success_rate), border=True)
m[3].metric("Revisions", len(d.revisions), border=True)
with errors_shown():
    ratings = with_revisions(store, [proc])[0].feedback  # agents' and people's word on it
    rated = feedback_on(store, pid)
st.caption("Feedback: " + (" · ".join(f"{n} {md(r)}" for r, n in sorted(ratings.items()))
                           or "none yet"))  # fmt: skip
if rated:
    with st.expander(f"Feedback ({len(rated)})"):
        st.dataframe(  # reasons come from agents: a table shows them as text
            pd.DataFrame([{"who": f.actor, "revision": f.revision_id, "rating": f.rating,
                           "reason": f.reason, "trajectory": f.trajectory_id,
                           "when": f.created_at} for f in rated]),
            hide_index=True, width="stretch",
        )  # fmt: skip
link("pages/3_Lineage.py", "Lineage graph", ":material/account_tree:", procedure=str(pid))

if cur is not None:
    st.markdown(
        f"**Current revision {cur.id}** · {md(cur.kind)} · origin {md(cur.origin)} · "
        f"author {md(cur.author or '–')} · model {md(cur.model or '–')}"
    )
    if cur.author == "heuristic":
        st.caption("Written by the offline heuristic backend (deterministic, no model).")
    st.code(revision_text(cur) or "(empty)", language=None, wrap_lines=True)
    if cur.rationale:
        st.caption("Rationale")
        st.text(cur.rationale)
    with errors_shown():
        diff = diff_to_parent(store, cur)
    if diff is not None:
        with st.expander("Diff to the previous revision"):
            st.code(diff or "(same text as the previous revision)", language="diff")


# -- the review actions: callbacks bound to the procedure and revision their button names ----


def done(target: int, message: str) -> None:
    """After a write: fresh reads everywhere, and stay on the procedure acted on."""
    changed()
    st.query_params["procedure"] = str(target)
    st.session_state[FEEDBACK] = ("success", message)


def act(
    label: str, fn: Callable[..., object], target: int, kwargs: dict[str, object],
    typed: dict[str, str] | None = None, required: tuple[str, str] | None = None,
) -> None:  # fmt: skip
    """A review button's callback: ``fn`` on procedure ``target``, bound when the button was
    drawn. ``typed``: keyword -> session key of a text box, read at click time; ``required``:
    (keyword, message) refused when that text is blank."""
    values = {name: str(st.session_state.get(key) or "") for name, key in (typed or {}).items()}
    if required is not None and not values.get(required[0], "").strip():
        st.session_state[FEEDBACK] = ("error", required[1])
        return
    try:
        fn(store, target, actor=ctx.actor(), **kwargs, **values)
    except MempError as exc:
        st.session_state[FEEDBACK] = ("error", str(exc))
    else:
        done(target, f"{label} procedure {target}.")


def save_edit(target: int, keys: tuple[str, str, str]) -> None:
    text_key, base_key, comment_key = keys
    try:
        review.edit(
            store, target, actor=ctx.actor(), script=st.session_state[text_key],
            comment=st.session_state.get(comment_key, ""),
            base_revision_id=st.session_state[base_key], embedder=memory(ctx).embedder,
        )  # fmt: skip
    except ConflictError as exc:
        st.session_state[FEEDBACK] = (
            "error", f"Not saved: {exc} Your text is kept in the editor below: copy it, "
            "reload the current revision, and apply your change again.",
        )  # fmt: skip
    except MempError as exc:
        st.session_state[FEEDBACK] = ("error", str(exc))
    else:
        for k in keys:
            st.session_state.pop(k, None)
        done(target, f"Saved a new revision of procedure {target}.")


def show_replay(res) -> None:  # noqa: ANN001 (memp_core.sim.replay.ReplayResult)
    """Revision vs its parent (or no memory), side by side."""
    mine, base = res.revision, res.baseline
    st.caption(f"{res.revision.tasks} {md(res.task_type)} tasks, seed {res.seed}: {md(res.note)}.")
    m = st.columns(4)
    m[0].metric(
        f"Success, {md(mine.label)}",
        pct(mine.success_rate),
        f"{res.delta_success * 100:+.0f} points",
        delta_color="normal" if res.delta_success else "off",
        border=True,
    )
    m[1].metric(f"Success, {md(base.label)}", pct(base.success_rate), border=True)
    m[2].metric(
        f"Mean steps, {md(mine.label)}",
        f"{mine.mean_steps:.1f}",
        f"{res.delta_steps:+.1f}",
        delta_color="inverse" if res.delta_steps else "off",  # fewer steps is better
        border=True,
    )
    m[3].metric(f"Mean steps, {md(base.label)}", f"{base.mean_steps:.1f}", border=True)
    with st.expander("Task by task"):
        st.dataframe(pd.DataFrame(res.per_task), hide_index=True, width="stretch")


if feedback := st.session_state.pop(FEEDBACK, None):
    kind, message = feedback
    (st.success if kind == "success" else st.error)(md(message))
if not can_review:
    st.caption(f"You are signed in as a {ctx.person.role}: you can read but not change memory.")

prop = d.proposed
if prop is not None and cur is not None:
    with st.container(border=True):
        st.markdown(f"**Revision {prop.id} proposed, waiting for review** · origin "
                    f"{md(prop.origin)} · author {md(prop.author or '–')} · model "
                    f"{md(prop.model or '–')}")  # fmt: skip
        st.caption(f"Agents are served revision {cur.id} until a reviewer approves this one.")
        if prop.rationale:
            st.text(prop.rationale)
        st.code(
            unified_diff(revision_text(cur), revision_text(prop),
                         old_label=f"revision {cur.id} (served)",
                         new_label=f"revision {prop.id} (proposed)")
            or "(same text as the served revision: the proposal adds evidence)",
            language="diff", wrap_lines=True,
        )  # fmt: skip
        pc_key, pr_key = f"procs_prop_comment_{pid}", f"procs_prop_reason_{pid}"
        p0, p1 = st.columns(2)
        p0.text_input("Comment (optional)", key=pc_key)
        p1.text_input("Reason for rejecting the proposal", key=pr_key)
        a0, a1, _ = st.columns([2, 2, 3])
        a0.button(f"Approve proposed revision {prop.id}", type="primary",
                  disabled=not can_review, key="procs_approve_proposal", on_click=act,
                  args=(f"Approved proposed revision {prop.id} of", review.approve, pid,
                        {"revision_id": prop.id}, {"comment": pc_key}))  # fmt: skip
        a1.button(f"Reject proposed revision {prop.id}", disabled=not can_review,
                  key="procs_reject_proposal", on_click=act,
                  args=(f"Rejected proposed revision {prop.id} of", review.reject, pid,
                        {"revision_id": prop.id}, {"reason": pr_key},
                        ("reason", "Give a reason for rejecting the proposal.")))  # fmt: skip

tab_review, tab_edit, tab_rollback, tab_replay, tab_more, tab_evidence = st.tabs(
    ["Review", "Edit", "Roll back", "Replay", "Pin / deprecate", "Evidence and history"]
)

with tab_review:
    comment_key, reason_key = f"procs_comment_{pid}", f"procs_reason_{pid}"
    st.text_input("Comment (optional)", key=comment_key)
    st.text_input("Reason for rejecting", key=reason_key)
    b1, b2, _ = st.columns([2, 2, 3])
    b1.button(f"Approve {of_this}", type="primary", disabled=not can_review, key="procs_approve",
              on_click=act, args=("Approved", review.approve, pid, {"revision_id": cur_id},
                                  {"comment": comment_key}))  # fmt: skip
    b2.button(f"Reject {of_this}", disabled=not can_review, key="procs_reject", on_click=act,
              args=("Rejected", review.reject, pid, {"revision_id": cur_id},
                    {"reason": reason_key}, ("reason", "Give a reason for rejecting.")),
              )  # fmt: skip

with tab_edit:
    keys = (f"procs_edit_text_{pid}", f"procs_edit_base_{pid}", f"procs_edit_comment_{pid}")
    text_key, base_key, comment_key = keys
    if text_key not in st.session_state and cur is not None:
        st.session_state[text_key] = cur.script
        st.session_state[base_key] = cur.id
    base = st.session_state.get(base_key)
    st.caption(f"Editing from revision {base}. Saving adds a new revision with your comment.")
    st.text_area("Script", key=text_key, height=220)
    st.text_input("Comment", key=comment_key)
    if cur is not None and st.session_state.get(text_key, "") != cur.script:
        with st.expander("Preview: diff to the current revision", expanded=True):
            st.code(unified_diff(cur.script, st.session_state[text_key],
                                 old_label=f"revision {cur.id}", new_label="your edit"),
                    language="diff")  # fmt: skip
    e1, e2 = st.columns([2, 2])
    e1.button(f"Save as a new revision of procedure {pid} (from revision {base})",
              disabled=not can_review or base is None, key="procs_save", on_click=save_edit,
              args=(pid, keys))  # fmt: skip
    if e2.button("Discard and reload the current revision", key="procs_reload"):
        for k in (text_key, base_key):
            st.session_state.pop(k, None)
        st.rerun()

with tab_rollback:
    older = [r for r in reversed(d.revisions) if cur is None or r.id != cur.id]
    if not older:
        st.caption("Only one revision: nothing to roll back to.")
    else:
        # Options are revision ids; the label is plain text built from them.
        labels = {r.id: f"revision {r.id} · {r.origin} · {r.author} · "
                  f"{r.created_at:%Y-%m-%d %H:%M}" for r in older}  # fmt: skip
        target = st.selectbox("Roll back to", list(labels), format_func=labels.__getitem__,
                              key=f"procs_rb_target_{pid}")  # fmt: skip
        target_rev = next(r for r in older if r.id == target)
        st.code(unified_diff(revision_text(cur) if cur else "", revision_text(target_rev),
                             old_label="current", new_label=f"revision {target}"),
                language="diff")  # fmt: skip
        rb_comment = f"procs_rb_comment_{pid}"
        st.text_input("Comment", key=rb_comment)
        st.button(f"Roll back procedure {pid} to revision {target} (adds a new revision)",
                  disabled=not can_review, key="procs_rollback", on_click=act,
                  args=("Rolled back", review.rollback, pid,
                        {"to_revision_id": target, "base_revision_id": cur_id},
                        {"comment": rb_comment}))  # fmt: skip

with tab_replay:
    st.caption("Replay a revision against its parent on N seeded tasks of the household "
               "simulator (a synthetic world, not ALFWorld) before approving.")  # fmt: skip
    if not d.revisions:
        st.caption("No revision to replay.")
    else:
        choices = {r.id: f"revision {r.id} · {r.origin} · {r.author}"
                   for r in reversed(d.revisions)}  # fmt: skip
        r0, r1, r2 = st.columns([2, 1, 1])
        which = r0.selectbox("Revision (against its parent)", list(choices),
                             format_func=choices.__getitem__,
                             key=f"procs_replay_rev_{pid}")  # fmt: skip
        n_tasks = r1.number_input("Tasks", 1, 200, 10, key="procs_replay_n")
        seed = r2.number_input("Seed", 0, 10_000, 0, key="procs_replay_seed")
        if st.button(f"Replay revision {which}", key="procs_replay"):
            with st.spinner("Running the household simulator…"), errors_shown():
                st.session_state["procs_replay_result"] = loop.replay(
                    store, which, parent=True, n_tasks=int(n_tasks), seed=int(seed)
                )
        res = st.session_state.get("procs_replay_result")
        if res is not None and res.procedure_id == pid:
            show_replay(res)

with tab_more:
    pin_label = f"Unpin procedure {pid}" if proc.pinned else (
        f"Pin procedure {pid} (automatic deprecation leaves it alone)")  # fmt: skip
    st.button(pin_label, disabled=not can_review, key="procs_pin", on_click=act,
              args=("Unpinned" if proc.pinned else "Pinned", review.set_pinned, pid,
                    {"pinned": not proc.pinned}))  # fmt: skip
    dep_reason = f"procs_dep_reason_{pid}"
    st.text_input("Reason for deprecating", key=dep_reason)
    st.button(f"Deprecate procedure {pid}", key="procs_deprecate",
              disabled=not can_review or proc.status == "deprecated", on_click=act,
              args=("Deprecated", review.deprecate, pid, {}, {"reason": dep_reason},
                    ("reason", "Give a reason for deprecating.")))  # fmt: skip

with tab_evidence:
    st.caption("Evidence runs of the current revision")
    st.dataframe(
        pd.DataFrame([{"id": t.id, "task": t.task, "outcome": outcome_of(t.success),
                       "steps": t.step_count, "source": t.source} for t in d.evidence],
                     columns=["id", "task", "outcome", "steps", "source"]),
        hide_index=True, width="stretch",
    )  # fmt: skip
    st.caption("Latest runs that followed a revision of this procedure")
    st.dataframe(
        pd.DataFrame([{"id": t.id, "revision": t.procedure_revision_id, "task": t.task,
                       "outcome": outcome_of(t.success), "steps": t.step_count,
                       "agent": t.reporting_agent or t.agent_model} for t in d.recent_uses],
                     columns=["id", "revision", "task", "outcome", "steps", "agent"]),
        hide_index=True, width="stretch",
    )  # fmt: skip
    st.caption("Revisions (oldest first) with how agents did when following each")
    st.dataframe(
        pd.DataFrame([{"revision": r.id, "parent": r.parent_revision_id, "origin": r.origin,
                       "author": r.author, "model": r.model,
                       "uses": d.uses.get(r.id or 0, RevisionUse()).uses,
                       "success": d.uses.get(r.id or 0, RevisionUse()).success_rate,
                       "created": r.created_at, "rationale": r.rationale}
                      for r in d.revisions]),
        hide_index=True, width="stretch",
        column_config={"success": st.column_config.NumberColumn(format="percent")},
    )  # fmt: skip
    st.caption("Reviewer actions on this procedure")
    st.dataframe(
        pd.DataFrame([{"when": e.created_at, "who": e.actor, "action": e.action,
                       "detail": str(e.detail)} for e in d.audit],
                     columns=["when", "who", "action", "detail"]),
        hide_index=True, width="stretch",
    )  # fmt: skip
