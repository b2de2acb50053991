"""Agents: who connects through `memp serve`, with which keys, and how their runs go.

Admins create and revoke keys here (memp_core.agents.keys, audited). A new key is shown
once, in the run that created it, and kept nowhere: not in session state, not in the
database (only its salted hash). Everything an agent sent is shown as text.
"""

import pandas as pd
import streamlit as st

from memp_core.agents.activity import AgentActivity, agent_activity, feedback_given, reported_runs
from memp_core.agents.keys import AGENT_SCOPES, CreatedKey, create_key, list_keys, revoke_key
from memp_core.errors import MempError
from memp_core.models import SCOPES
from memp_core.outcomes import Settled, effective_outcomes
from ui.common import changed, errors_shown, page, pct
from ui.picker import id_link, page_url, url_choice
from ui.safe import md

SOURCES = {"recorded": "recorded", "reviewed": "reviewed judgement",
           "judged": "unreviewed verdict", "none": "–"}  # fmt: skip

ctx = page(
    "Agents",
    ":material/smart_toy:",
    "Agents connect to `memp serve` (REST, MCP, OTLP) with API keys. Each key names its "
    "agent; what it retrieves, reports, rates and proposes is recorded under that name.",
)
store = ctx.store
is_admin = ctx.person.role == "admin"
PROCS, TRAJ = "pages/2_Procedures.py", "pages/1_Trajectories.py"
# Laid out top to bottom, filled in another order: key actions run first, so the tables
# above them already show the key just created or revoked.
summary, per_agent, keys_area, actions, one_agent = (st.container() for _ in range(5))


def show_new_key(new: CreatedKey) -> None:
    """The key, this once: after the next click it is gone from the page and from memory."""
    st.success(f"Key {new.id} created for {md(new.agent)} ({md(', '.join(new.scopes))}).")
    st.warning("Copy the key now: it is not stored and will not be shown again.")
    st.code(new.key, language=None, wrap_lines=True)


def create_form() -> None:
    with st.form("agents_create", border=True):
        st.markdown("**Create a key**")
        name = st.text_input("Agent name", key="agents_new_name", max_chars=64,
                             placeholder="e.g. support-bot")  # fmt: skip
        scopes = st.multiselect(
            "Scopes",
            SCOPES,
            default=list(AGENT_SCOPES),
            key="agents_new_scopes",
            help="review:admin is for a person's review tooling and cannot be combined "
            "with runs:write or procedures:propose",
        )
        create = st.form_submit_button("Create key", type="primary")
    if create:
        try:
            created = create_key(store, agent=name, scopes=scopes, actor=ctx.actor())
        except MempError as exc:
            st.error(md(str(exc)))  # e.g. a bad name or scope mix: the form keeps its values
            return
        changed()
        show_new_key(created)


def revoke_box() -> None:
    with st.container(border=True):
        st.markdown("**Revoke a key**")
        with errors_shown():
            active = [k for k in list_keys(store) if not k.revoked]
        if not active:
            st.caption("No active keys.")
            return
        labels = {k.id: f"key {k.id} · {k.agent} · {', '.join(k.scopes)}" for k in active}
        key_id = st.selectbox("Key", list(labels), format_func=labels.__getitem__,
                              key="agents_revoke_id")  # fmt: skip
        st.caption("Requests with a revoked key are refused at once (401).")
        if st.button("Revoke", key="agents_revoke"):
            try:
                info = revoke_key(store, int(key_id), actor=ctx.actor())
            except MempError as exc:
                st.error(md(str(exc)))
                return
            changed()
            st.toast(f"Key {info.id} of {md(info.agent)} revoked.")
            st.rerun()  # the list above and this box without the revoked key


with actions:
    if not is_admin:
        st.caption(f"You are signed in as a {ctx.person.role}: only admins create and revoke keys.")
    else:
        left, right = st.columns(2)
        with left:
            create_form()
        with right:
            revoke_box()

with errors_shown():
    agents = agent_activity(store, count_unreviewed=ctx.settings.count_unreviewed_judgements)


def summary_metrics(rows: list[AgentActivity]) -> None:
    runs = sum(a.runs for a in rows)
    judged = sum(a.judged for a in rows)
    rate = sum(a.successes for a in rows) / judged if judged else None
    c = st.columns(5)
    c[0].metric("Agents", len(rows), border=True)
    c[1].metric("Active keys", sum(a.active_keys for a in rows), border=True)
    c[2].metric("Retrievals", f"{sum(a.retrievals for a in rows):,}", border=True)
    c[3].metric("Runs reported", f"{runs:,}", border=True)
    c[4].metric(
        "Success rate", pct(rate), border=True,
        help=f"Over the {judged:,} runs with an outcome (recorded, else a judge's verdict a "
        f"reviewer settled); {runs - judged:,} without one are unknown and left out.",
    )  # fmt: skip
    settled = sum((a.settled for a in rows), Settled())
    if settled.runs:
        st.caption(f"Success rates include {md(settled.describe())}.")


def agents_table(rows: list[AgentActivity]) -> None:
    st.subheader("Per agent")
    if not rows:
        st.info(
            "No agents yet. An admin creates a key below (or with `memp keys create`); an "
            "agent sends it as `Authorization: Bearer <key>` to `memp serve`."
        )
        return
    st.dataframe(
        pd.DataFrame(
            [{"agent": a.agent, "active keys": a.active_keys, "retrievals": a.retrievals,
              "runs": a.runs, "successes": a.successes, "failures": a.failures,
              "unknown": a.unknown, "success rate": a.success_rate, "feedback": a.feedback,
              "proposals": a.proposals, "last seen": a.last_seen}
             for a in rows]
        ),
        hide_index=True, width="stretch",
        column_config={
            "success rate": st.column_config.ProgressColumn(
                format="percent", min_value=0, max_value=1,
                help="Successes over runs with an outcome (unknown left out)",
            ),
            "last seen": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        },
    )  # fmt: skip


def keys_table(rows: list[AgentActivity]) -> None:
    st.subheader("Keys")
    keys = sorted((k for a in rows for k in a.keys), key=lambda k: k.id)
    if not keys:
        st.caption("No keys yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [{"id": k.id, "agent": k.agent, "scopes": ", ".join(k.scopes),
              "created": k.created_at, "created by": k.created_by, "last used": k.last_used_at,
              "status": "revoked" if k.revoked else "active"}
             for k in keys]
        ),
        hide_index=True, width="stretch",
        column_config={
            "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "last used": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )  # fmt: skip


def agent_detail(agent: AgentActivity) -> None:
    st.caption(
        f"{md(agent.agent)}: {agent.runs} runs reported ({agent.successes} succeeded, "
        f"{agent.failures} failed, {agent.unknown} unknown), success "
        f"{pct(agent.success_rate)} over runs with an outcome"
        f"{' (includes ' + md(agent.settled.describe()) + ')' if agent.settled.runs else ''}; "
        f"{agent.retrievals} retrievals, "
        f"{agent.feedback} ratings, {agent.proposals} proposals."
    )
    with errors_shown():
        reported = reported_runs(store, agent.agent)
        rated = feedback_given(store, agent.agent)
        # Each run's outcome as the rates count it, and where it came from.
        effective = effective_outcomes(
            store,
            [t.id or 0 for t in reported],
            count_unreviewed=ctx.settings.count_unreviewed_judgements,
        )
    tab_runs, tab_feedback = st.tabs(["Runs reported", "Feedback given"])
    when = {"when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")}
    with tab_runs:
        if not reported:
            st.caption("No runs reported.")
        else:
            st.dataframe(
                pd.DataFrame(
                    [{"id": page_url(TRAJ, trajectory=t.id), "task": t.task,
                      "task type": t.task_type,
                      "outcome": effective[t.id or 0].outcome,
                      "from": SOURCES[effective[t.id or 0].source], "steps": t.step_count,
                      "model": t.agent_model, "when": t.created_at}
                     for t in reported]
                ),
                hide_index=True, width="stretch",
                column_config={**when, "id": id_link("trajectory", width="small")},
            )  # fmt: skip
            st.caption("Click an id to open the run on the Trajectories page.")
    with tab_feedback:
        if not rated:
            st.caption("No feedback given.")
        else:
            st.dataframe(
                pd.DataFrame(
                    [{"procedure": page_url(PROCS, procedure=f.procedure_id),
                      "revision": f.revision_id, "rating": f.rating, "reason": f.reason,
                      "trajectory": page_url(TRAJ, trajectory=f.trajectory_id),
                      "when": f.created_at}
                     for f in rated]
                ),
                hide_index=True, width="stretch",
                column_config={**when, "procedure": id_link("procedure", width="small"),
                               "trajectory": id_link("trajectory", width="small")},
            )  # fmt: skip


with summary:
    summary_metrics(agents)
with per_agent:
    agents_table(agents)
with keys_area:
    keys_table(agents)
if agents:
    with one_agent:
        st.subheader("One agent")
        # Opens on the most recently seen agent that reported runs (a key's use alone is
        # nothing to look at).
        first = next((i for i, a in enumerate(agents) if a.runs), 0)
        names = [a.agent for a in agents]
        chosen = url_choice(st, "Agent", names, key="agents_pick", param="agent",
                            default=names[first])  # fmt: skip
        agent_detail(next(a for a in agents if a.agent == chosen))
