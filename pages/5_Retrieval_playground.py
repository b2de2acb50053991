"""Retrieval playground: type a task, see what each retrieval policy returns and why."""

import pandas as pd
import streamlit as st

from memp_core.facts import extract_facts
from memp_core.lineage import revision_text
from ui.common import errors_shown, memory, page
from ui.picker import id_link, page_url, url_flag, url_int, url_multi, url_text

POLICIES = ["query", "facts", "random", "hybrid"]
PROCS = "pages/2_Procedures.py"
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

# The task, policies, k and the status switch live in the URL: a link replays the question.
task = url_text(st, "Task", key="play_task", param="task", area=True, height=80,
                default="heat some egg and put it in garbagecan")  # fmt: skip
c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
chosen = url_multi(c1, "Policies", POLICIES, key="play_policies", param="policies",
                   default=POLICIES)  # fmt: skip
k = url_int(c2, "k (procedures per policy)", key="play_k", param="k", default=3, lo=1, hi=10)
all_statuses = url_flag(
    c3, "Include unapproved", key="play_all", param="all",
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
                [{"rank": i + 1, "procedure": page_url(PROCS, procedure=it.procedure.id),
                  "title": it.procedure.title,
                  "task type": it.procedure.task_type, "status": it.procedure.status,
                  "revision": it.revision.id, "author": it.revision.author, "score": it.score,
                  "matched": ", ".join(f"{a}={b}" for a, b in (it.matched or {}).items())}
                 for i, it in enumerate(result.items)]
            ),
            hide_index=True, width="stretch",
            column_config={"score": st.column_config.NumberColumn(format="%.3f"),
                           "procedure": id_link("procedure", width="small")},
        )  # fmt: skip
        for it in result.items:
            with st.expander(f"#{it.procedure.id} · revision {it.revision.id}"):
                st.text(it.procedure.title)
                st.code(revision_text(it.revision) or "(empty)", language=None, wrap_lines=True)
