"""Who may sign in to the dashboard: the credentials file, read and checked, never written.

The file (``MEMP_AUTH_FILE``) is streamlit-authenticator's YAML format::

    credentials:
      usernames:
        rita:
          name: Rita Reviewer
          email: rita@example.com
          password: $2b$12$...          # bcrypt hash, never the password itself
          roles: [reviewer]             # viewer | reviewer | admin
    cookie: {name: memp_studio, key: <a secret of 32+ bytes>, expiry_days: 7}

It is loaded here, checked as a whole and refused with one line naming the file and the
problem (the CLI before launching, the dashboard at page load). The dashboard hands the
sign-in library a fresh dict each time, never the path: a read-only mounted secret works, and
concurrent failed sign-ins cannot leave a half-written file that locks everybody out.

Two things the library does not do are here too: failed sign-ins are limited per username
(:class:`LoginThrottle`), and a sign-out revokes every remember-me cookie of that person issued
before it (:func:`record_sign_out` writes it to the audit log, :func:`signed_out_since` is
asked before a cookie is accepted), so a stolen cookie does not stay valid for its 7 days.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import yaml
from sqlmodel import select

from memp_core.actor import ROLES, Actor, Role
from memp_core.errors import ConfigError
from memp_core.models import AuditEvent
from memp_core.store import Store

MIN_KEY_BYTES = 32
MAKE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
MAKE_HASH = "python -c \"import streamlit_authenticator as s; print(s.Hasher.hash('...'))\""
# Keys copied from examples (README, streamlit-authenticator's docs) rather than generated.
_PLACEHOLDERS = (
    "changeme",
    "placeholder",
    "randomsecret",
    "yoursecret",
    "somekey",
    "secretkey",
    "pasteyour",
    "generatedkey",
    "yourkey",
    "replaceme",
    "example",
)
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_EXPIRY_DAYS = 365
SIGN_OUT = "sign-out"
# The CLI sets this for the dashboard it launches with --insecure-no-sign-in-on-network.
NETWORK_OPT_OUT_ENV = "MEMP_INSECURE_NO_SIGN_IN_ON_NETWORK"


@dataclass(frozen=True)
class User:
    username: str
    name: str
    email: str
    password_hash: str
    roles: tuple[Role, ...]

    @property
    def role(self) -> Role:
        """The strongest role held (each role includes the weaker ones)."""
        return max(self.roles, key=ROLES.index)

    def actor(self) -> Actor:
        return Actor(name=self.username, role=self.role)


@dataclass(frozen=True)
class Cookie:
    name: str
    key: str
    expiry_days: float  # 0: no remember-me cookie at all


@dataclass(frozen=True)
class Credentials:
    path: Path
    users: dict[str, User]  # by lower-case username, as the sign-in library looks them up
    cookie: Cookie

    def authenticator_credentials(self, locked: set[str], limit: int) -> dict[str, Any]:
        """A fresh dict in the library's format (it mutates what it is given).

        ``failed_login_attempts`` carries the throttle's verdict: locked users start at
        ``limit``, so the library (given ``max_login_attempts=limit``) refuses them before
        checking any password.
        """
        return {
            "usernames": {
                u.username: {
                    "name": u.name,
                    "email": u.email,
                    "password": u.password_hash,
                    "roles": list(u.roles),
                    "failed_login_attempts": LoginThrottle.MAX_FAILURES
                    if u.username in locked
                    else 0,
                }
                for u in self.users.values()
            }
        }


def cookie_key_problem(key: object) -> str | None:
    """Why this cookie signing key must not be used, or None if it may."""
    if key is None or (isinstance(key, str) and not key.strip()):
        return f"cookie.key is missing; make one with {MAKE_KEY}"
    if not isinstance(key, str):
        return f"cookie.key must be a string; make one with {MAKE_KEY}"
    squashed = re.sub(r"[^a-z0-9]", "", key.lower())
    if (
        "<" in key
        or ">" in key
        or squashed in ("secret", "key", "password", "")
        or any(p in squashed for p in _PLACEHOLDERS)
    ):
        return (
            "cookie.key is a placeholder (anyone who reads the example can sign cookies); "
            f"make a secret with {MAKE_KEY}"
        )
    if len(key.encode()) < MIN_KEY_BYTES:
        return (
            f"cookie.key is {len(key.encode())} bytes, shorter than {MIN_KEY_BYTES}; "
            f"make one with {MAKE_KEY}"
        )
    if len(set(key)) < 8:
        return f"cookie.key repeats a few characters; make a random one with {MAKE_KEY}"
    return None


def load_credentials(path: Path | str) -> Credentials:
    """Read and check the credentials file; ConfigError naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc.__class__.__name__
        raise ConfigError(
            f"credentials file {path} (MEMP_AUTH_FILE): cannot read it ({why})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"credentials file {path}: not valid YAML{where}") from None
    try:
        return _parse(path, data)
    except _Problem as exc:
        raise ConfigError(f"credentials file {path}: {exc}") from None


class _Problem(ValueError):
    """One thing wrong with the file's content (turned into a ConfigError naming the file)."""


def _parse(path: Path, data: object) -> Credentials:
    if data is None:
        raise _Problem("the file is empty")
    if not isinstance(data, dict):
        raise _Problem("expected a mapping with 'credentials' and 'cookie' sections")
    cookie = _cookie(data)  # first: a forgeable cookie is the worse of two problems
    return Credentials(path=path, users=_users(data.get("credentials")), cookie=cookie)


def _cookie(data: dict[str, Any]) -> Cookie:
    raw = data.get("cookie")
    if not isinstance(raw, dict):
        raise _Problem(f"no 'cookie' section (name, key, expiry_days); make a key with {MAKE_KEY}")
    problem = cookie_key_problem(raw.get("key"))
    if problem:
        raise _Problem(problem)
    name = raw.get("name")
    if not isinstance(name, str) or not _COOKIE_NAME.match(name):
        raise _Problem("cookie.name must be a short name of letters, digits, '_', '-' or '.'")
    days = raw.get("expiry_days", 7)
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 <= days <= 365:
        raise _Problem(f"cookie.expiry_days must be a number of days from 0 to {MAX_EXPIRY_DAYS}")
    return Cookie(name=name, key=raw["key"], expiry_days=float(days))


def _users(raw: object) -> dict[str, User]:
    usernames = raw.get("usernames") if isinstance(raw, dict) else None
    if not isinstance(usernames, dict) or not usernames:
        raise _Problem("no users: expected credentials: usernames: <name>: {password, roles}")
    users: dict[str, User] = {}
    for username, entry in usernames.items():
        if not isinstance(username, str) or not username.strip():
            raise _Problem(f"user names must be text, not {username!r}")
        key = username.lower()
        if key in users:
            raise _Problem(f"users {users[key].username!r} and {username!r} differ only in case")
        users[key] = _user(key, entry)
    return users


def _user(username: str, entry: object) -> User:
    if not isinstance(entry, dict):
        raise _Problem(f"user {username}: expected name, email, password and roles")
    password = entry.get("password")
    if not isinstance(password, str) or not _BCRYPT.match(password):
        # Never echo the value: it may be someone's plaintext password.
        raise _Problem(
            f"user {username}: the password must be a bcrypt hash ($2b$12$...), never the "
            f"password itself; make one with {MAKE_HASH}"
        )
    roles = entry.get("roles")
    if isinstance(roles, str):
        raise _Problem(f"user {username}: roles must be a list like [{roles}], not a string")
    if not isinstance(roles, list) or not roles:
        raise _Problem(f"user {username}: no roles; give roles: [viewer], [reviewer] or [admin]")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise _Problem(
            f"user {username}: unknown role {unknown[0]!r}; valid roles: {', '.join(ROLES)}"
        )
    name, email = entry.get("name", username), entry.get("email", "")
    if not isinstance(name, str) or not isinstance(email, str):
        raise _Problem(f"user {username}: name and email must be text")
    return User(username, name or username, email, password, tuple(roles))


class LoginThrottle:
    """Failed sign-ins per username: after MAX_FAILURES within WINDOW_S the username is
    locked until the oldest of them leaves the window. One per dashboard process, shared by
    all sessions (hence the lock). Times are ``time.monotonic()`` seconds unless given."""

    MAX_FAILURES = 5
    WINDOW_S = 15 * 60.0

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, username: str, now: float) -> deque[float]:
        times = self._failures.setdefault(username, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def locked_for(self, username: str, now: float | None = None) -> float:
        """Seconds until ``username`` may try again (0: not locked)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent(username.lower(), now)
            if len(times) < self.max_failures:
                return 0.0
            return times[-self.max_failures] + self.window_s - now

    def locked(self, now: float | None = None) -> set[str]:
        now = time.monotonic() if now is None else now
        with self._lock:
            names = list(self._failures)
        return {u for u in names if self.locked_for(u, now) > 0}

    def failed(self, username: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(username.lower(), now).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username.lower(), None)


@dataclass(frozen=True)
class CookieToken:
    """A remember-me cookie that verified: whose it is and when it was issued."""

    username: str
    issued_at: float  # epoch seconds
    sha256: str


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_token(creds: Credentials, token: str, now: float | None = None) -> CookieToken | None:
    """The cookie's content if it is signed with this file's key, unexpired and names a user
    of the file; None otherwise (the visitor then signs in with a password).

    The library's cookie carries only ``username`` and ``exp_date``; it was issued
    ``expiry_days`` before it expires.
    """
    now = time.time() if now is None else now
    try:
        payload = jwt.decode(token, creds.cookie.key, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return None
    username, exp = payload.get("username"), payload.get("exp_date")
    if not isinstance(username, str) or username not in creds.users:
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp <= now:
        return None
    issued = float(exp) - creds.cookie.expiry_days * 86_400
    return CookieToken(username=username, issued_at=issued, sha256=token_sha256(token))


def record_sign_out(store: Store, actor: Actor, token: str | None = None) -> None:
    """A person signed out: every cookie of theirs issued until now stops working."""
    detail = {"token_sha256": token_sha256(token)} if token else {}
    with store.transaction() as s:
        store.audit(s, actor.author, SIGN_OUT, "session", None, **detail)


def signed_out_since(store: Store, username: str, since: float) -> bool:
    """Whether ``username`` signed out at or after ``since`` (epoch seconds)."""
    after = datetime.fromtimestamp(since, UTC)
    author = Actor(name=username, role="viewer").author  # the role does not change the name
    with store.session() as s:
        hit = s.exec(
            select(AuditEvent.id)
            .where(
                AuditEvent.action == SIGN_OUT,
                AuditEvent.object_type == "session",
                AuditEvent.actor == author,
                AuditEvent.created_at >= after,
            )
            .limit(1)
        ).first()
    return hit is not None
