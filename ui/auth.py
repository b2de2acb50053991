"""Who is signed in: streamlit-authenticator over a YAML file of hashed passwords and roles.

The credentials file (``MEMP_AUTH_FILE``) is streamlit-authenticator's own format::

    credentials:
      usernames:
        alice:
          name: Alice Reviewer
          email: alice@example.com
          password: $2b$12$...        # bcrypt hash (stauth.Hasher.hash("..."))
          roles: [reviewer]           # viewer | reviewer | admin
    cookie: {name: memp_studio, key: <random secret>, expiry_days: 7}

With no file configured, the dashboard runs as one local admin and says so in the sidebar.
The role only shapes the screen here; ``memp_core.review`` enforces it (viewers are refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from memp_core.config import Settings

ROLES = ("viewer", "reviewer", "admin")


@dataclass(frozen=True)
class Person:
    """The signed-in person as the pages see them."""

    username: str
    name: str
    role: str  # viewer | reviewer | admin
    local: bool = False  # True: no credentials configured, single local admin

    @property
    def can_review(self) -> bool:
        return self.role in ("reviewer", "admin")


LOCAL_ADMIN = Person(username="local", name="local admin", role="admin", local=True)


def strongest_role(roles: list[str] | None) -> str:
    """The most powerful known role a user holds; unknown or missing roles mean viewer."""
    held = [r for r in (roles or []) if r in ROLES]
    return max(held, key=ROLES.index) if held else "viewer"


def _authenticator(path: Path) -> Any:  # streamlit_authenticator.Authenticate
    import streamlit_authenticator as stauth

    # login_sleep_time: the library waits before reading the cookie; 0.7 s per rerun
    # is noticeable on every click, and the cookie is read from st.context anyway.
    return stauth.Authenticate(str(path), auto_hash=False, login_sleep_time=0.05)


def sign_out_button(auth: Any) -> None:
    """The sign-out button (in the sidebar, under who is signed in)."""
    if auth is not None and st.session_state.get("authentication_status"):
        auth.logout("Sign out", location="sidebar", key="auth_logout")


def signed_in(settings: Settings) -> tuple[Person, Any]:
    """The person using this session and the authenticator (None without credentials).

    Renders the login form and stops the script until someone has signed in. One
    authenticator per script run: it owns a cookie component that must not be created twice.
    """
    if settings.auth_file is None:
        return LOCAL_ADMIN, None
    path = Path(settings.auth_file)
    if not path.is_file():
        st.error(f"Credentials file {path} (MEMP_AUTH_FILE) does not exist.")
        st.stop()
    auth = _authenticator(path)
    auth.login(location="main", key="auth_login")
    status = st.session_state.get("authentication_status")
    if status is False:
        st.error("Username or password is incorrect.")
    if not status:
        st.info("Sign in to use Memp Studio.")
        st.stop()
    person = Person(
        username=str(st.session_state.get("username") or ""),
        name=str(st.session_state.get("name") or st.session_state.get("username") or ""),
        role=strongest_role(st.session_state.get("roles")),
    )
    return person, auth
