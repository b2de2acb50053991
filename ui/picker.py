"""Open one object from a table, held by its id in the URL, never by its row number.

A table on these pages is sorted by something that changes (last update, newest first): after
a save the queue re-sorts and row 3 is another procedure. Streamlit keeps a table's selection
as row numbers, so a page that read "the ticked row" after a write opened (and approved) the
wrong procedure. Here the open id lives in the URL (``?procedure=6``, shareable); a click is
turned into an id once, through the ids the table showed when it was clicked; and the tick is
then drawn from the id, so the ticked row and the open object can never disagree.

Filters live in the URL too (``url_choice``, ``url_text``, ``url_int``...: the widget is seeded
from ``?param=`` on every run and writes it back when changed), so a link opens the same
view; :func:`restore_url` gives a page its last URL back when the sidebar opens it bare.
``page_url``/``id_link`` make id columns links to the page showing that object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

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


def take_click(key: str) -> int | None:
    """The id of the row just clicked in table ``key``, once: a table whose click leads to
    another page forgets it, so coming back does not follow it again."""
    picked = clicked_id(key)
    if picked is not None:
        st.session_state.pop(_shown_key(key), None)
        st.session_state[key] = {"selection": {"rows": [], "columns": [], "cells": []}}
    return picked


def open_id(key: str, param: str, fallback: int | None) -> int | None:
    """The id to open: a row just clicked in table ``key`` (it goes into the URL), else the
    URL's ``?param=N``, else ``fallback`` (the first row, not written to the URL)."""
    picked = clicked_id(key)
    if picked is not None:
        st.query_params[param] = str(picked)
        _remember()
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
    _remember()


def id_input(label: str, opened: int | None, *, key: str, param: str, where: Any = st) -> int:
    """A number input showing the open id; typing another id opens it (and puts it in the URL)."""
    st.session_state[key] = int(opened or 0)
    value = where.number_input(label, min_value=0, step=1, key=key, on_change=_to_url,
                            args=(key, param))  # fmt: skip
    return int(value or 0)


# -- filters in the URL: a shared link opens the same view, and the view survives a page change


_PAGE, _MEMORY = "_url_page", "_url_memory"  # session keys: the page shown, URLs kept


def _remember() -> None:
    """Keep the current page's URL for the session (see :func:`restore_url`)."""
    name = st.session_state.get(_PAGE)
    if name:
        st.session_state.setdefault(_MEMORY, {})[name] = st.query_params.to_dict()


def restore_url(name: str) -> None:
    """Run first on every page (ui.common.page does). Opened from another page through a bare
    link (the sidebar drops the query string), page ``name`` gets back the filters and open
    id it had last in this session; a link with a query string (shared) wins. The sidebar
    link to the page already shown resets it."""
    came_from = st.session_state.get(_PAGE)
    st.session_state[_PAGE] = name
    kept = st.session_state.get(_MEMORY, {}).get(name)
    if came_from != name and not st.query_params and kept:
        st.query_params.from_dict(kept)
    _remember()


def _write(key: str, param: str, default: object, encode: Any, drop: Sequence[str]) -> None:
    value = st.session_state.get(key)
    if value is None or value == default:
        st.query_params.pop(param, None)  # defaults stay out of the URL: links stay short
    else:  # an emptied box is ?param= (else the next run would seed the default again)
        st.query_params[param] = encode(value)
    for other in drop:  # e.g. a new filter opens the first match, not the id opened before
        st.query_params.pop(other, None)
    _remember()


def _seed(key: str, value: object) -> None:
    st.session_state[key] = value


def url_choice(
    where: Any, label: str, options: Sequence[str], *, key: str, param: str, default: str,
    drop: Sequence[str] = (), **kw: Any,
) -> str:  # fmt: skip
    """A selectbox whose choice is ``?param=`` in the URL (an unknown value: the default)."""
    raw = st.query_params.get(param)
    _seed(key, raw if raw in options else default)
    return str(where.selectbox(label, list(options), key=key, on_change=_write,
                               args=(key, param, default, str, drop), **kw))  # fmt: skip


def url_multi(
    where: Any, label: str, options: Sequence[str], *, key: str, param: str,
    default: Sequence[str], **kw: Any,
) -> list[str]:  # fmt: skip
    """A multiselect held in the URL as ``?param=a,b`` (unknown values dropped)."""
    raw = st.query_params.get(param)
    picked = [o for o in (raw or "").split(",") if o in options] if raw is not None else None
    _seed(key, picked if picked is not None else list(default))
    args = (key, param, list(default), ",".join, ())
    return list(where.multiselect(label, list(options), key=key, on_change=_write, args=args,
                                  **kw))  # fmt: skip


def url_text(
    where: Any, label: str, *, key: str, param: str, default: str = "",
    drop: Sequence[str] = (), area: bool = False, **kw: Any,
) -> str:  # fmt: skip
    """A text box (``area``: a text area) whose text is ``?param=`` in the URL."""
    raw = st.query_params.get(param)
    _seed(key, raw if raw is not None else default)
    widget = where.text_area if area else where.text_input
    return str(widget(label, key=key, on_change=_write,
                      args=(key, param, default, str, drop), **kw))  # fmt: skip


def url_int(
    where: Any, label: str, *, key: str, param: str, default: int, lo: int, hi: int | None = None,
    drop: Sequence[str] = (), **kw: Any,
) -> int:  # fmt: skip
    """A number input whose value is ``?param=N`` (out of range or not a number: the default;
    a page number beyond the last page: the last page)."""
    value = params_int(param)
    value = default if value is None or value < lo else value
    _seed(key, value if hi is None else min(value, hi))
    return int(where.number_input(label, lo, hi, key=key, step=1, on_change=_write,
                                  args=(key, param, default, str, drop), **kw))  # fmt: skip


def url_flag(where: Any, label: str, *, key: str, param: str, default: bool = False,
             **kw: Any) -> bool:  # fmt: skip
    """A checkbox held as ``?param=1`` / ``?param=0``."""
    raw = st.query_params.get(param)
    _seed(key, default if raw not in ("0", "1") else raw == "1")
    return bool(where.checkbox(label, key=key, on_change=_write,
                               args=(key, param, default, lambda v: "1" if v else "0", ()),
                               **kw))  # fmt: skip


def set_param(param: str, value: int | str | None) -> None:
    """Put ``?param=value`` in the URL (None: take it out), and remember it."""
    if value is None:
        st.query_params.pop(param, None)
    else:
        st.query_params[param] = str(value)
    _remember()


def page_url(path: str, **query: int | str | None) -> str | None:
    """A relative link to another page of the app opening one object (``?procedure=6``), for a
    LinkColumn: streamlit serves ``pages/2_Procedures.py`` at ``Procedures``. None when an id
    is missing (the cell stays empty)."""
    if any(v is None or v == "" for v in query.values()):
        return None
    slug = path.rsplit("/", 1)[-1].removesuffix(".py").split("_", 1)[-1]
    args = "&".join(f"{k}={quote(str(v))}" for k, v in query.items())
    return f"{'' if path == 'app.py' else slug}?{args}"


def id_link(param: str, label: str | None = None, **kw: Any) -> Any:
    """A LinkColumn for :func:`page_url` values that shows just the id (``?procedure=6`` → 6)."""
    return st.column_config.LinkColumn(label, display_text=rf"{param}=([^&]+)", **kw)
