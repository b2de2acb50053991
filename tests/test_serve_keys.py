"""Agents' API keys: shown once, stored salted-hashed, scoped, revocable, made by admins only."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from memp_core.actor import Actor, os_user
from memp_core.agents.keys import create_key, list_keys, revoke_key, verify
from memp_core.cli import app
from memp_core.errors import AuthenticationError, ConfigError, PermissionDeniedError, ScopeError
from memp_core.models import SCOPES, ApiKey, AuditEvent, utcnow
from memp_core.store import Store

runner = CliRunner()
AGENT_SCOPES = ["procedures:read", "runs:write", "procedures:propose"]


def test_a_key_is_stored_only_as_a_salted_hash(store: Store) -> None:
    made = create_key(store, agent="bot", scopes=AGENT_SCOPES, actor=os_user())
    # memp_<hex prefix>_<secret>: the secret (token_urlsafe) may itself hold underscores
    secret = made.key.split("_", 2)[2]
    assert len(secret) >= 40
    with store.session() as s:
        row = s.exec(select(ApiKey)).one()
    stored = json.dumps(row.model_dump(), default=str)
    assert secret not in stored and made.key not in stored
    assert row.salt and row.key_hash and len(row.key_hash) == 64
    other = create_key(store, agent="bot", scopes=AGENT_SCOPES, actor=os_user())
    assert other.key != made.key
    who = verify(store, made.key)
    assert (who.agent, who.key_id, who.scopes) == ("bot", made.id, frozenset(AGENT_SCOPES))


def test_a_wrong_secret_behind_a_real_prefix_is_refused(store: Store) -> None:
    made = create_key(store, agent="bot", scopes=["procedures:read"], actor=os_user())
    forged = made.key[:-4] + ("AAAA" if not made.key.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError, match="unknown"):
        verify(store, forged)
    for junk in ("", None, "Bearer", "memp_zz_short", "x" * 5000):
        with pytest.raises(AuthenticationError):
            verify(store, junk)


def test_a_revoked_key_is_refused_at_once_and_the_revocation_is_audited(store: Store) -> None:
    made = create_key(store, agent="bot", scopes=["procedures:read"], actor=os_user())
    verify(store, made.key)
    revoke_key(store, made.id, actor=os_user())
    with pytest.raises(AuthenticationError, match="revoked"):
        verify(store, made.key)
    actions = [e.action for e in store.audit_events(object_type="api_key")]
    assert actions == ["key_revoked", "key_created"]
    assert all(e.actor == os_user().author for e in store.audit_events(object_type="api_key"))


def test_only_an_admin_person_creates_or_revokes_keys(store: Store) -> None:
    made = create_key(store, agent="bot", scopes=["procedures:read"], actor=os_user())
    for actor in (
        Actor("rita", "reviewer"),
        Actor("vic", "viewer"),
        Actor("bot", "admin", kind="agent"),
        Actor("demo", "admin", kind="system"),
    ):
        with pytest.raises(PermissionDeniedError):
            create_key(store, agent="x", scopes=["procedures:read"], actor=actor)
        with pytest.raises(PermissionDeniedError):
            revoke_key(store, made.id, actor=actor)
    assert len(list_keys(store)) == 1


def test_unknown_scope_is_refused_naming_every_valid_scope(store: Store) -> None:
    with pytest.raises(ConfigError) as err:
        create_key(store, agent="bot", scopes=["procedures:red"], actor=os_user())
    assert all(scope in str(err.value) for scope in SCOPES)


def test_review_scope_never_shares_a_key_with_writing_scopes(store: Store) -> None:
    for write in ("runs:write", "procedures:propose"):
        with pytest.raises(ConfigError, match="cannot be combined"):
            create_key(store, agent="x", scopes=["review:admin", write], actor=os_user())
    ok = create_key(store, agent="rita", scopes=["review:admin"], actor=os_user())
    who = verify(store, ok.key)
    assert who.review_actor.kind == "human" and who.actor.kind == "agent"
    assert who.review_actor.author == f"human:rita (key {ok.id})"
    agent = verify(store, create_key(store, agent="bot", scopes=AGENT_SCOPES, actor=os_user()).key)
    with pytest.raises(ScopeError, match="review:admin"):
        agent.review_actor  # noqa: B018


def test_last_used_is_written_at_most_once_a_minute(store: Store) -> None:
    made = create_key(store, agent="bot", scopes=["procedures:read"], actor=os_user())
    verify(store, made.key)
    first = list_keys(store)[0].last_used_at
    assert first is not None
    verify(store, made.key)
    assert list_keys(store)[0].last_used_at == first
    with store.transaction() as s:  # a minute passes
        row = s.get(ApiKey, made.id)
        assert row is not None
        row.last_used_at = utcnow() - timedelta(minutes=2)
        s.add(row)
    verify(store, made.key)
    assert list_keys(store)[0].last_used_at > first


def test_cli_creates_lists_and_revokes_keys(db_url: str) -> None:
    res = runner.invoke(
        app, ["keys", "create", "--agent", "bot", "--scopes", ",".join(AGENT_SCOPES), "--json"]
    )
    assert res.exit_code == 0, res.output
    made = json.loads(res.output)
    assert set(made) == {"key", "id", "agent", "scopes"}
    assert made["agent"] == "bot" and made["scopes"] == AGENT_SCOPES
    res = runner.invoke(app, ["keys", "list", "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert {"id", "agent", "scopes", "created_at", "last_used_at", "revoked"} <= set(row)
    assert made["key"] not in res.output and row["revoked"] is False
    res = runner.invoke(app, ["keys", "revoke", str(made["id"])])
    assert res.exit_code == 0, res.output
    assert json.loads(runner.invoke(app, ["keys", "list", "--json"]).output)[0]["revoked"] is True
    store = Store(db_url)
    with store.session() as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "key_created")).one()
    assert ev.actor == os_user().author


def test_cli_unknown_scope_is_one_line_listing_the_scopes(db_url: str) -> None:
    res = runner.invoke(app, ["keys", "create", "--agent", "bot", "--scopes", "procedures:red"])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    line = " ".join(res.output.split())
    assert all(scope in line for scope in SCOPES), res.output
