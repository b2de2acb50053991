"""Trajectories: filter and page through agent runs; debug one step by step.

The open trajectory is held by its id (``?trajectory=N`` in the URL, see ui/picker.py);
long runs show their steps a page at a time, opening on the page of the first problem.
An outcome is success, failure or unknown (nobody recorded a verdict); a reviewer sets it
here, or confirms a judge's verdict, in the panel of ui/outcome_panel.py (audited by the core).
"""

import pandas as pd
import streamlit as st

from memp_core.debug import (
    STEP_PAGE,
    RetrievedItem,
    StepProblem,
    TrajectoryDetail,
    comparison_candidates,
    step_position,
    step_rows,
    steps_page,
    trajectory_detail,
)
from memp_core.judge.judgements import latest_judgements
from memp_core.outcomes import OUTCOMES, effective_outcomes, outcome_of, success_of
from memp_core.sim.ending import Ending
from memp_core.store import TrajectoryFilter
from memp_core.trajectory_list import (
    TrajectoryOptions,
    filter_options,
    run_choices,
    trajectory_page,
    trajectory_total,
)
from ui.common import errors_shown, link, page
from ui.outcome_panel import SOURCE_WORDS, outcome_panel
from ui.picker import id_input, id_table, open_id, url_choice, url_int, url_text
from ui.safe import md

PAGE_SIZE = 50
ALL = "(all)"
TABLE = "traj_table"


def blank(value: int | None) -> str:
    """An id or index as text; none shows as "–" (not "None", which reads as data)."""
    return "–" if value is None else str(value)


ctx = page(
    "Trajectories",
    ":material/route:",
    "Every agent episode: filter, page through, open one to debug it.",
)
store = ctx.store


@st.cache_data(ttl=30, max_entries=8, show_spinner=False)
def cached_options(url: str) -> TrajectoryOptions:
    return filter_options(store)


with errors_shown():
    options = cached_options(ctx.url)
    runs = {str(r.id): r.label for r in run_choices(store)}

# Every filter lives in the URL (?type=heat&outcome=unknown&run=3&page=2&trajectory=41): a
# link reopens the same view. A changed filter opens its first match on its first page.
NEW_VIEW = ("trajectory", "page")
cols = st.columns([1, 1, 1.4, 1, 1, 1, 1.6])
task_type = url_choice(cols[0], "Task type", [ALL, *options.task_types], key="traj_type",
                       param="type", default=ALL, drop=NEW_VIEW)  # fmt: skip
outcome = url_choice(cols[1], "Outcome", [ALL, *OUTCOMES], key="traj_outcome", param="outcome",
                     default=ALL, drop=NEW_VIEW)  # fmt: skip
run_id = url_choice(cols[2], "Run", [ALL, *runs], key="traj_run", param="run", default=ALL,
                    drop=NEW_VIEW, format_func=lambda v: runs.get(v, v))  # fmt: skip
model = url_choice(cols[3], "Agent model", [ALL, *options.agent_models], key="traj_model",
                   param="model", default=ALL, drop=NEW_VIEW)  # fmt: skip
source = url_choice(cols[4], "Source", [ALL, *options.sources], key="traj_source",
                    param="source", default=ALL, drop=NEW_VIEW)  # fmt: skip
# agents that reported runs over memp serve (the Agents page links here with ?agent=NAME)
agent = url_choice(cols[5], "Agent", [ALL, *options.reporting_agents], key="traj_agent",
                   param="agent", default=ALL, drop=NEW_VIEW)  # fmt: skip
text = url_text(cols[6], "Task text contains", key="traj_text", param="q", drop=NEW_VIEW)

flt = TrajectoryFilter(
    task_type=None if task_type == ALL else task_type,
    success=None if outcome == ALL else success_of(outcome),  # "unknown": None
    unknown=outcome == "unknown",
    run_id=None if run_id == ALL else int(run_id),
    agent_model=None if model == ALL else model,
    source=None if source == ALL else source,
    text=text.strip() or None,
    reporting_agent=None if agent == ALL else agent,
)
with errors_shown():
    total = trajectory_total(store, flt)
pages = max(1, -(-total // PAGE_SIZE))
nav = st.columns([1, 4])
page_no = url_int(nav[0], f"Page (of {pages})", key="traj_page", param="page", default=1, lo=1,
                  hi=pages, drop=("trajectory",))  # fmt: skip
with errors_shown():
    result = trajectory_page(store, flt, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
nav[1].caption(
    f"{result.total:,} trajectories match; showing {len(result.rows)} from "
    f"#{result.offset + 1 if result.rows else 0}. Click a row to open it."
)

listed = result.trajectories
opened = open_id(TABLE, "trajectory", listed[0].id if listed else None)
table = pd.DataFrame(
    [
        {"id": t.id, "task": t.task, "type": t.task_type, "outcome": outcome_of(t.success),
         "judged": r.judged, "steps": t.step_count, "run": blank(t.run_id),
         "group": blank(t.group_index), "model": t.agent_model, "source": t.source,
         "created": t.created_at}
        for t, r in zip(listed, result.rows, strict=True)
    ],
    columns=["id", "task", "type", "outcome", "judged", "steps", "run", "group", "model",
             "source", "created"],
)  # fmt: skip
id_table(
    table, [t.id for t in listed], opened, key=TABLE,
    height=min(38 + 35 * max(len(table), 1), 420),
    column_config={
        "id": st.column_config.NumberColumn(width="small"),
        "task": st.column_config.TextColumn(width="large"),
        "outcome": st.column_config.TextColumn(width="small"),
        "judged": st.column_config.TextColumn(
            help="A judge's verdict and confidence on a run of unknown outcome"
        ),
        "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
    },
)  # fmt: skip


def show_steps(
    tid: int, total: int, problem: StepProblem | None, key: str, compact: bool = False,
    ending: Ending | None = None, flags: bool = True,
) -> None:  # fmt: skip
    """One page of a run's steps (the page of its first problem first), the problem painted
    and the end marked; ``compact``: action and result only; ``flags=False``: nothing marked
    (a successful run beside a failed one). Only the rows shown are styled."""
    if not flags:
        problem = ending = None
    pages_n = max(1, -(-total // STEP_PAGE))
    offset = 0
    if pages_n > 1:
        at = step_position(store, tid, problem.index) // STEP_PAGE + 1 if problem else 1
        chosen = st.number_input(f"Steps page (of {pages_n:,}; {STEP_PAGE} steps a page)", 1,
                                 pages_n, at, key=f"{key}_page_{tid}")  # fmt: skip
        offset = (int(chosen) - 1) * STEP_PAGE
    steps = steps_page(store, tid, offset=offset, limit=STEP_PAGE)
    if pages_n > 1:
        st.caption(f"Steps {offset + 1:,}–{offset + len(steps):,} of {total:,}.")
    frame = pd.DataFrame(
        step_rows(steps, problem, ending), columns=["step", "flag", "thought", "action",
                                                    "observation"],
    )  # fmt: skip
    if compact or not frame["thought"].astype(bool).any():
        frame = frame.drop(columns=["thought"])  # more room for what the agent did and saw
    if not flags:
        frame = frame.drop(columns=["flag"])
    highlight = problem.index if problem else None

    def paint(row: pd.Series) -> list[str]:
        hot = highlight is not None and row["step"] == highlight
        return ["background-color: rgba(255, 80, 80, 0.25)" if hot else ""] * len(row)

    st.dataframe(
        frame.style.apply(paint, axis=1),
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * max(len(frame), 1), 1100),  # a short run whole: its end in view
        key=key,
        column_config={
            "step": st.column_config.NumberColumn(width="small"),
            "flag": st.column_config.TextColumn(width="small"),
            "thought": st.column_config.TextColumn(width="medium"),
            "action": st.column_config.TextColumn(width="medium"),
            "observation": st.column_config.TextColumn(width="large"),
        },
    )


def show_ending(d: TrajectoryDetail) -> None:
    """Why the run ended and its last meaningful step, in one line above the timeline."""
    e = d.ending
    if e is None:
        st.caption("How this run ended was not recorded (and it is too long to read here).")
        return
    how = "recorded by the run" if d.ending_recorded else "read from its steps"
    where = f" at step {e.step}" if e.step is not None else ""
    text = f"Ended: {e.label}{where} — {e.detail} [{how}]"
    (st.success if e.reason == "goal" else st.info)(md(text))
    if e.reason != "goal":
        st.caption(
            f"Last progress at step {e.progress}: nothing after it moved the task forward."
            if e.progress is not None
            else "No step moved the task forward (nothing taken, used or put down)."
        )


def show_item(item: RetrievedItem, used: list[int]) -> None:
    """One retrieved revision: expands to its script, with a link to its procedure;
    ``used``: the revisions whose knowledge the agent used (recorded by simulator runs)."""
    score = f"{item.score:.3f}" if item.score is not None else "–"
    mark = " · used by the agent" if item.revision_id in used else ""
    head = f"Procedure {item.procedure_id} · revision {item.revision_id} · score {score}{mark}: "
    with st.expander(head + md(item.title)):  # titles come from data: shown as text
        st.code(item.script or "(revision not found)", language=None, wrap_lines=True)
        if item.procedure_id is not None:
            link("pages/2_Procedures.py", f"Open procedure {item.procedure_id}",
                 ":material/description:", procedure=str(item.procedure_id))  # fmt: skip


st.divider()
st.subheader("Trajectory detail")
open_tid = id_input("Trajectory id", opened, key="traj_open_id", param="trajectory")
if not open_tid:
    st.info("No trajectory to show. Pick a row above or type an id.")
    st.stop()

with errors_shown():
    detail = trajectory_detail(store, open_tid)
t = detail.trajectory
st.text(t.task)
with errors_shown():
    shown = latest_judgements(store, [open_tid]).get(open_tid)
    counts = effective_outcomes(store, [open_tid], count_unreviewed=ctx.settings
                                .count_unreviewed_judgements)[open_tid]  # fmt: skip
# the outcome words ("unknown", "success") need more room than the numbers beside them
m = st.columns([1.3, 1.5, 0.8, 1.1, 0.8] if shown else [1.3, 0.8, 1.1, 0.8])
m[0].metric("Outcome", outcome_of(t.success), border=True)
if shown is not None:  # the judged outcome beside the recorded one
    m[1].metric("Judged outcome", shown.verdict, f"confidence {shown.confidence:.2f}",
                delta_color="off", delta_arrow="off", border=True)  # fmt: skip
m[-3].metric("Steps", f"{t.step_count:,}", border=True)
m[-2].metric("Run · group", f"{blank(t.run_id)} · {blank(t.group_index)}", border=True)
# a heuristic agent uses no model: no tokens to count, not "0 tokens"
m[-1].metric("Tokens", f"{t.token_count:,}" if t.token_count else "–", border=True)
st.text(
    f"Agent model: {t.agent_model or '–'} · source: {t.source or '–'} · "
    f"environment: {t.environment or '–'} · recorded {t.created_at:%Y-%m-%d %H:%M}"
)
if t.source == "simulator":
    st.caption("Recorded in Memp Studio's household simulator (seeded text world).")
if t.success is None and counts.source != "none":
    st.info(f"Outcome unknown as recorded; it counts as {counts.outcome} in builds and success "
            f"rates: {SOURCE_WORDS[counts.source]} (below).")  # fmt: skip
elif t.success is None:
    st.info(
        "Outcome unknown: nothing recorded whether this run succeeded. It counts in no "
        "success rate and nothing is built from it until a reviewer sets its outcome or "
        "confirms a judge's verdict below."
    )
outcome_panel(ctx, t, shown, counts)  # the judged outcome (Confirm/Override), Set the outcome
if t.reflections:
    with st.expander(f"Reflections attached to this run ({len(t.reflections)})"):
        for r in t.reflections:
            st.text(r)

timeline, memory_tab, compare = st.tabs(
    ["Step timeline", "Memory it was given", "Failed vs successful"]
)
with timeline:
    problem = detail.problem
    if t.success is not None:
        show_ending(detail)
    if problem:
        st.warning(f"First problem at step {problem.index}: {md(problem.kind)}")
        st.text(problem.reason)
        with errors_shown():
            near = steps_page(store, open_tid, offset=step_position(store, open_tid, problem.index),
                              limit=1)  # fmt: skip
        if near:
            st.code(f"> {near[0].action or ''}\n{near[0].observation or ''}", language=None,
                    wrap_lines=True)  # fmt: skip
    elif t.success is False:
        st.caption("No step failed or looped: the ending above says why the run stopped.")
    with errors_shown():
        show_steps(open_tid, detail.step_total, problem, key="traj_steps", ending=detail.ending)

with memory_tab:
    if detail.followed_revision is not None:
        rev, proc = detail.followed_revision, detail.followed_procedure
        st.markdown(
            f"**Followed revision {rev.id}** ({md(rev.origin)}, by {md(rev.author or '–')})"
        )
        if not detail.reflected:
            st.caption("Borrowed: a procedure for another object or task whose knowledge the "
                       "agent used; a failure of this run is not reflected into it.")  # fmt: skip
        if proc is not None:
            st.text(f"Procedure {proc.id}: {proc.title} [{proc.status}]")
            cl = st.columns(2)
            with cl[0]:
                link("pages/2_Procedures.py", f"Open procedure {proc.id}",
                     ":material/description:", procedure=str(proc.id))  # fmt: skip
            with cl[1]:
                link("pages/3_Lineage.py", "Open its lineage", ":material/account_tree:",
                     procedure=str(proc.id))  # fmt: skip
        st.code(rev.script or "(no script)", language=None, wrap_lines=True)
    elif any(r.items for r in detail.retrievals):
        st.caption("The agent was given memory but used none of it for this task.")
    if not detail.retrievals:
        st.caption("No retrieval was logged for this trajectory.")
    for r in detail.retrievals:
        st.text(f"Retrieval {r.retrieval_id}: policy {r.policy}, k={r.k}, query: {r.query}")
        if not r.items:
            st.caption("Nothing was returned: memory was empty or nothing matched.")
            continue
        st.dataframe(
            pd.DataFrame(
                [{"procedure": i.procedure_id, "revision": i.revision_id, "title": i.title,
                  "task type": i.task_type, "score": i.score,
                  "matched": ", ".join(f"{k}={v}" for k, v in i.matched.items())}
                 for i in r.items],
                columns=["procedure", "revision", "title", "task type", "score", "matched"],
            ),
            hide_index=True, width="stretch",
            column_config={"score": st.column_config.NumberColumn(format="%.3f")},
        )  # fmt: skip
        for item in r.items:
            show_item(item, detail.used_revisions)

with compare:
    with errors_shown():
        candidates = comparison_candidates(store, t)
    if t.success is None:
        st.caption("This run's outcome is unknown: set it above to compare it with a run of "
                   "the other outcome.")  # fmt: skip
    elif not candidates:
        st.caption(f"No run of task type {md(t.task_type or '(none)')} with the other outcome.")
    else:
        other_label = "successful" if t.success is False else "failed"
        labels = [c.label for c in candidates]
        picked = st.selectbox(
            f"Compare with a {other_label} run (same object and receptacle first)", labels,
            key=f"traj_cmp_pick_{t.id}",
        )  # fmt: skip
        other = candidates[labels.index(picked)].trajectory
        failed, succeeded = (t, other) if t.success is False else (other, t)
        left, right = st.columns(2)
        for col, traj, label in ((left, failed, "Failed"), (right, succeeded, "Successful")):
            with col, errors_shown():
                st.markdown(f"**{label}: trajectory {traj.id}** ({traj.step_count:,} steps)")
                st.text(traj.task)
                d = detail if traj.id == t.id else trajectory_detail(store, traj.id or 0)
                show_steps(traj.id or 0, d.step_total, d.problem, key=f"traj_cmp_{label}",
                           compact=True, ending=d.ending, flags=traj is failed)  # fmt: skip
