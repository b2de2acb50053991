"""Open one object from a table, held by its id in the URL, never by its row number.

A table on these pages is sorted by something that changes (last update, newest first): after
a save the queue re-sorts and row 3 is another procedure. Streamlit keeps a table's selection
as row numbers, so a page that read "the ticked row" after a write opened (and approved) the
wrong procedure. Here the open id lives in the URL (``?procedure=6``, shareable); a click is
turned into an id once, through the ids the table showed when it was clicked; and the tick is
then drawn from the id, so the ticked row and the open object can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ui.common import params_int


def _shown_key(key: str) -> str:
    return f"{key}__shown"


def clicked_id(key: str) -> int | None:
    """The id of the row a user clicked in table ``key`` since its last run, else None."""
    state = st.session_state.get(key)
    shown = st.session_state.get(_shown_key(key))
    if state is None or shown is None:
        return None
    ids, ticked = shown
    rows = list(state["selection"]["rows"])
    if not rows or rows == ticked or not 0 <= rows[0] < len(ids):
        return None  # nothing new: the tick is the one this page drew (or was cleared)
    return int(ids[rows[0]])


def open_id(key: str, param: str, fallback: int | None) -> int | None:
    """The id to open: a row just clicked in table ``key`` (it goes into the URL), else the
    URL's ``?param=N``, else ``fallback`` (the first row, not written to the URL)."""
    picked = clicked_id(key)
    if picked is not None:
        st.query_params[param] = str(picked)
    return params_int(param) or fallback


def id_table(
    frame: pd.DataFrame, ids: Sequence[int | None], opened: int | None, *, key: str, **kw: Any
) -> None:
    """``st.dataframe`` with one row tickable; the tick is the open id's row (if shown)."""
    shown = [int(i or 0) for i in ids]
    ticked = [shown.index(opened)] if opened in shown else []
    state = st.session_state.get(key)
    if state is None or list(state["selection"]["rows"]) != ticked:
        st.session_state[key] = {"selection": {"rows": ticked, "columns": [], "cells": []}}
    st.session_state[_shown_key(key)] = (shown, ticked)
    st.dataframe(frame, key=key, on_select="rerun", selection_mode="single-row",
                 hide_index=True, width="stretch", **kw)  # fmt: skip


def _to_url(key: str, param: str) -> None:
    value = int(st.session_state.get(key) or 0)
    if value:
        st.query_params[param] = str(value)
    else:
        st.query_params.pop(param, None)


def id_input(label: str, opened: int | None, *, key: str, param: str) -> int:
    """A number input showing the open id; typing another id opens it (and puts it in the URL)."""
    st.session_state[key] = int(opened or 0)
    value = st.number_input(label, min_value=0, step=1, key=key, on_change=_to_url,
                            args=(key, param))  # fmt: skip
    return int(value or 0)
