"""The review queue's view of a merge proposal: the procedures side by side with their stats.

A merge proposal (filed by `memp dedupe`) is accepted or turned down with the proposal's own
approve and reject buttons on the Procedures page; this panel shows what the reviewer decides
on: each procedure's script as text, its status, uses, successes and evidence, and what
accepting does. Everything read from the database is shown as text (ui/safe.py).
"""

from __future__ import annotations

import streamlit as st

from memp_core.lineage import revision_text, unified_diff
from memp_core.merge import MergeSide, MergeView, merge_view
from memp_core.queue import success_rate
from memp_core.store import Store
from ui.common import link, pct, status_badge
from ui.safe import md

PER_ROW = 3  # procedures side by side; a bigger cluster wraps
STATES = {
    "pending": "waiting for a person",
    "accepted": "accepted",
    "undone": "accepted, then undone by a rollback",
    "closed": "turned down or set aside (not merged)",
}


def merge_panel(store: Store, revision_id: int, *, lineage_link: bool = True) -> bool:
    """Show the merge proposal ``revision_id`` side by side; False (nothing shown) when the
    revision is not a merge proposal. ``lineage_link``: add a link to the Lineage page."""
    view = merge_view(store, revision_id)
    if view is None:
        return False
    r, kept = view.record, view.sides[0]
    st.markdown(
        f"**Merge of {len(view.sides)} near-duplicate procedures** of task type "
        f"{md(kept.procedure.task_type or '–')} · similarity {r.similarity:.3f} (embedding "
        f"cosine {r.cosine:.3f}, text {r.text_similarity:.3f}) · proposed by "
        f"{md(r.proposed_by)} · {STATES[view.state]}"
    )
    st.caption(_what_it_does(view))
    for start in range(0, len(view.sides), PER_ROW):
        row = view.sides[start : start + PER_ROW]
        for col, side in zip(st.columns(min(PER_ROW, len(view.sides))), row, strict=False):
            with col, st.container(border=True):
                _side(side)
    with st.expander("What differs, line by line"):
        for side in view.sides[1:]:
            diff = unified_diff(revision_text(kept.revision), revision_text(side.revision),
                                old_label=f"procedure {kept.procedure.id} (kept)",
                                new_label=f"procedure {side.procedure.id}")  # fmt: skip
            st.code(diff or "(the same text)", language="diff", wrap_lines=True)
    if lineage_link:
        link("pages/3_Lineage.py", "Both lineages, with the merge edge",
             ":material/account_tree:", procedure=str(kept.procedure.id))  # fmt: skip
    return True


def _what_it_does(view: MergeView) -> str:
    kept = view.sides[0].procedure.id
    others = ", ".join(str(s.procedure.id) for s in view.sides[1:])
    one = len(view.sides) == 2
    if view.state == "accepted":
        return (
            f"Accepted by {md(view.record.accepted_by)}: procedure{'' if one else 's'} {others} "
            f"{'is' if one else 'are'} merged into procedure {kept} (kept, never deleted, no "
            f"longer served). Rolling procedure {kept} back to revision "
            f"{view.record.kept_revision_id} or older undoes the merge."
        )
    if view.state == "undone":
        return (f"Undone: procedure {kept} was rolled back to before the merge, and "
                f"procedure{'' if one else 's'} {others} got their status back.")  # fmt: skip
    if view.state == "closed":
        return "Not merged: the proposal was turned down or set aside; nothing changed."
    folded = f"procedure {others} becomes" if one else f"procedures {others} become"
    return (
        f"Approving merges: procedure {kept} is kept with its content and its status "
        f"({md(view.sides[0].procedure.status)}); {folded} merged into it (kept, never "
        "deleted, no longer served) and their uses, successes and evidence join it. "
        f"Rejecting leaves every procedure as it is. Rolling procedure {kept} back to a "
        "revision from before the merge undoes it."
    )


def _side(side: MergeSide) -> None:
    p, rev = side.procedure, side.revision
    role = "Kept" if side.kept else "Merged into the kept one"
    st.markdown(f"**{role}: procedure {p.id}** · revision {rev.id}")
    st.text(p.title)
    status_badge(p.status)
    r = success_rate(p)
    rate = f" ({pct(r)})" if r is not None else ""
    m = st.columns(3)
    m[0].metric("Uses", p.use_count)
    m[1].metric("Successes", f"{p.success_count}{rate}")
    m[2].metric("Evidence runs", side.evidence)
    st.code(revision_text(rev) or "(empty)", language=None, wrap_lines=True)
    st.caption(f"author {md(rev.author or '–')} · model {md(rev.model or '–')} · "
               f"{rev.created_at:%Y-%m-%d %H:%M}")  # fmt: skip
