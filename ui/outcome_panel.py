"""A run's outcome as a reviewer settles it: the judge's verdict, Confirm/Override, Set the outcome.

A run of unknown outcome counts in no success rate and builds nothing until a person says how
it went, either by confirming or overriding a judge's verdict (memp_core.judge.judgements,
audited) or by setting the outcome directly (memp_core.labels.label_outcome, audited). This
panel shows what the reviewer decides on (who judged, why, what the run counts as now) and the
controls, under the run's figures on pages/1_Trajectories.py. The callbacks act as the signed-in
person and leave their result for the next rerun to show. A judge's words and the outcome
notes come from data: they are shown as text (ui/safe.py).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from memp_core.errors import MempError
from memp_core.judge.judgements import judgements_of, review_judgement
from memp_core.labels import label_outcome
from memp_core.models import Judgement, Trajectory
from memp_core.outcomes import OUTCOMES, EffectiveOutcome, outcome_of
from ui.common import PageContext, changed, errors_shown
from ui.safe import md

FEEDBACK = "traj_feedback"  # session key: the last review's result, shown once
SOURCE_WORDS = {
    "recorded": "recorded outcome", "reviewed": "a person's review", "judged": "unreviewed judge",
    "none": "nothing counts yet",
}  # fmt: skip


def outcome_panel(
    ctx: PageContext, t: Trajectory, shown: Judgement | None, counts: EffectiveOutcome
) -> None:
    """The last review's result, the judge's verdict on run ``t`` (``shown``: the latest
    judgement, if any) with its review controls, and the Set-the-outcome form."""
    if feedback := st.session_state.pop(FEEDBACK, None):
        (st.success if feedback[0] == "success" else st.error)(md(feedback[1]))
    show_judgements(ctx, t, shown, counts)
    with st.expander("Set the outcome", expanded=t.success is None):
        can_label = ctx.person.can_review
        if not can_label:
            st.caption(f"You are signed in as a {ctx.person.role}: reviewers set outcomes.")
        lc = st.columns([1, 3, 1.4])
        pick_key, reason_key = f"traj_label_{t.id}", f"traj_label_reason_{t.id}"
        lc[0].selectbox("Outcome", OUTCOMES, index=OUTCOMES.index(outcome_of(t.success)),
                        key=pick_key, disabled=not can_label)  # fmt: skip
        lc[1].text_input("Why (kept in the audit log)", key=reason_key, disabled=not can_label)
        lc[2].button("Set the outcome", key=f"traj_label_btn_{t.id}",
                     help=f"Record this outcome for trajectory {t.id}, in your name",
                     disabled=not can_label, on_click=_set_outcome,
                     args=(ctx, t.id or 0, pick_key, reason_key))  # fmt: skip
        notes = [str(t.facts[k]) for k in ("recorded_outcome", "outcome") if t.facts.get(k)]
        if notes:
            st.caption("Outcome notes: " + md(" → ".join(notes)))


def show_judgements(
    ctx: PageContext, t: Trajectory, shown: Judgement | None, counts: EffectiveOutcome
) -> None:
    """A judge's verdict: who judged, why, whether a person reviewed it, what it counts as,
    and the review controls."""
    if shown is None:
        if t.success is None:
            st.caption("No judge has read this run yet (`memp judge` gives a verdict with its "
                       "reasons for a reviewer to confirm).")  # fmt: skip
        return
    with errors_shown():
        rows = judgements_of(ctx.store, t.id or 0)
    st.markdown(f"**Judged {md(shown.verdict)}** by {md(shown.backend)} (model "
                f"{md(shown.model)}), judgement {shown.id} run by {md(shown.actor)} on "
                f"{shown.created_at:%Y-%m-%d %H:%M}. Why:")  # fmt: skip
    st.text(shown.rationale)  # a judge's (or a model's) words: shown as text
    jc = st.columns(4)
    jc[0].metric("Reviewed", shown.review or "not yet", shown.reviewed_by or None,
                 delta_color="off", delta_arrow="off", border=True)  # fmt: skip
    jc[1].metric("Counts as", counts.outcome, SOURCE_WORDS[counts.source], delta_color="off",
                 delta_arrow="off", border=True)  # fmt: skip
    if counts.source == "none" and shown.review is None:
        st.caption("Unreviewed verdicts count in no rate and build nothing "
                   "(MEMP_COUNT_UNREVIEWED_JUDGEMENTS is off).")  # fmt: skip
    if len(rows) > 1:
        st.dataframe(pd.DataFrame(
            [{"judgement": j.id, "verdict": j.verdict, "confidence": j.confidence,
              "backend": j.backend, "model": j.model, "review": j.review or "—",
              "reviewed as": j.reviewed_verdict or "—", "reviewed by": j.reviewed_by or "—"}
             for j in rows]), hide_index=True, width="stretch")  # fmt: skip
    can = ctx.person.can_review
    if not can:
        st.caption(f"You are signed in as a {ctx.person.role}: reviewers confirm judgements.")
    rc = st.columns([1, 2.6, 1.8])
    pick, note = f"traj_judge_pick_{shown.id}", f"traj_judge_note_{shown.id}"
    word = rc[0].selectbox("Your verdict", OUTCOMES, index=OUTCOMES.index(
        shown.reviewed_verdict or shown.verdict), key=pick, disabled=not can)  # fmt: skip
    rc[1].text_input("Note (kept in the audit log)", key=note, disabled=not can)
    label = (f"Confirm judgement {shown.id} ({word})" if word == shown.verdict
             else f"Override judgement {shown.id} with {word}")  # fmt: skip
    rc[2].button(label, key=f"traj_judge_btn_{shown.id}", disabled=not can, on_click=_review,
                 args=(ctx, shown.id or 0, pick, note), type="primary")  # fmt: skip


def _review(ctx: PageContext, jid: int, key: str, note_key: str) -> None:
    """The review button's callback: the signed-in person's word, audited by the core."""
    try:
        row = review_judgement(ctx.store, jid, actor=ctx.actor(), verdict=st.session_state[key],
                               note=st.session_state.get(note_key, ""))  # fmt: skip
    except MempError as exc:
        st.session_state[FEEDBACK] = ("error", str(exc))
    else:
        changed()
        said = (f"Judgement {jid} {row.review}: trajectory {row.trajectory_id} counts as "
                f"{row.reviewed_verdict}.")  # fmt: skip
        st.session_state[FEEDBACK] = ("success", said)


def _set_outcome(ctx: PageContext, tid: int, key: str, reason_key: str) -> None:
    """The label button's callback: the signed-in person's label, audited by the core."""
    try:
        label_outcome(ctx.store, tid, st.session_state[key], actor=ctx.actor(),
                      reason=st.session_state.get(reason_key, ""))  # fmt: skip
    except MempError as exc:
        st.session_state[FEEDBACK] = ("error", str(exc))
    else:
        changed()
        st.session_state[FEEDBACK] = ("success", f"Trajectory {tid}: outcome set to "
                                      f"{st.session_state[key]}.")  # fmt: skip
