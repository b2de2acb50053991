"""Memp Studio dashboard: the Overview page (Streamlit entry point; pages/ are auto-discovered)."""

import pandas as pd
import plotly.express as px
import streamlit as st

from memp_core.models import Status
from memp_core.overview import overview
from ui.common import errors_shown, link, page, pct
from ui.picker import id_link, id_table, page_url, take_click
from ui.safe import md

PROCS = "pages/2_Procedures.py"

ctx = page(
    "Memp Studio",
    caption="Procedural memory for LLM agents: build, retrieve, update, review.",
)
st.session_state.setdefault("overview_runs", 8)
if (opened := take_click("ov_pending")) is not None:  # a pending row opens in the queue
    st.switch_page(PROCS, query_params={"procedure": str(opened)})

with errors_shown():
    ov = overview(ctx.store, ctx.settings, runs=st.session_state["overview_runs"])
c = ov.counts

cols = st.columns(6)
cols[0].metric("Trajectories", f"{c.trajectories:,}", border=True)
cols[1].metric(
    "Success",
    pct(c.success_rate),
    f"{c.unknown:,} unknown" if c.unknown else None,
    delta_color="off",
    delta_arrow="off",
    help=f"Successes / runs with an outcome ({c.judged:,}): recorded, else a judge's verdict a "
    "reviewer confirmed or overrode"
    + (", else an unreviewed verdict (MEMP_COUNT_UNREVIEWED_JUDGEMENTS is on)"
       if ctx.settings.count_unreviewed_judgements else "")
    + ". Unknown: no outcome; they count in no rate until a reviewer sets one (Trajectories "
    "page).",
    border=True,
)  # fmt: skip
if ov.settled.runs:
    st.caption(f"Success rate includes {md(ov.settled.describe())}.")
cols[2].metric("Procedures", f"{c.procedures:,}", border=True)
cols[3].metric("Approved", f"{c.by_status.get(Status.approved.value, 0):,}", border=True)
cols[4].metric("Pending review", f"{ov.pending_total:,}", border=True)
cols[5].metric("Runs", f"{c.runs:,}", border=True)

if c.trajectories == 0 and c.procedures == 0:
    st.info(
        "The database is empty. Fill it with `memp demo` (real runs of the household "
        "simulator), or import agent logs with `memp import PATH --format ...` or the "
        "Import / Export page."
    )

left, right = st.columns([1, 2])
with left:
    st.subheader("Procedures by status")
    statuses = [s.value for s in Status]
    frame = pd.DataFrame(
        {"status": statuses, "procedures": [c.by_status.get(s, 0) for s in statuses]}
    )
    fig = px.bar(frame, x="procedures", y="status", orientation="h", height=260, text_auto=True)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10})
    fig.update_xaxes(visible=False)  # the counts are written on the bars
    fig.update_traces(textposition="outside", cliponaxis=False)
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})

with right:
    st.subheader(f"Pending reviews ({ov.pending_total:,})")
    if ov.pending:
        id_table(
            pd.DataFrame([{"id": p.id, "title": p.title, "task type": p.task_type,
                           "uses": p.use_count, "updated": p.updated_at} for p in ov.pending]),
            [p.id for p in ov.pending], None, key="ov_pending",
            column_config={"id": st.column_config.NumberColumn(width=44),
                           "title": st.column_config.TextColumn(width=220),
                           "task type": st.column_config.TextColumn(width=70),
                           "uses": st.column_config.NumberColumn(width=44),
                           "updated": st.column_config.DatetimeColumn(format="distance",
                                                                      width=104)},
        )  # fmt: skip
        st.caption("Click a row to review it.")
        link(PROCS, "Review them on the Procedures page", ":material/rule:")
    else:
        st.caption("Nothing waits for review.")

st.subheader("Latest runs")
if ov.latest_runs:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run": card.label,
                    "groups": len(card.success),
                    "last success": None if card.last_success is None else card.last_success * 100,
                    "success per group": card.success,
                    "steps per group": card.steps,
                    "status": card.run.status,
                    "source": card.run.source,
                }
                for card in ov.latest_runs
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={  # widths that fit 1280 px beside the sidebar
            "run": st.column_config.TextColumn(width=250),
            "groups": st.column_config.NumberColumn(width=56),
            "last success": st.column_config.ProgressColumn(format="%.0f%%", min_value=0,
                                                            max_value=100, width=84),
            "success per group": st.column_config.LineChartColumn(y_min=0, y_max=1, width=108),
            "steps per group": st.column_config.LineChartColumn(y_min=0, width=108),
            "status": st.column_config.TextColumn(width=56),
            "source": st.column_config.TextColumn(width=116),
        },
    )  # fmt: skip
    link("pages/4_Learning_curves.py", "Compare them in Learning curves", ":material/show_chart:")
else:
    st.caption("No runs yet: start one on the Experiments page or with `memp run`.")

st.subheader("Alerts")
if not ov.procedure_alerts and not ov.run_alerts:
    st.success("No procedure is trending toward deprecation and no run's success is falling.")
if ov.procedure_alerts:
    st.warning(f"{len(ov.procedure_alerts)} procedure(s) trending toward deprecation")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "id": page_url(PROCS, procedure=a.procedure.id),
                    "title": a.procedure.title,
                    "status": a.procedure.status,
                    "uses": a.procedure.use_count,
                    "success": a.success_rate,
                    "why": a.reason,
                }
                for a in ov.procedure_alerts
            ]
        ),  # fmt: skip
        hide_index=True,
        width="stretch",
        column_config={
            "id": id_link("procedure", width="small"),
            "success": st.column_config.NumberColumn(format="percent"),
        },
    )
if ov.run_alerts:
    st.warning(f"{len(ov.run_alerts)} run(s) whose success is falling")
    st.dataframe(
        pd.DataFrame([{"run": a.label, "why": a.reason} for a in ov.run_alerts]),
        hide_index=True,
        width="stretch",
    )
