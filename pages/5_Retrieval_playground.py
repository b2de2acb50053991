"""Retrieval playground: type a task, see what each retrieval policy returns and why."""

import pandas as pd
import streamlit as st

from memp_core.facts import extract_facts
from memp_core.lineage import revision_text
from ui.common import errors_shown, memory, page

POLICIES = ["query", "facts", "random", "hybrid"]
POLICY_HELP = {
    "query": "cosine similarity between the task's embedding and each procedure's",
    "facts": "key facts of the task (type, object, receptacle, tool) matched by key and value",
    "random": "random procedures: the ablation baseline",
    "hybrid": "a combination of the query and facts scores",
}

ctx = page(
    "Retrieval playground",
    ":material/search:",
    "What would an agent be given for this task? Nothing typed here is logged as a retrieval.",
)

st.session_state.setdefault("play_task", "heat some egg and put it in garbagecan")
task = st.text_area("Task", key="play_task", height=80)
c1, c2, c3 = st.columns([2, 1, 1])
chosen = c1.multiselect("Policies", POLICIES, default=POLICIES, key="play_policies")
k = c2.slider("k (procedures per policy)", 1, 10, 3, key="play_k")
all_statuses = c3.checkbox(
    "Include unapproved", value=False, key="play_all",
    help="Agents are served approved procedures only; tick to see pending and others too.",
)  # fmt: skip

facts = extract_facts(task).as_dict() if task.strip() else {}
st.caption("Facts extracted from the task")
st.dataframe(
    pd.DataFrame([facts]) if facts else pd.DataFrame({"facts": ["(none recognised)"]}),
    hide_index=True,
)

if not task.strip() or not chosen:
    st.info("Type a task and pick at least one policy.")
    st.stop()

with errors_shown():
    mem = memory(ctx)
for policy, tab in zip(chosen, st.tabs(chosen), strict=True):
    with tab:
        st.caption(POLICY_HELP.get(policy, ""))
        with errors_shown():
            result = mem.retrieve(
                task, policy=policy, k=int(k), all_statuses=all_statuses, log=False
            )
        if not result.items:
            st.info("Nothing retrieved (no procedure passed the filters and threshold).")
            continue
        st.dataframe(
            pd.DataFrame(
                [{"rank": i + 1, "procedure": it.procedure.id, "title": it.procedure.title,
                  "task type": it.procedure.task_type, "status": it.procedure.status,
                  "revision": it.revision.id, "author": it.revision.author, "score": it.score,
                  "matched": ", ".join(f"{a}={b}" for a, b in (it.matched or {}).items())}
                 for i, it in enumerate(result.items)]
            ),
            hide_index=True, width="stretch",
            column_config={"score": st.column_config.NumberColumn(format="%.3f")},
        )  # fmt: skip
        for it in result.items:
            with st.expander(f"#{it.procedure.id} · revision {it.revision.id}"):
                st.text(it.procedure.title)
                st.code(revision_text(it.revision) or "(empty)", language=None, wrap_lines=True)
