"""The database behind a URL: its SQLAlchemy engine, and its errors said in one line.

SQLite runs in WAL mode with a busy timeout and foreign keys; Postgres gets pgvector's search
breadth and pre-ping. On a SQLite file, SQLAlchemy (not the sqlite3 module) opens every
transaction: a read runs in one ``BEGIN`` (one snapshot for all its queries), and a
connection with the :data:`WRITE_OPTION` execution option begins with ``BEGIN IMMEDIATE``,
taking the write lock before its first statement (:class:`memp_core.store.Store` retries
that ``BEGIN``). Driver errors become :class:`~memp_core.errors.StoreError` subclasses that
name the database (:func:`translate`). Kept apart from the Store so that reading a URL and
building its engine do not need the repository's queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import create_engine

from memp_core.config import safe_url
from memp_core.errors import DatabaseLockedError, StoreError
from memp_core.models import HNSW_EF_SEARCH

WRITE_OPTION = "memp_write"  # execution option: this connection's transactions write


def sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL, or None for other databases and memory.

    SQLite URIs (``sqlite:///file:x.db?mode=ro&uri=true``) name their file after ``file:``.
    """
    if not url.startswith("sqlite:///"):
        return None
    rel, _, query = url[len("sqlite:///") :].partition("?")
    if rel.startswith("file:"):
        if "mode=memory" in query:
            return None
        rel = unquote(rel[len("file:") :])
        if rel.startswith("//"):  # file://host/path or file:///path: drop the authority
            rel = "/" + rel[2:].partition("/")[2]
    return None if rel in ("", ":memory:") else Path(rel)


DIALECTS = ("sqlite", "postgresql")


def _check_url(url: str) -> str:
    """The URL's dialect, or a StoreError saying in one line what is wrong with the URL."""
    try:
        dialect = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        raise StoreError(
            f"cannot read the database URL {safe_url(url)!r}: expected e.g. "
            "sqlite:///data/memp.db or postgresql+psycopg://user:password@host/db"
        ) from None
    if dialect not in DIALECTS:
        raise StoreError(
            f"database URL {safe_url(url)}: Memp Studio stores its data in SQLite or Postgres "
            f"(sqlite:///... or postgresql+psycopg://...), not {dialect!r}"
        )
    return dialect


def make_engine(url: str, busy_timeout_s: float = 10.0) -> Engine:
    """Build the engine; SQLite gets WAL, a busy timeout and foreign keys."""
    try:
        return _make_engine(url, busy_timeout_s)
    except NoSuchModuleError as exc:  # e.g. postgresql+nodriver://
        raise StoreError(f"database URL {safe_url(url)}: {exc}") from None
    except ImportError as exc:  # a dialect whose driver is not installed (postgresql://)
        raise StoreError(
            f"database URL {safe_url(url)} needs the driver {exc.name or exc}, which is not "
            "installed; for Postgres use postgresql+psycopg://"
        ) from None


def _make_engine(url: str, busy_timeout_s: float) -> Engine:
    _check_url(url)
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None and not path.parent.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of database {path}: {exc}") from exc
        kwargs: dict[str, Any] = {
            "connect_args": {"check_same_thread": False, "timeout": busy_timeout_s}
        }
        if path is None:
            kwargs["poolclass"] = StaticPool  # one shared in-memory database
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if path is not None:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            if path is not None:
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _begin)

        if path is not None:  # the in-memory database shares one connection: keep defaults

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                mode = conn.get_execution_options().get(WRITE_OPTION)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")

        return engine
    options = f"-c hnsw.ef_search={HNSW_EF_SEARCH}"  # pgvector's search breadth (models.py)
    return create_engine(url, pool_pre_ping=True, connect_args={"options": options})


class DeadlockError(DatabaseLockedError):
    """Postgres aborted this write to break a lock cycle with another writer; retry it."""


def is_lock(exc: OperationalError) -> bool:
    """Whether a driver error is a lock wait that ran out (worth retrying)."""
    text = str(exc.orig)
    return "locked" in text or "busy" in text


def translate(exc: SQLAlchemyError, url: str) -> StoreError:
    """Turn a driver error into a one-line message that names the database."""
    # Drivers write multi-line messages (psycopg adds hints on their own lines): one line.
    text = " ".join(str(getattr(exc, "orig", exc)).split()) or exc.__class__.__name__
    where = sqlite_path(url) or url.split("@")[-1]
    if "deadlock detected" in text:
        return DeadlockError(
            f"database {where}: another writer held locks this write needed, and Postgres "
            "aborted this one to break the cycle; nothing was saved, try again"
        )
    if "locked" in text or "busy" in text:
        return DatabaseLockedError(
            f"database {where} is locked by another process (waited for the busy timeout); "
            "try again when the other writer has finished"
        )
    if "unable to open" in text or "disk I/O" in text or "readonly" in text:
        return StoreError(f"cannot open database {where}: {text}")
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return StoreError(f"database {where} is not initialised ({text}); run `memp init`")
    return StoreError(f"database error on {where}: {text}")
