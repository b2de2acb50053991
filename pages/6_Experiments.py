"""Experiments: start a household-simulator run from the page; results land in Learning curves."""

import pandas as pd
import streamlit as st

from memp_core.curves import condition_of, run_label
from memp_core.loop import start_run
from memp_core.overview import latest_runs
from ui.common import changed, errors_shown, link, page
from ui.picker import id_link, page_url
from ui.safe import md

ctx = page(
    "Experiments",
    ":material/science:",
    "Run an agent on seeded tasks of the household simulator (Memp Studio's synthetic, "
    "ALFWorld-compatible text world) with a memory policy, and measure it.",
)
store = ctx.store

if flash := st.session_state.pop("exp_flash", None):
    st.success(flash)

with st.form("exp_form"):
    c1, c2, c3 = st.columns(3)
    agent = c1.selectbox(
        "Agent", ["heuristic", "llm"], key="exp_agent",
        help="heuristic: a non-LLM agent that knows only the action grammar and what memory "
        "gives it. llm: a ReAct agent through the configured OpenAI-compatible endpoint.",
    )  # fmt: skip
    memory_policy = c2.selectbox(
        "Memory (update policy)", ["reflect", "validation", "vanilla", "none"], key="exp_memory"
    )
    retrieve = c3.selectbox(
        "Retrieval policy", ["query", "facts", "hybrid", "random"], key="exp_retrieve"
    )
    c4, c5, c6, c7 = st.columns(4)
    build = c4.selectbox(
        "Build policy", ["script", "proceduralization", "trajectory"], key="exp_build"
    )
    k = c5.number_input("k", 1, 10, 3, key="exp_k")
    tasks = c6.number_input("Tasks", 1, 2000, 60, key="exp_tasks")
    groups = c7.number_input("Groups", 1, 100, 6, key="exp_groups")
    c8, c9, _ = st.columns([1, 1, 2])
    strength = c8.selectbox(
        "Heuristic agent strength", ["strong", "weak"], key="exp_strength",
        help="strong: searches everywhere and opens closed receptacles; weak: a small search "
        "budget (for the memory-transfer experiment). Ignored by the llm agent.",
    )  # fmt: skip
    seed = c9.number_input("Seed", 0, 1_000_000, 0, key="exp_seed")
    submitted = st.form_submit_button(
        "Start run", type="primary", disabled=not ctx.person.can_review
    )

if ctx.settings.llm_backend == "heuristic":
    st.caption(
        "Reflections are written by the offline heuristic backend (deterministic, no model)."
    )
if not ctx.person.can_review:
    st.caption(f"Signed in as a {ctx.person.role}: starting runs needs reviewer or admin.")

if submitted:
    bar = st.progress(0.0, text="Starting…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"{done} / {total} tasks")

    with errors_shown():
        run = start_run(
            store, actor=ctx.actor(), agent=agent, memory=memory_policy, retrieve=retrieve,
            build=build, k=int(k), tasks=int(tasks), groups=int(groups), seed=int(seed),
            progress=progress, **({"strength": strength} if agent == "heuristic" else {}),
        )  # fmt: skip
    changed()
    rates = [g.get("success_rate") or 0.0 for g in run.metrics]
    st.session_state["exp_flash"] = (
        f"Run #{run.id} {md(run.status)}: success per group "
        + " → ".join(f"{r:.0%}" for r in rates)
        + f". See it in Learning curves as “{md(run_label(run))}”."
    )
    st.rerun()

st.subheader("Recent runs")
with errors_shown():
    runs = latest_runs(store, 20)
if not runs:
    st.caption("No runs yet.")
else:
    st.dataframe(
        pd.DataFrame(
            [{"id": page_url("pages/1_Trajectories.py", run=r.id), "run": run_label(r),
              "condition": condition_of(r), "status": r.status,
              "source": r.source,
              "success per group": [g.get("success_rate") or 0.0 for g in r.metrics]}
             for r in runs]
        ),
        hide_index=True, width="stretch",
        column_config={  # widths that fit 1280 px beside the sidebar
            "id": id_link("run", width=44, help="Opens the run's trajectories"),
            "run": st.column_config.TextColumn(width=226),
            "condition": st.column_config.TextColumn(
                width=230,
                help="What the run measured, without its seed: runs with the same condition "
                "are seeds of one experiment and share a band in Learning curves."),
            "status": st.column_config.TextColumn(width=56),
            "source": st.column_config.TextColumn(width=100),
            "success per group": st.column_config.LineChartColumn(y_min=0, y_max=1, width=116),
        },
    )  # fmt: skip
    link("pages/4_Learning_curves.py", "Open Learning curves", ":material/show_chart:")
