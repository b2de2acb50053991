"""Procedures and the review queue: read, edit, approve, reject, roll back, replay, pin."""

import pandas as pd
import streamlit as st

from memp_core.errors import ConflictError, MempError
from memp_core.lineage import RevisionUse, diff_to_parent, revision_text, unified_diff
from memp_core.models import Procedure, Status
from memp_core.queue import ProcedureDetail, list_procedures, procedure_detail
from ui.common import (
    changed,
    errors_shown,
    link,
    memory,
    optional_module,
    page,
    params_int,
    pct,
)

PAGE_SIZE = 25
ALL = "(all)"

ctx = page(
    "Procedures",
    ":material/rule:",
    "Review what agents will be served: only approved procedures are.",
)
store = ctx.store
review = optional_module("memp_core.review")
loop = optional_module("memp_core.loop")
can_review = ctx.person.can_review

if flash := st.session_state.pop("procs_flash", None):
    st.success(flash)

cols = st.columns([1, 1, 2])
status = cols[0].selectbox(
    "Status", [ALL, *(s.value for s in Status)], index=2, key="procs_status"
)  # index 2 = pending_review: the queue is what reviewers open this page for
with errors_shown():
    types = store.distinct_values(Procedure.task_type)
task_type = cols[1].selectbox("Task type", [ALL, *types], key="procs_type")
text = cols[2].text_input("Title contains", key="procs_text")
with errors_shown():
    total = list_procedures(
        store, status=None if status == ALL else status,
        task_type=None if task_type == ALL else task_type, text=text or None, limit=0,
    ).total  # fmt: skip
    pages = max(1, -(-total // PAGE_SIZE))
    page_no = st.columns(4)[0].number_input(f"Page (of {pages})", 1, pages, 1, key="procs_page")
    result = list_procedures(
        store, status=None if status == ALL else status,
        task_type=None if task_type == ALL else task_type, text=text or None,
        offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE,
    )  # fmt: skip
st.caption(f"{result.total:,} procedures match.")
table = pd.DataFrame(
    [{"id": p.id, "title": p.title, "task type": p.task_type, "status": p.status,
      "pinned": p.pinned, "uses": p.use_count, "successes": p.success_count,
      "success": p.success_count / p.use_count if p.use_count else None,
      "updated": p.updated_at} for p in result.rows],
    columns=["id", "title", "task type", "status", "pinned", "uses", "successes", "success",
             "updated"],
)  # fmt: skip
picked = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
    key="procs_table", height=min(38 + 35 * max(len(table), 1), 360),
    column_config={
        "title": st.column_config.TextColumn(width="large"),
        "pinned": st.column_config.CheckboxColumn(),
        "success": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
        "updated": st.column_config.DatetimeColumn(format="distance"),
    },
)  # fmt: skip
rows = picked.selection.rows if picked is not None else []
# A clicked row, else a linked id (?procedure=N), else the first row; the key carries the
# default so a new default shows a fresh input (see pages/1_Trajectories.py).
open_default = (
    (int(table.iloc[rows[0]]["id"]) if rows else None)
    or params_int("procedure")
    or (result.rows[0].id if result.rows else 0)
    or 0
)

st.divider()
pid = int(
    st.columns(4)[0].number_input(
        "Procedure id", min_value=0, value=open_default, step=1, key=f"procs_open_{open_default}"
    )
)
if not pid:
    st.info("No procedure to show. Pick a row above or type an id.")
    st.stop()
with errors_shown():
    d: ProcedureDetail = procedure_detail(store, pid)
proc, cur = d.procedure, d.current
cur_id = cur.id if cur is not None else None  # approving names what was read: no stale approvals

st.subheader(f"Procedure {proc.id}")
st.text(proc.title)
STATUS_COLORS = {"approved": "green", "pending_review": "orange", "rejected": "red",
                 "deprecated": "gray", "draft": "blue"}  # fmt: skip
b = st.columns([1, 1, 6])
b[0].badge(proc.status, color=STATUS_COLORS.get(proc.status, "gray"))
if proc.pinned:
    b[1].badge("pinned", icon=":material/push_pin:", color="violet")
st.caption(f"Task type {proc.task_type or '–'} · key {proc.key}")
m = st.columns(4)
m[0].metric("Uses", proc.use_count, border=True)
m[1].metric("Successes", proc.success_count, border=True)
m[2].metric("Success rate", pct(d.success_rate), border=True)
m[3].metric("Revisions", len(d.revisions), border=True)
link("pages/3_Lineage.py", "Lineage graph", ":material/account_tree:", procedure=str(pid))

if cur is not None:
    st.markdown(
        f"**Current revision {cur.id}** · {cur.kind} · origin `{cur.origin}` · "
        f"author `{cur.author or '–'}` · model `{cur.model or '–'}`"
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


def act(label: str, fn, *args, **kwargs) -> None:  # noqa: ANN001 (a review function)
    """Run one review action; show MempErrors in place, a flash message on success."""
    try:
        fn(store, pid, *args, actor=ctx.actor(), **kwargs)
    except MempError as exc:
        st.error(str(exc))
        return
    changed()
    st.session_state["procs_flash"] = f"{label}: procedure {pid}."
    st.rerun()


def show_replay(res) -> None:  # noqa: ANN001 (memp_core.sim.replay.ReplayResult)
    """Revision vs its parent (or no memory), side by side."""
    mine, base = res.revision, res.baseline
    st.caption(f"{res.revision.tasks} {res.task_type} tasks, seed {res.seed}: {res.note}.")
    m = st.columns(4)
    m[0].metric(
        f"Success, {mine.label}",
        pct(mine.success_rate),
        f"{res.delta_success * 100:+.0f} points",
        delta_color="normal" if res.delta_success else "off",
        border=True,
    )
    m[1].metric(f"Success, {base.label}", pct(base.success_rate), border=True)
    m[2].metric(
        f"Mean steps, {mine.label}",
        f"{mine.mean_steps:.1f}",
        f"{res.delta_steps:+.1f}",
        delta_color="inverse" if res.delta_steps else "off",  # fewer steps is better
        border=True,
    )
    m[3].metric(f"Mean steps, {base.label}", f"{base.mean_steps:.1f}", border=True)
    with st.expander("Task by task"):
        st.dataframe(pd.DataFrame(res.per_task), hide_index=True, width="stretch")


def editor_keys() -> tuple[str, str, str]:
    return f"procs_edit_text_{pid}", f"procs_edit_base_{pid}", f"procs_edit_comment_{pid}"


tab_review, tab_edit, tab_rollback, tab_replay, tab_more, tab_evidence = st.tabs(
    ["Review", "Edit", "Roll back", "Replay", "Pin / deprecate", "Evidence and history"]
)
if not can_review:
    st.caption(f"You are signed in as a {ctx.person.role}: you can read but not change memory.")
no_review = "memp_core.review is not available yet (the engine's review module has not landed)."

with tab_review:
    if review is None:
        st.info(no_review)
    else:
        comment = st.text_input("Comment (optional)", key=f"procs_comment_{pid}")
        reason = st.text_input("Reason for rejecting", key=f"procs_reason_{pid}")
        b1, b2, _ = st.columns([1, 1, 4])
        if b1.button("Approve", type="primary", disabled=not can_review, key="procs_approve"):
            act("Approved", review.approve, comment=comment, revision_id=cur_id)
        if b2.button("Reject", disabled=not can_review, key="procs_reject"):
            if not reason.strip():
                st.error("Give a reason for rejecting.")
            else:
                act("Rejected", review.reject, reason=reason, revision_id=cur_id)

with tab_edit:
    text_key, base_key, comment_key = editor_keys()
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
    e1, e2 = st.columns([1, 3])
    save = e1.button("Save as new revision", disabled=not can_review or review is None,
                     key="procs_save")  # fmt: skip
    if e2.button("Discard and reload the current revision", key="procs_reload"):
        for k in (text_key, base_key):
            st.session_state.pop(k, None)
        st.rerun()
    if save and review is not None:
        try:
            review.edit(
                store,
                pid,
                actor=ctx.actor(),
                script=st.session_state[text_key],
                comment=st.session_state.get(comment_key, ""),
                base_revision_id=base,
                embedder=memory(ctx).embedder,
            )
        except ConflictError as exc:
            st.error(f"Not saved: {exc} Your text is kept in the editor above: copy it, "
                     "reload the current revision, and apply your change again.")  # fmt: skip
        except MempError as exc:
            st.error(str(exc))
        else:
            for k in (text_key, base_key, comment_key):
                st.session_state.pop(k, None)
            changed()
            st.session_state["procs_flash"] = f"Saved a new revision of procedure {pid}."
            st.rerun()

with tab_rollback:
    older = [r for r in reversed(d.revisions) if cur is None or r.id != cur.id]
    if not older:
        st.caption("Only one revision: nothing to roll back to.")
    elif review is None:
        st.info(no_review)
    else:
        labels = {f"revision {r.id} · {r.origin} · {r.author} · {r.created_at:%Y-%m-%d %H:%M}":
                  r.id for r in older}  # fmt: skip
        target = st.selectbox("Roll back to", list(labels), key=f"procs_rb_target_{pid}")
        target_rev = next(r for r in older if r.id == labels[target])
        st.code(unified_diff(revision_text(cur) if cur else "", revision_text(target_rev),
                             old_label="current", new_label=target), language="diff")  # fmt: skip
        rb_comment = st.text_input("Comment", key=f"procs_rb_comment_{pid}")
        if st.button("Roll back (adds a new revision)", disabled=not can_review,
                     key="procs_rollback"):  # fmt: skip
            act("Rolled back", review.rollback, to_revision_id=labels[target],
                comment=rb_comment, base_revision_id=cur_id)  # fmt: skip

with tab_replay:
    st.caption("Replay a revision against its parent on N seeded tasks of the household "
               "simulator (a synthetic world, not ALFWorld) before approving.")  # fmt: skip
    if loop is None or not hasattr(loop, "replay"):
        st.info("Replay is not available yet (memp_core.loop.replay has not landed).")
    elif not d.revisions:
        st.caption("No revision to replay.")
    else:
        choices = {
            f"revision {r.id} · {r.origin} · {r.author}": r.id for r in reversed(d.revisions)
        }
        r0, r1, r2 = st.columns([2, 1, 1])
        which = r0.selectbox(
            "Revision (against its parent)", list(choices), key=f"procs_replay_rev_{pid}"
        )
        n_tasks = r1.number_input("Tasks", 1, 200, 10, key="procs_replay_n")
        seed = r2.number_input("Seed", 0, 10_000, 0, key="procs_replay_seed")
        if st.button("Replay", key="procs_replay"):
            with st.spinner("Running the household simulator…"), errors_shown():
                st.session_state["procs_replay_result"] = loop.replay(
                    store, choices[which], parent=True, n_tasks=int(n_tasks), seed=int(seed)
                )
        res = st.session_state.get("procs_replay_result")
        if res is not None and res.procedure_id == pid:
            show_replay(res)

with tab_more:
    if review is None:
        st.info(no_review)
    else:
        pin_label = "Unpin" if proc.pinned else "Pin (automatic deprecation leaves it alone)"
        if st.button(pin_label, disabled=not can_review, key="procs_pin"):
            act("Unpinned" if proc.pinned else "Pinned", review.set_pinned,
                pinned=not proc.pinned)  # fmt: skip
        dep_reason = st.text_input("Reason for deprecating", key=f"procs_dep_reason_{pid}")
        if st.button("Deprecate", disabled=not can_review or proc.status == "deprecated",
                     key="procs_deprecate"):  # fmt: skip
            if not dep_reason.strip():
                st.error("Give a reason for deprecating.")
            else:
                act("Deprecated", review.deprecate, reason=dep_reason)

with tab_evidence:
    st.caption("Evidence runs of the current revision")
    st.dataframe(
        pd.DataFrame([{"id": t.id, "task": t.task, "success": t.success, "steps": t.step_count,
                       "source": t.source} for t in d.evidence],
                     columns=["id", "task", "success", "steps", "source"]),
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
