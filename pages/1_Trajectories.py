"""Trajectories: filter and page through agent runs; debug one step by step."""

import pandas as pd
import streamlit as st

from memp_core.debug import (
    TrajectoryDetail,
    failed_and_succeeded,
    step_rows,
    trajectory_detail,
)
from memp_core.models import Step, Trajectory
from memp_core.store import TrajectoryFilter
from ui.common import errors_shown, link, page, params_int

PAGE_SIZE = 50
ALL = "(all)"

ctx = page(
    "Trajectories",
    ":material/route:",
    "Every agent episode: filter, page through, open one to debug it.",
)
store = ctx.store


@st.cache_data(ttl=30, max_entries=8, show_spinner=False)
def filter_options(url: str) -> dict[str, list[str]]:
    return {
        "task_type": store.distinct_values(Trajectory.task_type),
        "agent_model": store.distinct_values(Trajectory.agent_model),
        "source": store.distinct_values(Trajectory.source),
    }


with errors_shown():
    options = filter_options(ctx.url)
    runs = {f"#{r.id} {r.name or r.kind} ({r.source or r.agent})": r.id for r in store.runs()}

cols = st.columns([1, 1, 1.4, 1, 1, 1.6])
task_type = cols[0].selectbox("Task type", [ALL, *options["task_type"]], key="traj_type")
outcome = cols[1].selectbox("Outcome", [ALL, "success", "failure"], key="traj_outcome")
run_label = cols[2].selectbox("Run", [ALL, *runs], key="traj_run")
model = cols[3].selectbox("Agent model", [ALL, *options["agent_model"]], key="traj_model")
source = cols[4].selectbox("Source", [ALL, *options["source"]], key="traj_source")
text = cols[5].text_input("Task text contains", key="traj_text")

flt = TrajectoryFilter(
    task_type=None if task_type == ALL else task_type,
    success=None if outcome == ALL else outcome == "success",
    run_id=None if run_label == ALL else runs[run_label],
    agent_model=None if model == ALL else model,
    source=None if source == ALL else source,
    text=text.strip() or None,
)
with errors_shown():
    total = store.list_trajectories(flt, offset=0, limit=0).total
pages = max(1, -(-total // PAGE_SIZE))
nav = st.columns([1, 4])
page_no = nav[0].number_input(f"Page (of {pages})", 1, pages, 1, key="traj_page")
with errors_shown():
    result = store.list_trajectories(flt, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
nav[1].caption(
    f"{result.total:,} trajectories match; showing {len(result.rows)} from "
    f"#{result.offset + 1 if result.rows else 0}."
)

table = pd.DataFrame(
    [
        {"id": t.id, "task": t.task, "type": t.task_type, "success": t.success,
         "steps": t.step_count, "run": t.run_id, "group": t.group_index,
         "model": t.agent_model, "source": t.source, "created": t.created_at}
        for t in result.rows
    ],
    columns=["id", "task", "type", "success", "steps", "run", "group", "model", "source",
             "created"],
)  # fmt: skip
picked = st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=min(38 + 35 * max(len(table), 1), 420),
    on_select="rerun",
    selection_mode="single-row",
    key="traj_table",
    column_config={
        "id": st.column_config.NumberColumn(width="small"),
        "task": st.column_config.TextColumn(width="large"),
        "success": st.column_config.CheckboxColumn(),
        "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
    },
)
selected_rows = picked.selection.rows if picked is not None else []
pick = int(table.iloc[selected_rows[0]]["id"]) if selected_rows else None
# What to open: a clicked row, else a linked id (?trajectory=N, unfiltered list only), else
# the first row. The widget key carries that default, so a new default shows a fresh input
# (writing a widget's value through session_state can leave the browser showing a stale one).
linked = params_int("trajectory") if flt == TrajectoryFilter() and page_no == 1 else None
open_default = pick or linked or (result.rows[0].id if result.rows else 0) or 0


def show_steps(
    steps: list[Step], detail: TrajectoryDetail | None, key: str, compact: bool = False
) -> None:
    """The step table, the first problem step painted; ``compact``: action and result only."""
    problem = detail.problem if detail else None
    frame = pd.DataFrame(
        step_rows(steps, problem), columns=["step", "flag", "thought", "action", "observation"]
    )
    if compact or not frame["thought"].astype(bool).any():
        frame = frame.drop(columns=["thought"])  # more room for what the agent did and saw
    if compact:
        frame = frame.drop(columns=["flag"])
    highlight = problem.index if problem else None

    def paint(row: pd.Series) -> list[str]:
        hot = highlight is not None and row["step"] == highlight
        return ["background-color: rgba(255, 80, 80, 0.25)" if hot else ""] * len(row)

    st.dataframe(
        frame.style.apply(paint, axis=1),
        hide_index=True,
        width="stretch",
        key=key,
        column_config={
            "step": st.column_config.NumberColumn(width="small"),
            "flag": st.column_config.TextColumn(width="small"),
            "thought": st.column_config.TextColumn(width="medium"),
            "action": st.column_config.TextColumn(width="medium"),
            "observation": st.column_config.TextColumn(width="large"),
        },
    )


st.divider()
st.subheader("Trajectory detail")
open_id = st.columns(4)[0].number_input(
    "Trajectory id", min_value=0, value=open_default, step=1, key=f"traj_open_{open_default}"
)
if not open_id:
    st.info("No trajectory to show. Pick a row above or type an id.")
    st.stop()

with errors_shown():
    detail = trajectory_detail(store, int(open_id))
t = detail.trajectory
st.text(t.task)
m = st.columns(4)
m[0].metric("Outcome", "success" if t.success else "failure", border=True)
m[1].metric("Steps", t.step_count, border=True)
group = t.group_index if t.group_index is not None else "–"
m[2].metric("Run · group", f"{t.run_id or '–'} · {group}", border=True)
m[3].metric("Tokens", f"{t.token_count:,}", border=True)
st.text(
    f"Agent model: {t.agent_model or '–'} · source: {t.source or '–'} · "
    f"environment: {t.environment or '–'} · recorded {t.created_at:%Y-%m-%d %H:%M}"
)
if t.source == "simulator":
    st.caption("Recorded in Memp Studio's household simulator (seeded text world).")
if t.reflections:
    with st.expander(f"Reflections attached to this run ({len(t.reflections)})"):
        for r in t.reflections:
            st.text(r)

timeline, memory_tab, compare = st.tabs(
    ["Step timeline", "Memory it was given", "Failed vs successful"]
)
with timeline:
    if detail.problem:
        st.warning(f"First problem at step {detail.problem.index}: {detail.problem.kind}")
        st.text(detail.problem.reason)
        bad = next((x for x in detail.steps if x.index == detail.problem.index), None)
        if bad is not None:
            st.code(f"> {bad.action or ''}\n{bad.observation or ''}", language=None,
                    wrap_lines=True)  # fmt: skip
    elif not t.success:
        st.info("No failing or looping step found: the run may have hit the step limit.")
    show_steps(detail.steps, detail, key="traj_steps")

with memory_tab:
    if detail.followed_revision is not None:
        rev, proc = detail.followed_revision, detail.followed_procedure
        st.markdown(f"**Followed revision {rev.id}** ({rev.origin}, by `{rev.author or '–'}`)")
        if proc is not None:
            st.text(f"Procedure {proc.id}: {proc.title} [{proc.status}]")
            link(
                "pages/3_Lineage.py",
                "Open its lineage",
                ":material/account_tree:",
                procedure=str(proc.id),
            )
        st.code(rev.script or "(no script)", language=None, wrap_lines=True)
    if not detail.retrievals:
        st.caption("No retrieval was logged for this trajectory.")
    for r in detail.retrievals:
        st.text(f"Retrieval {r.retrieval_id}: policy {r.policy}, k={r.k}, query: {r.query}")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "procedure": i.procedure_id,
                        "revision": i.revision_id,
                        "title": i.title,
                        "task type": i.task_type,
                        "score": i.score,
                        "matched": ", ".join(f"{k}={v}" for k, v in i.matched.items()),
                    }
                    for i in r.items
                ],
                columns=["procedure", "revision", "title", "task type", "score", "matched"],
            ),  # fmt: skip
            hide_index=True,
            width="stretch",
            column_config={"score": st.column_config.NumberColumn(format="%.3f")},
        )

with compare:
    with errors_shown():
        failed, succeeded = failed_and_succeeded(store, t)
    if failed is None or succeeded is None:
        st.caption(f"No run of task type {t.task_type or '(none)'} with the other outcome.")
    else:
        left, right = st.columns(2)
        for col, traj, label in ((left, failed, "Failed"), (right, succeeded, "Successful")):
            with col:
                st.markdown(f"**{label}: trajectory {traj.id}** ({traj.step_count} steps)")
                st.text(traj.task)
                d = detail if traj.id == t.id else trajectory_detail(store, traj.id or 0)
                show_steps(d.steps, d, key=f"traj_cmp_{label}", compact=True)
