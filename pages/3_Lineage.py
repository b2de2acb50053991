"""Lineage: the revision graph of a procedure, or of all procedures of a task type.

A merge of near-duplicates joins two lineages: the merged procedure's revision is drawn as a
second (evidence) parent of the merge revision, dashed, dotted while the merge is proposed.
"""

import pandas as pd
import streamlit as st

from memp_core import lineage
from memp_core.models import Procedure, ProcedureRevision
from memp_core.outcomes import Settled
from ui.common import errors_shown, page, params_int, pct
from ui.merge_panel import merge_panel
from ui.safe import md

ctx = page(
    "Lineage",
    ":material/account_tree:",
    "Every revision is kept: builds, reflections, human edits, rollbacks and merges, "
    "parent → child.",
)
store = ctx.store
counted = ctx.settings.count_unreviewed_judgements  # unreviewed judge verdicts in the rates

mode = st.radio(
    "Show", ["One procedure", "All procedures of a task type"], horizontal=True, key="lin_mode"
)
with errors_shown():
    types = store.distinct_values(Procedure.task_type)


def chart(fig, key: str) -> int | None:  # noqa: ANN001 (plotly figure)
    """Draw the graph; return the revision id of a clicked node, if any."""
    state = st.plotly_chart(
        fig, width="stretch", key=key, on_select="rerun", selection_mode="points",
        config={"displaylogo": False},
    )  # fmt: skip
    points = state.selection.points if state is not None else []
    for p in points:
        if p.get("customdata") is not None:
            return int(p["customdata"])
    return None


def show_revision(rev: ProcedureRevision, g) -> None:  # noqa: ANN001 (networkx graph)
    use = g.nodes[rev.id]["use"] if rev.id in g else lineage.RevisionUse()
    cols = st.columns(4)
    cols[0].metric("Origin", md(rev.origin), border=True)
    cols[1].metric("Author", md(rev.author or "–"), border=True)
    cols[2].metric("Used", use.uses, border=True)
    cols[3].metric("Success", pct(use.success_rate), border=True)
    if use.settled.runs:
        st.caption(f"Uses and success include {md(use.settled.describe())}.")
    st.caption(
        f"Revision {rev.id} of procedure {rev.procedure_id} · parent "
        f"{rev.parent_revision_id or '(root)'} · model {md(rev.model or '–')} · "
        f"{rev.created_at:%Y-%m-%d %H:%M}"
    )
    if rev.author == "heuristic":
        st.caption("Written by the offline heuristic backend (deterministic, no model).")
    merged_in = lineage.merge_parents(g, rev.id) if rev.id in g else []
    if merged_in:
        names = ", ".join(
            f"revision {n} of procedure {g.nodes[n]['revision'].procedure_id}" for n in merged_in
        )
        st.caption(f"Evidence parents (merged in): {names}")
        with errors_shown(), st.container(border=True):
            merge_panel(store, rev.id, lineage_link=False)
    if rev.rationale:
        st.caption("Rationale")
        st.text(rev.rationale)
    left, right = st.columns(2)
    with left:
        st.caption("This revision")
        st.code(lineage.revision_text(rev) or "(empty)", language=None, wrap_lines=True)
    with right:
        st.caption("Diff to its parent")
        with errors_shown():
            diff = lineage.diff_to_parent(store, rev)
        if diff is None:
            diff = "(root revision: no parent)"
        st.code(diff or "(same text as its parent)", language="diff")


if mode == "One procedure":
    with errors_shown():
        choices = lineage.richest_lineages(store, limit=300)
    options = {
        f"{c.procedure.id}: {c.procedure.title} [{c.procedure.status}] · {c.revisions} "
        f"revision{'s' if c.revisions != 1 else ''}": c.procedure.id
        for c in choices
    }
    wanted = params_int("procedure")
    if wanted is not None and wanted not in options.values():
        with errors_shown():
            p = store.get(Procedure, wanted)
        options = {f"{p.id}: {p.title} [{p.status}]": p.id, **options}
    if not options:
        st.info("No procedures yet. Build some with `memp build` or import agent logs.")
        st.stop()
    labels = list(options)
    default = next((i for i, k in enumerate(labels) if options[k] == wanted), 0)
    chosen = st.selectbox("Procedure (longest histories first)", labels, index=default,
                          key="lin_procedure")  # fmt: skip
    pid = options[chosen]
    with errors_shown():
        g = lineage.procedure_graph(store, pid, count_unreviewed=counted)
        proc = store.get(Procedure, pid)
    clicked = chart(lineage.figure(g, selected=proc.current_revision_id), key=f"lin_chart_{pid}")
    st.caption(
        "Colour: origin · size: how often agents used the revision · thick outline: the "
        "current revision · dashed: a merged procedure's revision, an evidence parent of the "
        "merge (dotted while only proposed). Click a node to open it."
    )
    revs: list[ProcedureRevision] = [g.nodes[n]["revision"] for n in sorted(g.nodes)]
    by_label = {
        f"revision {r.id} · procedure {r.procedure_id} · {r.origin} · {r.author}": r
        for r in reversed(revs)
    }
    rev_labels = list(by_label)
    at = next((i for i, k in enumerate(rev_labels) if by_label[k].id == clicked), 0)
    # A clicked node opens that revision: the key carries it, so the box shows it afresh.
    pick = st.selectbox("Revision", rev_labels, index=at, key=f"lin_rev_{pid}_{clicked}")
    if pick:
        show_revision(by_label[pick], g)
else:
    if not types:
        st.info("No procedures yet.")
        st.stop()
    task_type = st.selectbox("Task type", types, key="lin_type")
    with errors_shown():
        g = lineage.task_type_graph(store, task_type, count_unreviewed=counted)
    st.caption(
        f"{g.number_of_nodes()} revisions of the procedures of type {md(task_type)} (the newest "
        "400 at most); each tree is one procedure."
    )
    clicked = chart(lineage.figure(g), key=f"lin_type_chart_{task_type}")
    rows = [
        {"revision": n, "procedure": d["revision"].procedure_id,
         "title": d["procedure"].title if d["procedure"] else "", "origin": d["revision"].origin,
         "author": d["revision"].author, "uses": d["use"].uses,
         "success": d["use"].success_rate}
        for n, d in sorted(g.nodes(data=True))
    ]  # fmt: skip
    st.dataframe(
        pd.DataFrame(rows), hide_index=True, width="stretch",
        column_config={"success": st.column_config.NumberColumn(format="percent")},
    )  # fmt: skip
    settled = sum((d["use"].settled for _, d in g.nodes(data=True)), Settled())
    if settled.runs:
        st.caption(f"Uses and success rates include {md(settled.describe())}.")
    if clicked is not None and clicked in g:
        st.subheader(f"Revision {clicked}")
        show_revision(g.nodes[clicked]["revision"], g)
