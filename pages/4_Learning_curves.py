"""Learning curves: success and steps per group of tasks, compared across runs."""

import pandas as pd
import plotly.io as pio
import streamlit as st

from memp_core import curves, curves_chart
from ui.common import errors_shown, page

ctx = page(
    "Learning curves",
    ":material/show_chart:",
    "Success rate and mean steps per group of tasks, as memory grows. Black symbols and dotted "
    "lines mark memory changes; hover them to see which. Runs that differ only by seed share "
    "a band in their line's colour.",
)
store = ctx.store

with errors_shown():
    runs = list(reversed(store.runs()))  # newest first
if not runs:
    st.info(
        "No runs yet. Start one on the Experiments page, run `memp run ...`, or import a "
        "multi-trial log (Reflexion) on the Import / Export page."
    )
    st.stop()

labels = {curves.run_label(r): r for r in runs}
st.session_state.setdefault("curves_runs", list(labels)[:6])
st.session_state["curves_runs"] = [x for x in st.session_state["curves_runs"] if x in labels]
chosen = st.multiselect("Runs", list(labels), key="curves_runs")
c1, c2, c3 = st.columns([2, 1, 1])
color_by = c1.radio(
    "Colour by",
    ["condition", "run", "policy", "model"],
    horizontal=True,
    key="curves_color",
    help="condition: runs that differ only by seed share a colour and their band.",
)
show_bands = c2.checkbox("Bands across seeds", value=True, key="curves_bands")
show_markers = c3.checkbox("Memory-change markers", value=True, key="curves_markers")
if not chosen:
    st.info("Pick one or more runs.")
    st.stop()

selected = [labels[x] for x in chosen]
marked = []
if show_markers:
    # One run's changes at a time: several runs' markers on one axis would not say whose.
    own = [x for x in chosen if labels[x].kind != "import"] or chosen
    which = st.selectbox("Memory changes of", own, key="curves_marker_run")
    marked = [labels[which]] if which in labels else []
with errors_shown():
    points = curves.curve_points(store, selected)
    markers = curves.memory_markers(store, marked) if marked else []
band_points = curves.bands(points) if show_bands else []
if any(r.source == "simulator" or r.environment == "household-sim" for r in selected):
    st.caption(
        "Simulator runs: measured in Memp Studio's seeded household world (synthetic, "
        "ALFWorld-compatible), not in ALFWorld itself."
    )
if not points:
    st.warning("These runs have no per-group metrics and no trajectories yet.")
    st.stop()

fig = curves_chart.figure(points, band_points, markers, color_by=color_by)
st.plotly_chart(
    fig,
    width="stretch",
    config={"displaylogo": False,
            "toImageButtonOptions": {"filename": "learning_curves", "scale": 2}},
)  # fmt: skip
frame = curves.to_frame(points)
d1, d2 = st.columns(2)
d1.download_button(
    "Download CSV", curves.to_csv(points), file_name="learning_curves.csv", mime="text/csv",
    key="curves_csv",
)  # fmt: skip


@st.cache_data(ttl=300, max_entries=8, show_spinner="Drawing the PNG…")
def png(figure_json: str) -> curves_chart.PngExport:
    """The PNG of exactly the figure above; keyed by the figure itself, never stale."""
    return curves_chart.figure_png(pio.from_json(figure_json))


export = png(fig.to_json())
d2.download_button(
    "Download PNG (this chart)", export.data, file_name="learning_curves.png",
    mime="image/png", key="curves_png",
    help="The chart above as shown: colours, bands, markers and legend"
    + ("" if export.engine == "kaleido" else " (drawn with matplotlib: kaleido is missing)"),
)  # fmt: skip

summary = (
    frame.groupby(["run", "condition"], sort=False)
    .agg(groups=("group", "count"), first=("success_rate", "first"),
         last=("success_rate", "last"), steps_first=("mean_steps", "first"),
         steps_last=("mean_steps", "last"), unknown=("unknown", "sum"))
    .reset_index()
)  # fmt: skip
st.subheader("Per run")
if int(frame["unknown"].sum()):
    st.caption(
        f"{int(frame['unknown'].sum()):,} runs have no recorded outcome (unknown): each "
        "group's success rate is over the runs with one, and the unknown are counted apart."
    )
st.dataframe(
    summary, hide_index=True, width="stretch",
    column_config={
        "first": st.column_config.NumberColumn("success, first group", format="percent"),
        "last": st.column_config.NumberColumn("success, last group", format="percent"),
        "steps_first": st.column_config.NumberColumn("steps, first group", format="%.1f"),
        "steps_last": st.column_config.NumberColumn("steps, last group", format="%.1f"),
        "unknown": st.column_config.NumberColumn("unknown outcomes"),
    },
)  # fmt: skip

if markers:
    st.subheader(f"Memory changes during run #{markers[0].run_id}")
    st.dataframe(
        pd.DataFrame(
            [{"run": m.run_id, "at group": m.position, "change": m.kind, "count": m.count,
              "what": "; ".join(m.names), "when": m.at} for m in markers]
        ),
        hide_index=True, width="stretch",
        column_config={"when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
    )  # fmt: skip

with st.expander("All points"):
    st.dataframe(
        frame, hide_index=True, width="stretch",
        column_config={"success_rate": st.column_config.NumberColumn(format="percent")},
    )  # fmt: skip
