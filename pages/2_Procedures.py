"""Procedures and the review queue: read, decide, edit, roll back, replay, pin.

The open procedure is held by its id (``?procedure=N`` in the URL, see ui/picker.py), never by
a row of the queue: the queue re-sorts by last update after every write. Every review button
names the procedure and revision it acts on and carries them, and the procedure to open
next, as its callback's arguments, so a click acts on exactly what the reviewer read on
screen and approve-and-next lands the next decision on the procedure it names. What the
reviewer reads above those buttons (why proposed, diff, evidence, replay) is ui/review_panel.py.
"""

from collections.abc import Callable

import pandas as pd
import streamlit as st

from memp_core import review
from memp_core.agents.activity import feedback_on, proposed_by
from memp_core.agents.reads import with_revisions
from memp_core.errors import ConflictError, MempError
from memp_core.lineage import RevisionUse, revision_text, unified_diff
from memp_core.models import Procedure, ProcedureRevision, Status
from memp_core.outcomes import outcome_of
from memp_core.queue import (
    WITH_PROPOSAL,
    QueueFilter,
    next_after,
    procedure_detail,
    proposals_waiting,
    queue_options,
    queue_page,
    queue_rows,
)
from ui.common import changed, errors_shown, link, memory, page, pct, status_badge
from ui.picker import id_input, id_table, open_id, page_url, set_param, url_int, url_text
from ui.picker import url_choice as choice
from ui.review_panel import RUNS, TRAJ, review_panel
from ui.safe import md

PAGE_SIZE = 25
ALL = "(all)"
TABLE = "procs_table"
FEEDBACK = "procs_feedback"
# The queue's columns and their widths in px ("title" takes what is left of FIT).
WIDTHS = {"id": 44, "title": 0, "status": 104, "origin": 78, "author": 78, "evidence": 40,
          "revisions": 40, "proposal": 64, "proposed by": 72, "uses": 44, "success": 72,
          "updated": 92}  # fmt: skip
FIT, MIN_TITLE = 780, 150

ctx = page(
    "Procedures",
    ":material/rule:",
    "Review what agents will be served: only approved procedures are.",
)
store = ctx.store
can_review = ctx.person.can_review

# -- the queue: filters live in the URL (a link opens the same queue) -------------------------
with errors_shown():
    options = queue_options(store)
cols = st.columns([1.5, 1, 1, 1.7])
drop = ("procedure", "page")  # a new filter opens its first match on its first page
status = choice(
    cols[0],
    "Status",
    [ALL, *options.statuses],
    key="procs_status",
    param="status",
    default=Status.pending_review.value,
    drop=drop,
)  # fmt: skip  (pending_review: what reviewers open this page for)
origin = choice(cols[1], "Origin", [ALL, *options.origins], key="procs_origin", param="origin",
                    default=ALL, drop=drop,
                    help="What wrote the revision waiting for review (the proposal, else the "
                    "current revision): a build, a reflection on a failed run, a merge, an "
                    "agent's proposal, a reviewer's edit")  # fmt: skip
task_type = choice(cols[2], "Task type", [ALL, *options.task_types], key="procs_type", param="type",
                       default=ALL, drop=drop)  # fmt: skip
text = url_text(cols[3], "Title contains", key="procs_text", param="q", drop=drop)
flt = QueueFilter(
    status=None if status == ALL else status, task_type=None if task_type == ALL else task_type,
    origin=None if origin == ALL else origin, text=text or None,
)  # fmt: skip
with errors_shown():
    total = queue_page(store, flt, limit=0).total
    pages = max(1, -(-total // PAGE_SIZE))
    page_no = url_int(st.columns(4)[0], f"Page (of {pages})", key="procs_page", param="page",
                      default=1, lo=1, hi=pages, drop=("procedure",))  # fmt: skip
    # One row past the page: the procedure after the last one shown, for approve-and-next.
    result = queue_page(store, flt, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1)
    shown = result.rows[:PAGE_SIZE]
    rows = queue_rows(store, shown)
    waiting = proposals_waiting(store)
    by_agent = proposed_by(store, shown)  # the agent whose proposal waits, if any
st.caption(f"{result.total:,} procedures match. Click a row to open it.")
if waiting and status == Status.pending_review.value:
    st.caption(f"{waiting:,} approved procedures also have a revision proposed, waiting "
               f"for review: choose status “{WITH_PROPOSAL}”.")  # fmt: skip
pid = open_id(TABLE, "procedure", shown[0].id if shown else None) or 0
table = pd.DataFrame(
    [{"id": r.procedure.id, "title": r.procedure.title, "status": r.procedure.status,
      "origin": r.origin, "author": r.author, "evidence": r.evidence, "revisions": r.revisions,
      "proposal": r.procedure.proposed_revision_id,
      "proposed by": by_agent.get(r.procedure.id or 0, ""), "uses": r.procedure.use_count,
      "success": r.success_rate,
      "updated": r.procedure.updated_at} for r in rows],
    columns=[*WIDTHS],
)  # fmt: skip
# Fit the main area at 1280 px (~790 px beside the sidebar): leave out a column every row
# holds the same value in (the status filtered on, no proposal), then "updated" if need be.
hidden = {c for c, same in (("status", status != ALL), ("proposal", not table["proposal"].any()),
                            ("proposed by", not by_agent)) if same}  # fmt: skip
if FIT - sum(w for c, w in WIDTHS.items() if c not in hidden) < MIN_TITLE:
    hidden.add("updated")
num, txt = st.column_config.NumberColumn, st.column_config.TextColumn
id_table(
    table, [p.id for p in shown], pid, key=TABLE, height=min(38 + 35 * max(len(table), 1), 360),
    column_order=[c for c in WIDTHS if c not in hidden], placeholder="–",
    column_config={
        "id": num(width=WIDTHS["id"]),
        "title": txt(width=FIT - sum(w for c, w in WIDTHS.items() if c not in hidden)),
        "status": txt(width=WIDTHS["status"]),
        "origin": txt(width=WIDTHS["origin"], help="What wrote the revision under review (the "
                      "proposal, else the current one)"),
        "author": txt(width=WIDTHS["author"]),
        "evidence": num("runs", width=WIDTHS["evidence"], help="Runs cited as evidence by the "
                        "revision under review"),
        "revisions": num("revs", width=WIDTHS["revisions"], help="Revisions of the procedure"),
        "proposal": num(width=WIDTHS["proposal"], help="A revision waiting for review while the "
                        "approved one is served"),
        "proposed by": txt("by agent", width=WIDTHS["proposed by"], help="The agent (API key) "
                           "whose proposal waits for review"),
        "uses": num(width=WIDTHS["uses"]),
        "success": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1,
                                                   width=WIDTHS["success"]),
        "updated": st.column_config.DatetimeColumn(format="distance", width=WIDTHS["updated"]),
    },
)  # fmt: skip


st.divider()
pid = id_input("Procedure id", pid, key="procs_open_id", param="procedure", where=st.columns(4)[0])
if not pid:
    st.info("No procedure to show. Pick a row above or type an id.")
    st.stop()
with errors_shown():
    d = procedure_detail(store, pid, count_unreviewed=ctx.settings.count_unreviewed_judgements)
proc, cur, prop = d.procedure, d.current, d.proposed
cur_id = cur.id if cur is not None else None  # approving names what was read: no stale approvals
then = next_after([p.id for p in result.rows if p.id is not None], pid)

st.subheader(f"Procedure {proc.id}")
st.text(proc.title)
b = st.columns([2, 1, 5])
status_badge(proc.status, b[0])
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
                           "reason": f.reason, "run": page_url(TRAJ, trajectory=f.trajectory_id),
                           "when": f.created_at} for f in rated]),
            hide_index=True, width="stretch", column_config=RUNS,
        )  # fmt: skip
link("pages/3_Lineage.py", "Lineage graph", ":material/account_tree:", procedure=str(pid))


# -- the review actions: callbacks bound to the procedure and revision their button names ----


def done(target: int, message: str, then: int | None = None) -> None:
    """After a write: fresh reads everywhere; open ``then`` (approve-and-next) or stay on the
    procedure acted on."""
    changed()
    going = then if then and st.session_state.get("procs_next", True) else None
    set_param("procedure", going or target)
    note = f" Next in the queue: procedure {going}." if going else ""
    st.session_state[FEEDBACK] = ("success", message + note)


def act(
    label: str, fn: Callable[..., object], target: int, kwargs: dict[str, object],
    typed: dict[str, str] | None = None, required: tuple[str, str] | None = None,
    then: int | None = None,
) -> None:  # fmt: skip
    """A review button's callback: ``fn`` on procedure ``target``, bound when the button was
    drawn. ``typed``: keyword -> session key of a text box, read at click time; ``required``:
    (keyword, message) refused when that text is blank; ``then``: the procedure to open next."""
    values = {name: str(st.session_state.get(key) or "") for name, key in (typed or {}).items()}
    if required is not None and not values.get(required[0], "").strip():
        st.session_state[FEEDBACK] = ("error", required[1])
        return
    try:
        fn(store, target, actor=ctx.actor(), **kwargs, **values)
    except MempError as exc:
        st.session_state[FEEDBACK] = ("error", str(exc))
    else:
        done(target, f"{label} procedure {target}.", then)


def save_edit(target: int, keys: tuple[str, str, str]) -> None:
    text_key, base_key, comment_key = keys
    try:
        rev = review.edit(
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
        after = store.get(Procedure, target)  # say where the edit landed, as the core put it
        where = (f" It is waiting for review; revision {after.current_revision_id} stays served."
                 if after.proposed_revision_id == rev.id else
                 " It is served now." if after.status == Status.approved else "")  # fmt: skip
        done(target, f"Saved a new revision of procedure {target}: revision {rev.id}.{where}")


def decide(rev: ProcedureRevision) -> None:
    """Approve / reject the revision under review, then (by default) open the next one."""
    is_prop = prop is not None and rev.id == prop.id
    key = "procs_{}_proposal" if is_prop else "procs_{}"
    c_key, r_key = (f"procs_prop_comment_{pid}", f"procs_prop_reason_{pid}") if is_prop else (
        f"procs_comment_{pid}", f"procs_reason_{pid}")  # fmt: skip
    what = f"proposed revision {rev.id}" if is_prop else f"procedure {pid} · revision {rev.id}"
    said = f"{{}} proposed revision {rev.id} of" if is_prop else "{}"
    p0, p1 = st.columns(2)
    p0.text_input("Comment (optional)", key=c_key)
    p1.text_input("Reason for rejecting" + (" the proposal" if is_prop else ""), key=r_key)
    a0, a1, a2 = st.columns([3, 3, 2.4], vertical_alignment="center")
    refuse = ("reason", "Give a reason for rejecting" + (" the proposal." if is_prop else "."))
    served = not is_prop and proc.status == Status.approved  # nothing waits: nothing to approve
    a0.button(f"Approve {what}", key=key.format("approve"), type="primary", shortcut="A",
              wrap=True, disabled=not can_review or served, on_click=act, kwargs={"then": then},
              help="Approved already: agents are served this revision" if served else None,
              args=(said.format("Approved"), review.approve, pid, {"revision_id": rev.id},
                    {"comment": c_key}))  # fmt: skip
    a1.button(f"Reject {what}", key=key.format("reject"), shortcut="X", wrap=True,
              disabled=not can_review, on_click=act, kwargs={"then": then},
              args=(said.format("Rejected"), review.reject, pid, {"revision_id": rev.id},
                    {"reason": r_key}, refuse))  # fmt: skip
    if then and a2.button(f"Skip to procedure {then}", key="procs_skip", shortcut="N"):
        set_param("procedure", then)
        st.rerun()
    k0, k1 = st.columns([3, 5.4], vertical_alignment="center")
    k0.checkbox("After a decision, open the next", value=True, key="procs_next")
    k1.caption("Keys (outside a text box): A approve · X reject · N skip.")


if feedback := st.session_state.pop(FEEDBACK, None):
    kind, message = feedback
    (st.success if kind == "success" else st.error)(md(message))
if not can_review:
    st.caption(f"You are signed in as a {ctx.person.role}: you can read but not change memory.")

if (rev := d.under_review) is not None:
    with st.container(border=True):
        review_panel(store, d, rev)
        decide(rev)

tab_edit, tab_rollback, tab_more, tab_evidence = st.tabs(
    ["Edit", "Roll back", "Pin / deprecate", "Evidence and history"]
)

with tab_edit:
    keys = (f"procs_edit_text_{pid}", f"procs_edit_base_{pid}", f"procs_edit_comment_{pid}")
    text_key, base_key, comment_key = keys
    bases = {r.id: r for r in (cur, prop) if r is not None}
    if prop is not None and cur is not None:
        st.radio(
            "Edit",
            list(bases),
            key=f"procs_edit_from_{pid}",
            horizontal=True,
            format_func=lambda i: (
                f"the proposed revision {i}" if i == prop.id else f"the served revision {i}"
            ),
            on_change=lambda: [st.session_state.pop(k, None) for k in (text_key, base_key)],
        )
    start = bases.get(st.session_state.get(f"procs_edit_from_{pid}")) or cur
    if text_key not in st.session_state and start is not None:
        st.session_state[text_key] = start.script
        st.session_state[base_key] = start.id
    base = st.session_state.get(base_key)
    of_prop = prop is not None and base == prop.id
    if of_prop and cur is not None:
        st.warning(f"Saving serves your edit at once, in place of revision {cur.id}: a "
                   "reviewer's edit of a proposal counts as reviewed.")  # fmt: skip
    waits = f"; proposed revision {prop.id} keeps waiting" if prop and not of_prop else ""
    st.caption(f"Editing from revision {base}. Saving adds a new revision with your comment"
               f"{waits}.")  # fmt: skip
    st.text_area("Script", key=text_key, height=220)
    st.text_input("Comment", key=comment_key)
    was = bases.get(base)
    if was is not None and st.session_state.get(text_key, "") != was.script:
        with st.expander(f"Preview: diff to revision {was.id}", expanded=True):
            st.code(unified_diff(was.script, st.session_state[text_key],
                                 old_label=f"revision {was.id}", new_label="your edit"),
                    language="diff", wrap_lines=True)  # fmt: skip
    e1, e2 = st.columns([2, 2])
    e1.button(f"Save and serve your edit of proposed revision {base} (procedure {pid})" if of_prop
              else f"Save as a new revision of procedure {pid} (from revision {base})",
              disabled=not can_review or base is None, key="procs_save", on_click=save_edit,
              args=(pid, keys))  # fmt: skip
    if e2.button("Discard and reload the current revision", key="procs_reload"):
        for k in (text_key, base_key):
            st.session_state.pop(k, None)
        st.rerun()

with tab_rollback:
    older = d.rollback_targets
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
                language="diff", wrap_lines=True)  # fmt: skip
        rb_comment = f"procs_rb_comment_{pid}"
        st.text_input("Comment", key=rb_comment)
        st.button(f"Roll back procedure {pid} to revision {target} (adds a new revision)",
                  disabled=not can_review, key="procs_rollback", on_click=act,
                  args=("Rolled back", review.rollback, pid,
                        {"to_revision_id": target, "base_revision_id": cur_id},
                        {"comment": rb_comment}))  # fmt: skip

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
        pd.DataFrame([{"run": page_url(TRAJ, trajectory=t.id), "task": t.task,
                       "outcome": outcome_of(t.success), "steps": t.step_count,
                       "source": t.source} for t in d.evidence],
                     columns=["run", "task", "outcome", "steps", "source"]),
        hide_index=True, width="stretch", column_config=RUNS,
    )  # fmt: skip
    st.caption("Latest runs that followed a revision of this procedure")
    st.dataframe(
        pd.DataFrame([{"run": page_url(TRAJ, trajectory=t.id),
                       "revision": t.procedure_revision_id, "task": t.task,
                       "outcome": outcome_of(t.success), "steps": t.step_count,
                       "agent": t.reporting_agent or t.agent_model} for t in d.recent_uses],
                     columns=["run", "revision", "task", "outcome", "steps", "agent"]),
        hide_index=True, width="stretch", column_config=RUNS,
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
