"""Who is signed in: streamlit-authenticator over the checked credentials of memp_core.

The credentials file (``MEMP_AUTH_FILE``, format in :mod:`memp_core.credentials`) is read
and checked on every page load; a bad file is one ``st.error`` line, never a traceback. The
sign-in library gets a fresh dict, never the path, so it cannot rewrite the file.

What this module adds around the library: failed sign-ins are limited per username; a
sign-out is recorded in the audit log and revokes that person's remember-me cookies issued
before it (in every browser, including a stolen copy); a session whose person signed out
elsewhere, or was removed from the file, ends at its next click.

With no file configured, the dashboard runs as one local admin and serves this machine only
(``memp dashboard`` binds 127.0.0.1; a visitor from another address is refused here too,
unless the operator launched it with ``--insecure-no-sign-in-on-network``).
The role only shapes the screen here; ``memp_core`` enforces it (viewers are refused).
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from memp_core.config import Settings
from memp_core.credentials import (
    NETWORK_OPT_OUT_ENV,
    CookieToken,
    Credentials,
    LoginThrottle,
    load_credentials,
    read_token,
    record_sign_out,
    signed_out_since,
)
from memp_core.errors import MempError
from memp_core.store import Store

ROLES = ("viewer", "reviewer", "admin")
_LIBRARY_STATE = ("name", "username", "authentication_status", "email", "roles")
_ISSUED = "auth_issued_at"  # when this session's sign-in (password or cookie) was issued


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


@dataclass(frozen=True)
class SignIn:
    """What :func:`signed_in` returns as ``auth``: the library's object and our checks."""

    authenticator: Any  # streamlit_authenticator.Authenticate
    creds: Credentials
    store: Store


@st.cache_resource(max_entries=4, show_spinner=False)
def _store(url: str, busy_timeout_s: float) -> Store:
    return Store(url, busy_timeout_s=busy_timeout_s)


@st.cache_resource(max_entries=4, show_spinner=False)
def _throttle(path: str) -> LoginThrottle:
    """One counter of failed sign-ins per credentials file, shared by every session of this
    process on purpose (it is thread-safe): an attacker opening new sessions gains nothing."""
    return LoginThrottle()


def visitor_allowed(ip: str | None, opted_out: bool) -> bool:
    """Without credentials, whether a visitor from ``ip`` may use the dashboard (as admin):
    only from this machine (Streamlit gives None for the loopback), unless the operator
    opted out with ``memp dashboard --insecure-no-sign-in-on-network``."""
    if ip is None or opted_out:
        return True
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False  # not an address we can read: treat it as remote
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def _this_machine_only() -> None:
    """Without credentials every visitor is admin: refuse visitors from other machines (the
    CLI binds 127.0.0.1; this also covers `streamlit run app.py --server.address 0.0.0.0`)."""
    ip = st.context.ip_address
    # A real server gives a str, or None for the loopback; AppTest's stand-in runtime has
    # no client at all (a placeholder object): that is this machine too.
    if visitor_allowed(
        ip if isinstance(ip, str) else None, os.environ.get(NETWORK_OPT_OUT_ENV) == "1"
    ):
        return
    st.error(
        "This dashboard has no sign-in (MEMP_AUTH_FILE is not set), so it serves only the "
        "machine it runs on."
    )
    st.stop()


def _clear_session(message: str) -> None:
    for key in _LIBRARY_STATE:
        st.session_state[key] = None
    st.session_state.pop(_ISSUED, None)
    # The library reads the remember-me cookie only while "logout" is unset.
    st.session_state["logout"] = True
    st.warning(message)


def _end_revoked_session(creds: Credentials, store: Store) -> None:
    """A session signed in earlier ends if its person signed out since (anywhere) or is no
    longer in the credentials file."""
    if not st.session_state.get("authentication_status"):
        return
    username = str(st.session_state.get("username") or "")
    issued = st.session_state.get(_ISSUED)
    if username not in creds.users:
        _clear_session("You were signed out: your account is no longer in the credentials file.")
    elif not isinstance(issued, float) or signed_out_since(store, username, issued):
        _clear_session("You were signed out (this account signed out in another window).")


def _screen_cookie(creds: Credentials, store: Store) -> CookieToken | None:
    """The browser's remember-me cookie if it may sign this session in; otherwise make the
    library ignore it (forged, expired, malformed, unknown user, or signed out since)."""
    if st.session_state.get("authentication_status"):
        return None
    raw = _cookie(creds)
    if raw is None:
        return None
    token = read_token(creds, raw)
    if token is None or signed_out_since(store, token.username, token.issued_at):
        st.session_state["logout"] = True
        return None
    return token


def _cookie(creds: Credentials) -> str | None:
    """The remember-me cookie this browser sent with its first request, if any."""
    raw = st.context.cookies.get(creds.cookie.name)
    return raw if isinstance(raw, str) and raw else None


def _authenticator(creds: Credentials, offered: dict[str, Any]) -> Any:
    import streamlit_authenticator as stauth

    # login_sleep_time: the library waits before reading the cookie; 0.7 s per rerun
    # is noticeable on every click, and the cookie is read from st.context anyway.
    return stauth.Authenticate(
        offered,
        cookie_name=creds.cookie.name,
        cookie_key=creds.cookie.key,
        cookie_expiry_days=creds.cookie.expiry_days,
        auto_hash=False,
        login_sleep_time=0.05,
    )


def _login(creds: Credentials, throttle: LoginThrottle) -> Any:
    """Render the login form (or accept the screened cookie); count failed attempts."""
    from streamlit_authenticator.utilities import LoginError

    locked = throttle.locked()
    offered = creds.authenticator_credentials(locked, throttle.max_failures)
    auth = _authenticator(creds, offered)
    try:
        auth.login(location="main", key="auth_login", max_login_attempts=throttle.max_failures)
    except LoginError:  # a locked username (the only LoginError left after screening)
        minutes = round(throttle.window_s / 60)
        st.error(f"Too many failed sign-ins for this user: try again in up to {minutes} minutes.")
        st.session_state["authentication_status"] = None  # no verdict on this attempt
    # The library counted a wrong password on its copy of the user: remember it here.
    for username, entry in offered["usernames"].items():
        if username not in locked and entry.get("failed_login_attempts", 0) > 0:
            throttle.failed(username)
    return auth


def signed_in(settings: Settings, store: Store | None = None) -> tuple[Person, SignIn | None]:
    """The person using this session and the sign-in object (None without credentials).

    Renders the login form and stops the script until someone has signed in. One
    authenticator per script run: it owns a cookie component that must not be created twice.
    """
    if settings.auth_file is None:
        _this_machine_only()
        return LOCAL_ADMIN, None
    try:
        creds = load_credentials(Path(settings.auth_file))
        store = store or _store(settings.resolved_database_url(), settings.sqlite_busy_timeout_s)
        throttle = _throttle(str(creds.path))
        _end_revoked_session(creds, store)
        token = _screen_cookie(creds, store)
    except MempError as exc:
        st.error(f"Sign-in is unavailable: {exc}")
        st.stop()
    was_signed_in = bool(st.session_state.get("authentication_status"))
    auth = _login(creds, throttle)
    if not st.session_state.get("authentication_status"):
        if st.session_state.get("authentication_status") is False:
            st.error("Username or password is incorrect.")
        st.info("Sign in to use Memp Studio.")
        st.stop()
    username = str(st.session_state.get("username") or "")
    if not was_signed_in:
        throttle.succeeded(username)
        by_cookie = token is not None and token.username == username
        st.session_state[_ISSUED] = token.issued_at if by_cookie and token else time.time()
    user = creds.users[username]
    return Person(username=username, name=user.name, role=user.role), SignIn(auth, creds, store)


def sign_out_button(auth: SignIn | None) -> None:
    """The sign-out button (in the sidebar, under who is signed in).

    Signing out is recorded in the audit log first: from then on, this person's
    remember-me cookies issued before it (a copy taken from this browser included) are
    refused, and their other sessions end at their next click.
    """
    if auth is None or not st.session_state.get("authentication_status"):
        return

    def revoke(info: dict[str, Any]) -> None:
        user = auth.creds.users.get(str(info.get("username") or ""))
        if user is None:
            return
        try:
            record_sign_out(auth.store, user.actor(), _cookie(auth.creds))
        except MempError as exc:  # signed out here all the same; say the cookie still works
            st.error(f"Signed out, but the sign-out could not be recorded ({exc}).")

    auth.authenticator.logout("Sign out", location="sidebar", key="auth_logout", callback=revoke)
