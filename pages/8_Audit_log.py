"""Audit log: who did what to which object, when."""

import json

import pandas as pd
import streamlit as st

from memp_core.models import AuditEvent
from memp_core.queue import list_audit
from ui.common import errors_shown, page
from ui.picker import id_link, page_url, url_choice, url_int

PAGE_SIZE = 100
ALL = "(all)"
# An event's object id links to where that object is shown; other objects (runs, keys,
# imports) link to this log filtered on them: their history.
OPENS = {"procedure": ("pages/2_Procedures.py", "procedure"),
         "trajectory": ("pages/1_Trajectories.py", "trajectory")}  # fmt: skip

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
new = {"default": ALL, "drop": ("page",)}  # a new filter starts on the first page
actor = url_choice(c[0], "Who", [ALL, *actors], key="audit_actor", param="who", **new)
action = url_choice(c[1], "Action", [ALL, *actions], key="audit_action", param="action", **new)
kind = url_choice(c[2], "Object type", [ALL, *kinds], key="audit_kind", param="kind", **new)
obj = url_int(c[3], "Object id (0: any)", key="audit_obj", param="object", default=0, lo=0,
              drop=("page",))  # fmt: skip


def opens(object_type: str, object_id: int | None) -> str | None:
    path, param = OPENS.get(object_type, ("pages/8_Audit_log.py", "object"))
    if param == "object":
        return page_url(path, kind=object_type, object=object_id)
    return page_url(path, **{param: object_id})


def query(offset: int, limit: int):  # noqa: ANN202 (AuditPage)
    return list_audit(
        store, actor=None if actor == ALL else actor, action=None if action == ALL else action,
        object_type=None if kind == ALL else kind, object_id=int(obj) or None,
        offset=offset, limit=limit,
    )  # fmt: skip


with errors_shown():
    total = query(0, 0).total
pages = max(1, -(-total // PAGE_SIZE))
page_no = url_int(st.columns(4)[0], f"Page (of {pages})", key="audit_page", param="page",
                  default=1, lo=1, hi=pages)  # fmt: skip
with errors_shown():
    result = query((page_no - 1) * PAGE_SIZE, PAGE_SIZE)
st.caption(f"{result.total:,} events match.")
if not result.rows:
    st.info("No events yet: approvals, rejections, edits, rollbacks and imports appear here.")
    st.stop()
st.dataframe(
    pd.DataFrame(
        [{"when": e.created_at, "who": e.actor, "action": e.action, "object": e.object_type,
          "id": opens(e.object_type, e.object_id),
          "detail": json.dumps(e.detail, ensure_ascii=False, default=str)}
         for e in result.rows]
    ),
    hide_index=True, width="stretch",
    column_config={
        "when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        "detail": st.column_config.TextColumn(width="large"),
        "id": id_link("(?:procedure|trajectory|object)", width="small",
                      help="Opens the object (its page, or this log filtered on it)"),
    },
)  # fmt: skip
