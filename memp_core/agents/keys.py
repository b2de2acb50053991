"""Agents' API keys: created by an admin, shown once, stored as a salted hash, revocable.

A key reads ``memp_<prefix>_<secret>``. The prefix (public, unique) finds the row; the
secret is checked against ``sha256(salt + secret)`` in constant time. The agent's identity
comes from the key alone: whatever name a request or a file claims is never used.

Scopes (:data:`memp_core.models.SCOPES`): ``procedures:read`` (retrieve, list, read),
``runs:write`` (report runs, give feedback), ``procedures:propose`` (propose procedures that
wait for review) and ``review:admin`` (approve, reject, roll back, pin, deprecate). A
``review:admin`` key belongs to a person's tooling: its review actions act as that person
(``human:<name> (key N)``), never as an agent, and it cannot also report runs or propose, so
no key can both write memory and approve what it wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from memp_core.actor import Actor
from memp_core.errors import (
    AuthenticationError,
    ConfigError,
    DatabaseLockedError,
    NotFoundError,
    ScopeError,
)
from memp_core.models import SCOPES, ApiKey, utcnow
from memp_core.store import Store

KEY_PREFIX = "memp"
REVIEW_SCOPE = "review:admin"
WRITE_SCOPES = frozenset({"runs:write", "procedures:propose"})
AGENT_SCOPES = ("procedures:read", "runs:write", "procedures:propose")  # an agent's usual key
# last_used_at is written at most this often per key: a read stays a read.
LAST_USED_EVERY = timedelta(minutes=1)
_KEY_RE = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{20,100}})$")
_AGENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class Identity:
    """Who calls: the key's id, its agent and its scopes (from the database, never a request)."""

    key_id: int
    agent: str
    scopes: frozenset[str]

    @property
    def actor(self) -> Actor:
        """The agent as an actor: it may write what waits for review, never approve."""
        role = "reviewer" if self.scopes & WRITE_SCOPES else "viewer"
        return Actor(name=self.agent, role=role, kind="agent")

    @property
    def review_actor(self) -> Actor:
        """The person behind a ``review:admin`` key, audited as ``human:<name> (key N)``."""
        self.require(REVIEW_SCOPE)
        return Actor(name=f"{self.agent} (key {self.key_id})", role="reviewer", kind="human")

    @property
    def author(self) -> str:
        return self.actor.author

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ScopeError(
                f"the key of {self.agent} (key {self.key_id}) lacks the scope {scope!r}; "
                f"it has: {', '.join(sorted(self.scopes)) or 'none'}"
            )


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``key`` is shown this once and never stored."""

    key: str
    id: int
    agent: str
    scopes: list[str]


@dataclass(frozen=True)
class KeyInfo:
    """A key as `memp keys list` shows it (no secret, no hash)."""

    id: int
    agent: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    created_by: str


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes in :data:`SCOPES` order; a ConfigError names an unknown one and lists all."""
    wanted = [s.strip() for s in scopes if s.strip()]
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise ConfigError(f"unknown scope {unknown[0]!r}; valid scopes: {', '.join(SCOPES)}")
    if not wanted:
        raise ConfigError(f"a key needs at least one scope; valid scopes: {', '.join(SCOPES)}")
    if REVIEW_SCOPE in wanted and WRITE_SCOPES & set(wanted):
        raise ConfigError(
            f"{REVIEW_SCOPE} is for a person's review tooling and cannot be combined with "
            f"{', '.join(sorted(WRITE_SCOPES & set(wanted)))}: no key may both write memory "
            "and approve it; create two keys"
        )
    return [s for s in SCOPES if s in wanted]


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def create_key(store: Store, *, agent: str, scopes: Iterable[str], actor: Actor) -> CreatedKey:
    """A new key for ``agent`` (admins only). The returned ``key`` is the only copy."""
    actor.require_person("create API keys", "admin")
    agent = agent.strip()
    if not _AGENT_RE.match(agent):
        raise ConfigError(
            f"agent name {agent!r}: use 1-64 letters, digits, '.', '_', '@' or '-' "
            "(it names the agent in the audit log)"
        )
    ordered = check_scopes(scopes)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    with store.transaction() as s:
        prefix = secrets.token_hex(6)
        while s.exec(select(ApiKey.id).where(ApiKey.prefix == prefix)).first() is not None:
            prefix = secrets.token_hex(6)  # 48 bits: a clash is rare, never fatal
        row = ApiKey(
            agent=agent, scopes=ordered, prefix=prefix, salt=salt,
            key_hash=_hash(salt, secret), created_by=actor.author,
        )  # fmt: skip
        s.add(row)
        s.flush()
        store.audit(s, actor.author, "key_created", "api_key", row.id, agent=agent,
                    scopes=ordered)  # fmt: skip
        key_id = int(row.id or 0)
    return CreatedKey(f"{KEY_PREFIX}_{prefix}_{secret}", key_id, agent, ordered)


def verify(store: Store, raw_key: str | None) -> Identity:
    """The identity behind ``raw_key``; AuthenticationError for none, unknown or revoked."""
    if not raw_key or not raw_key.strip():
        raise AuthenticationError(
            "no API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
            "(an admin creates one with `memp keys create`)"
        )
    m = _KEY_RE.match(raw_key.strip())
    if m is None:
        raise AuthenticationError("not a Memp API key (expected memp_<prefix>_<secret>)")
    prefix, secret = m.groups()
    with store.session() as s:
        row = s.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(row.salt, secret)):
        raise AuthenticationError("unknown API key")
    if row.revoked_at is not None:
        raise AuthenticationError(f"API key {row.id} of {row.agent} was revoked")
    key_id = int(row.id or 0)
    now = utcnow()
    if row.last_used_at is None or now - _aware(row.last_used_at) >= LAST_USED_EVERY:
        _stamp(store, key_id, now)
    return Identity(key_id, row.agent, frozenset(row.scopes))


def _stamp(store: Store, key_id: int, now: datetime) -> None:
    """Record the key's use. A database busy with other writers skips the stamp (the next
    request a minute on tries again) rather than refuse a request over a usage stamp."""
    try:
        with store.transaction(retries=0) as s:
            fresh = s.get(ApiKey, key_id)
            if fresh is not None:
                fresh.last_used_at = now
                s.add(fresh)
    except DatabaseLockedError:
        return


def _aware(when: datetime) -> datetime:
    """SQLite returns naive datetimes for what was stored in UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def list_keys(store: Store) -> list[KeyInfo]:
    with store.session() as s:
        rows = s.exec(select(ApiKey).order_by(col(ApiKey.id))).all()
    return [
        KeyInfo(
            int(r.id or 0),
            r.agent,
            list(r.scopes),
            r.created_at,
            r.last_used_at,
            r.revoked_at is not None,
            r.created_by,
        )  # fmt: skip
        for r in rows
    ]


def revoke_key(store: Store, key_id: int, *, actor: Actor) -> KeyInfo:
    """Revoke a key at once (admins only); revoking a revoked key changes nothing."""
    actor.require_person("revoke API keys", "admin")
    with store.transaction() as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise NotFoundError(f"API key {key_id} not found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            s.add(row)
            store.audit(s, actor.author, "key_revoked", "api_key", key_id, agent=row.agent)
        info = KeyInfo(key_id, row.agent, list(row.scopes), row.created_at, row.last_used_at,
                       True, row.created_by)  # fmt: skip
    return info
