"""Learning curves: success and steps per group of tasks, per condition (seeds averaged) or
per run."""

from functools import partial
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from memp_core import conditions, curves, curves_chart
from memp_core.markers import MemoryMarker, condition_markers, memory_markers
from memp_core.models import Run
from memp_core.outcomes import judgement_note
from ui.common import errors_shown, page
from ui.picker import set_param, url_multi
from ui.safe import md

CONDITIONS, RUNS = "Conditions (mean over seeds)", "Single runs"
COLOURS = ["condition", "policy", "model"]  # the conditions view's; runs add "run"

ctx = page(
    "Learning curves",
    ":material/show_chart:",
    "Success rate and mean steps per group of tasks, as memory grows. Runs that differ only "
    "by seed form a condition: its line is their mean, its band their spread, in the line's "
    "colour. Black symbols and dotted lines mark memory changes; hover them to see which.",
)
store = ctx.store
counted = ctx.settings.count_unreviewed_judgements  # unreviewed judge verdicts in the rates

with errors_shown():
    runs = list(reversed(store.runs()))  # newest first
if not runs:
    st.info(
        "No runs yet. Start one on the Experiments page, run `memp run ...`, or import a "
        "multi-trial log (Reflexion) on the Import / Export page."
    )
    st.stop()

by_id = {r.id: r for r in runs}
with errors_shown():
    version = curves.data_version(store)


# Read models cached per database and its last change (curves.data_version): a condition's
# memory changes add up every seed's, which on a large database is most of a render.
@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def points_of(
    url: str, run_ids: tuple[int, ...], version: tuple[int, ...], counted: bool
) -> list[curves.CurvePoint]:
    return curves.curve_points(store, [by_id[i] for i in run_ids], count_unreviewed=counted)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def markers_of(
    url: str, run_ids: tuple[int, ...], version: tuple[int, ...], per_condition: bool
) -> list[MemoryMarker]:
    marked = [by_id[i] for i in run_ids]
    if per_condition:
        return condition_markers(store, marked)
    return memory_markers(store, marked)


def radio_in_url(where: DeltaGenerator, label: str, options: dict[str, str], *, key: str,
                 param: str, **kw: Any) -> str:  # fmt: skip
    """A radio whose choice is ``?param=`` (the first option stays out of the URL)."""
    first = next(iter(options))
    raw = st.query_params.get(param)
    st.session_state[key] = raw if raw in options else first

    def to_url() -> None:
        value = st.session_state[key]
        set_param(param, None if value == first else value)

    return str(where.radio(label, list(options), format_func=options.__getitem__, key=key,
                           on_change=to_url, horizontal=True, **kw))  # fmt: skip


view = radio_in_url(st, "Show", {"conditions": CONDITIONS, "runs": RUNS}, key="curves_view",
                    param="view", help="Conditions: one line per setup, averaged over its "
                    "seeds. Single runs: every run its own line.")  # fmt: skip


def png_button(fig: go.Figure, where: DeltaGenerator) -> None:
    """The PNG is drawn when someone asks for it (kaleido starts a browser: seconds), and is
    exactly the figure on screen."""
    where.download_button(
        "Download PNG (this chart)", partial(curves_chart.png_bytes, fig.to_json()),
        file_name="learning_curves.png", mime="image/png", key="curves_png",
        help="The chart above as shown: colours, bands, markers and legend (plotly's own "
        "export; redrawn with matplotlib where no browser is available to it)",
    )  # fmt: skip


def show(fig: go.Figure) -> None:
    st.plotly_chart(
        fig, width="stretch",
        config={"displaylogo": False,
                "toImageButtonOptions": {"filename": "learning_curves", "scale": 2}},
    )  # fmt: skip


def simulator_note(selected: list[Run]) -> None:
    if any(r.source == "simulator" or r.environment == "household-sim" for r in selected):
        st.caption(
            "Simulator runs: measured in Memp Studio's seeded household world (synthetic, "
            "ALFWorld-compatible), not in ALFWorld itself."
        )


def per_run_table(frame: pd.DataFrame) -> None:
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
            f"{int(frame['unknown'].sum()):,} tasks have no outcome (unknown): each group's "
            "success rate is over the tasks with one, and the unknown are counted apart."
        )
    said = judgement_note(int(frame["by_review"].sum()), int(frame["by_judge"].sum()))
    if said:
        st.caption(f"Success rates include {md(said)}: runs recorded unknown that a judge's "
                   "verdict settled.")  # fmt: skip
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


def marker_table(markers: list[MemoryMarker], whose: str) -> None:
    if not markers:
        return
    st.subheader(f"Memory changes of {md(whose)}")  # names from the data: text
    st.dataframe(
        pd.DataFrame(
            [{"at group": m.position, "change": m.kind, "count": m.count, "runs": m.runs,
              "what (first few)": "; ".join(m.names), "first at": m.at} for m in markers]
        ),
        hide_index=True, width="stretch",
        column_config={"first at": st.column_config.DatetimeColumn(
            format="YYYY-MM-DD HH:mm:ss")},
    )  # fmt: skip


def all_points(frame: pd.DataFrame) -> None:
    with st.expander("All points (one row per run and group)"):
        st.dataframe(
            frame, hide_index=True, width="stretch",
            column_config={"success_rate": st.column_config.NumberColumn(format="percent")},
        )  # fmt: skip


def condition_view() -> None:
    conds = conditions.conditions(runs)
    # In the URL a condition is the id of one of its runs (its newest): short, and a link
    # naming any of its runs still opens it when newer seeds have joined.
    named = {str(c.run_ids[0]): c for c in conds}
    of_run = {str(i): key for key, c in named.items() for i in c.run_ids}
    raw = st.query_params.get("conditions")
    if raw:
        st.query_params["conditions"] = ",".join(
            dict.fromkeys(of_run[x] for x in raw.split(",") if x in of_run)
        )
    default = [str(c.run_ids[0]) for c in conditions.default_conditions(conds)]
    chosen = url_multi(st, "Conditions", list(named), key="curves_conditions",
                       param="conditions", default=default,
                       format_func=lambda key: named[key].label,
                       help="Opens on the largest comparison: the setup shared by the most "
                       "conditions.")  # fmt: skip
    if not chosen:
        st.info("Pick one or more conditions.")
        st.stop()
    picked = [named[x] for x in chosen]
    c0, c1 = st.columns(2)
    c2, c3 = st.columns([1, 2], vertical_alignment="bottom")
    if st.session_state.get("curves_color") not in COLOURS:  # "run": the other view's
        st.session_state["curves_color"] = "condition"
    color_by = c0.radio("Colour by", COLOURS, horizontal=True, key="curves_color",
                        help="condition: each its own colour (a policy keeps its colour); "
                        "policy or model: conditions sharing it share a colour.")  # fmt: skip
    spread = radio_in_url(c1, "Band", conditions.SPREADS, key="curves_spread", param="band")
    show_markers = c2.checkbox("Memory-change markers", value=True, key="curves_markers")
    selected = [by_id[i] for c in picked for i in c.run_ids]
    with errors_shown():
        points = points_of(ctx.url, tuple(r.id or 0 for r in selected), version, counted)
    markers: list[MemoryMarker] = []
    writing = [c for c in picked if c.policy in conditions.POLICY_ORDER[1:]] or picked
    whose = ""
    if show_markers:
        # One condition's changes at a time: markers of several on one axis would not say whose.
        keys = [str(c.run_ids[0]) for c in writing]
        best = next((str(c.run_ids[0]) for c in writing if c.policy == "reflect"), keys[0])
        if st.session_state.get("curves_marker_condition") not in keys:
            st.session_state["curves_marker_condition"] = best
        whose = c3.selectbox("Memory changes of", keys, key="curves_marker_condition",
                             format_func=lambda key: named[key].label)  # fmt: skip
        with errors_shown():
            markers = markers_of(ctx.url, named[whose].run_ids, version, True)
    simulator_note(selected)
    if not points:
        st.warning("These runs have no per-group metrics and no trajectories yet.")
        st.stop()
    legend, shared = conditions.short_names(picked)
    if shared:
        st.caption(f"Every line: {md(shared)}")  # agent and run names come from the data
    cpoints = conditions.condition_curves(points, spread)
    colors = curves_chart.condition_colors(picked, color_by)
    fig = curves_chart.condition_figure(cpoints, markers, names=legend, colors=colors)
    show(fig)
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download CSV (one row per run and group)", curves.to_csv(points),
        file_name="learning_curves.csv", mime="text/csv", key="curves_csv",
    )  # fmt: skip
    png_button(fig, d2)
    st.subheader("Per condition")
    table = conditions.summaries_frame(conditions.condition_summaries(cpoints))
    table["condition"] = table["condition"].map(legend)  # the names in the legend
    table[["first", "last"]] *= 100  # shown as whole percents, the change in points
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={
            "seeds": st.column_config.NumberColumn("seeds"),
            "first": st.column_config.NumberColumn("success, first group", format="%.0f%%"),
            "last": st.column_config.NumberColumn("success, last group", format="%.0f%%"),
            "change": st.column_config.NumberColumn("change (points)", format="%+.0f"),
            "steps_first": st.column_config.NumberColumn("steps, first group", format="%.1f"),
            "steps_last": st.column_config.NumberColumn("steps, last group", format="%.1f"),
            "unknown": st.column_config.NumberColumn("unknown outcomes"),
        },
    )  # fmt: skip
    frame = curves.to_frame(points)
    per_run_table(frame)
    marker_table(markers, legend.get(named[whose].name, "") if whose else "")
    all_points(frame)


def run_view() -> None:
    labels = {str(r.id): curves.run_label(r) for r in runs}
    chosen = url_multi(st, "Runs", list(labels), key="curves_runs", param="runs",
                       default=list(labels)[:6], format_func=labels.__getitem__)  # fmt: skip
    c1, c2, c3 = st.columns([2, 1, 1])
    color_by = c1.radio(
        "Colour by", ["condition", "run", "policy", "model"], horizontal=True,
        key="curves_color",
        help="condition: runs that differ only by seed share a colour and their band.",
    )  # fmt: skip
    show_bands = c2.checkbox("Bands across seeds", value=True, key="curves_bands")
    show_markers = c3.checkbox("Memory-change markers", value=True, key="curves_run_markers")
    if not chosen:
        st.info("Pick one or more runs.")
        st.stop()
    selected = [by_id[int(x)] for x in chosen]
    marked = []
    which = ""
    if show_markers:
        # One run's changes at a time: several runs' markers on one axis would not say whose.
        own = [x for x in chosen if by_id[int(x)].kind != "import"] or chosen
        which = st.selectbox("Memory changes of", own, key="curves_marker_run",
                             format_func=labels.__getitem__)  # fmt: skip
        marked = [by_id[int(which)]] if which in labels else []
    with errors_shown():
        points = points_of(ctx.url, tuple(r.id or 0 for r in selected), version, counted)
        markers = markers_of(ctx.url, (marked[0].id or 0,), version, False) if marked else []
    band_points = conditions.bands(points) if show_bands else []
    simulator_note(selected)
    if not points:
        st.warning("These runs have no per-group metrics and no trajectories yet.")
        st.stop()
    fig = curves_chart.figure(points, band_points, markers, color_by=color_by)
    show(fig)
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download CSV", curves.to_csv(points), file_name="learning_curves.csv",
        mime="text/csv", key="curves_csv",
    )  # fmt: skip
    png_button(fig, d2)
    frame = curves.to_frame(points)
    per_run_table(frame)
    marker_table(markers, f"run {labels.get(which, '')}")
    all_points(frame)


if view == "conditions":
    condition_view()
else:
    run_view()
