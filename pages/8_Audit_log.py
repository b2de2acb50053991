"""Audit log: who did what to which object, when."""

import json

import pandas as pd
import streamlit as st

from memp_core.models import AuditEvent
from memp_core.queue import list_audit
from ui.common import errors_shown, page

PAGE_SIZE = 100
ALL = "(all)"

ctx = page(
    "Audit log",
    ":material/history:",
    "Every reviewer action, import and memory change, newest first.",
)
store = ctx.store

with errors_shown():
    actors = store.distinct_values(AuditEvent.actor)
    actions = store.distinct_values(AuditEvent.action)
    kinds = store.distinct_values(AuditEvent.object_type)
c = st.columns([1, 1, 1, 1])
actor = c[0].selectbox("Who", [ALL, *actors], key="audit_actor")
action = c[1].selectbox("Action", [ALL, *actions], key="audit_action")
kind = c[2].selectbox("Object type", [ALL, *kinds], key="audit_kind")
obj = c[3].number_input("Object id (0: any)", min_value=0, step=1, key="audit_obj")


def query(offset: int, limit: int):  # noqa: ANN202 (AuditPage)
    return list_audit(
        store, actor=None if actor == ALL else actor, action=None if action == ALL else action,
        object_type=None if kind == ALL else kind, object_id=int(obj) or None,
        offset=offset, limit=limit,
    )  # fmt: skip


with errors_shown():
    total = query(0, 0).total
pages = max(1, -(-total // PAGE_SIZE))
page_no = st.columns(4)[0].number_input(f"Page (of {pages})", 1, pages, 1, key="audit_page")
with errors_shown():
    result = query((page_no - 1) * PAGE_SIZE, PAGE_SIZE)
st.caption(f"{result.total:,} events match.")
if not result.rows:
    st.info("No events yet: approvals, rejections, edits, rollbacks and imports appear here.")
    st.stop()
st.dataframe(
    pd.DataFrame(
        [{"when": e.created_at, "who": e.actor, "action": e.action, "object": e.object_type,
          "id": e.object_id, "detail": json.dumps(e.detail, ensure_ascii=False, default=str)}
         for e in result.rows]
    ),
    hide_index=True, width="stretch",
    column_config={
        "when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        "detail": st.column_config.TextColumn(width="large"),
    },
)  # fmt: skip
