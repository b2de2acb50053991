"""What every page shares: cached resources, the sidebar, sign-in and error display.

Pages call :func:`page` first; it returns the settings, the store and the signed-in person,
or stops the script with one readable message when the database cannot be opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from memp_core.actor import Actor, Role
from memp_core.config import Settings, get_settings, safe_url
from memp_core.errors import MempError
from memp_core.memory import ProceduralMemory
from memp_core.models import Trajectory
from memp_core.store import Store
from ui.auth import Person, sign_out_button, signed_in
from ui.safe import md, md_badge

SIMULATOR_NOTE = (
    "Simulator data: trajectories from Memp Studio's seeded household world "
    "(ALFWorld-compatible text world), not from real ALFWorld games."
)
HEURISTIC_NOTE = (
    "Heuristic backend: a deterministic offline builder/reflector, no language model. "
    "Revisions it writes have the author `heuristic`."
)


@dataclass(frozen=True)
class PageContext:
    settings: Settings
    store: Store
    person: Person
    auth: Any = None  # ui.auth.SignIn when credentials are configured, else None

    @property
    def url(self) -> str:
        return self.settings.resolved_database_url()

    def actor(self) -> Actor:
        """The signed-in person as the core's Actor: every write checks its role there
        (Actor refuses a role it does not know)."""
        role = cast(Role, self.person.role)
        return Actor(name=self.person.username or self.person.name, role=role)


@st.cache_resource(max_entries=4, show_spinner=False)
def get_store(url: str, busy_timeout_s: float) -> Store:
    """One Store (engine and connection pool) per database URL, shared by all sessions."""
    return Store(url, busy_timeout_s=busy_timeout_s)


@st.cache_resource(max_entries=2, show_spinner="Loading the embedding model…")
def get_memory(url: str, busy_timeout_s: float) -> ProceduralMemory:
    """The engine (embedder and vector index) per database, loaded once per process."""
    return ProceduralMemory(get_store(url, busy_timeout_s), settings=get_settings())


@st.cache_data(ttl=30, max_entries=16, show_spinner=False)
def data_sources(url: str, busy_timeout_s: float) -> list[str]:
    return get_store(url, busy_timeout_s).distinct_values(Trajectory.source)


def memory(ctx: PageContext) -> ProceduralMemory:
    return get_memory(ctx.url, ctx.settings.sqlite_busy_timeout_s)


def backend_label(settings: Settings) -> str:
    if settings.llm_backend == "heuristic":
        return "heuristic (offline, no model)"
    return f"{settings.llm_backend}: {settings.llm_model}"


NAV: tuple[tuple[str, str, str], ...] = (
    ("app.py", "Overview", ":material/dashboard:"),
    ("pages/1_Trajectories.py", "Trajectories", ":material/route:"),
    ("pages/2_Procedures.py", "Procedures", ":material/rule:"),
    ("pages/3_Lineage.py", "Lineage", ":material/account_tree:"),
    ("pages/4_Learning_curves.py", "Learning curves", ":material/show_chart:"),
    ("pages/5_Retrieval_playground.py", "Retrieval playground", ":material/search:"),
    ("pages/6_Experiments.py", "Experiments", ":material/science:"),
    ("pages/7_Import_Export.py", "Import / Export", ":material/swap_vert:"),
    ("pages/8_Audit_log.py", "Audit log", ":material/history:"),
    ("pages/9_Agents.py", "Agents", ":material/smart_toy:"),
)


def sidebar(ctx: PageContext) -> None:
    with st.sidebar:
        for path, label, icon in NAV:
            link(path, label, icon)
        st.divider()
        p = ctx.person
        if p.local:
            st.markdown("**Single local admin**")
            st.caption("No credentials configured (set MEMP_AUTH_FILE to require sign-in).")
        else:
            st.markdown("**Signed in**")
            st.text(f"{p.name} ({p.username}) · role: {p.role}")
            sign_out_button(ctx.auth)
        st.caption("Database")
        st.code(safe_url(ctx.url), language=None, wrap_lines=True)
        st.caption(f"LLM backend: {md(backend_label(ctx.settings))}")
        if ctx.settings.llm_backend == "heuristic":
            st.caption(HEURISTIC_NOTE)
        sources = data_sources(ctx.url, ctx.settings.sqlite_busy_timeout_s)
        if sources:  # values from imported files: shown as text, never as Markdown
            st.caption("Data sources: " + ", ".join(md(x) for x in sources))
        if "simulator" in sources:
            st.caption(SIMULATOR_NOTE)


def page(title: str, icon: str = ":material/psychology:", caption: str = "") -> PageContext:
    """Set up a page: config, store, sign-in, sidebar and title."""
    from ui.picker import restore_url  # ui.picker builds on this module's params_int

    st.set_page_config(page_title=f"{title} · Memp Studio", page_icon=icon, layout="wide")
    restore_url(title)
    settings = get_settings()
    try:
        store = get_store(settings.resolved_database_url(), settings.sqlite_busy_timeout_s)
    except MempError as exc:
        st.error(md(str(exc)))  # messages may quote data (a path, a value): shown as text
        st.stop()
    person, auth = signed_in(settings, store)
    ctx = PageContext(settings, store, person, auth)
    with errors_shown():
        sidebar(ctx)
    st.title(title)
    if caption:
        st.caption(caption)
    return ctx


@contextmanager
def errors_shown() -> Iterator[None]:
    """Show a MempError as one message and stop the script (no traceback for users)."""
    try:
        yield
    except MempError as exc:
        st.error(md(str(exc)))  # messages may quote data (a file name, a field): shown as text
        st.stop()


def link(path: str, label: str, icon: str, **query: str) -> None:
    """A link to another page (``pages/...``), with query parameters for what to open."""
    try:
        st.page_link(path, label=label, icon=icon, query_params=query or None)
    except StreamlitPageNotFoundError:
        # Only when a page runs as its own entry point (AppTest.from_file on a page):
        # there is no app.py navigation to link into, so say where to go instead.
        st.caption(f"{label}: see {path}")


def changed() -> None:
    """After a write: drop cached reads so every page shows the new state."""
    st.cache_data.clear()


def pct(x: float | None) -> str:
    return f"{x:.0%}" if x is not None else "–"


def params_int(name: str) -> int | None:
    """An integer from the URL's query string (links between pages), or None."""
    raw: Any = st.query_params.get(name)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


# One colour per procedure status, wherever a status is shown as a badge.
STATUS_COLORS = {"approved": "green", "pending_review": "orange", "rejected": "red",
                 "deprecated": "gray", "draft": "blue", "merged": "violet"}  # fmt: skip


def status_badge(status: str, where: Any = st) -> None:
    """A procedure's status as a coloured badge (the status shown as text)."""
    where.badge(md_badge(status), color=STATUS_COLORS.get(status, "gray"))
