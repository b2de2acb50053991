"""The retrieval hot path's own connection to a SQLite store, and detached rows without the ORM.

:class:`Reader` holds one DBAPI connection per store for what every retrieval does: check the
index is in step (``max(id)``), read the best candidates' rows with their status checked on
the row (the gate: agents are served only what is approved *now*), and log the retrieval.
:class:`Rows` builds the model objects a Session would have loaded from those raw rows.
Through a Session each of those statements costs more than the vector search itself at 10k
procedures (``memp bench retrieval``).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.attributes import instance_state
from sqlmodel import SQLModel

from memp_core.database import sqlite_path, translate
from memp_core.models import Procedure, ProcedureRevision, Retrieval
from memp_core.store import Store

_READERS: weakref.WeakKeyDictionary[Store, Reader] = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


def _forget_connections() -> None:
    """In a forked child: SQLite connections do not survive a fork; each reader opens its
    own on next use (the parent's are left alone, never closed from here)."""
    for reader in list(_READERS.values()):
        reader._held = reader._conn = None  # (a new generation: versions start over)


os.register_at_fork(after_in_child=_forget_connections)


@functools.lru_cache(maxsize=64)
def _json_list(values: tuple[str, ...]) -> str:
    return json.dumps(list(values))


NEWEST = "SELECT max(id) FROM procedurerevision"
ELIGIBLE = "SELECT id FROM procedure WHERE current_revision_id IS NOT NULL"
STATUS_INDEX = "ix_procedure_status"  # models.Procedure.status, index=True (migration 0001)


M = TypeVar("M", bound=SQLModel)


class Rows(Generic[M]):
    """Detached model objects from raw DBAPI rows, each column decoded by its own SQLAlchemy
    type (JSON, aware datetimes, booleans): what a Session would load, without the ORM's
    per-statement bookkeeping."""

    def __init__(self, model: type[M], dialect: Dialect, alias: str) -> None:
        self._mapper = inspect(model)
        props = list(self._mapper.column_attrs)
        self.keys = [prop.key for prop in props]
        self.columns = ", ".join(f"{alias}.{prop.columns[0].name}" for prop in props)
        self.pk = self.keys.index(self._mapper.primary_key[0].key)
        decoders = [
            (prop.key, prop.columns[0].type.dialect_impl(dialect).result_processor(dialect, None))
            for prop in props
        ]
        self._decoders = {key: fn for key, fn in decoders if fn is not None}

    def __len__(self) -> int:
        return len(self.keys)

    def value(self, key: str, raw: Any) -> Any:
        decode = self._decoders.get(key)
        return raw if decode is None else decode(raw)

    def build(self, raw: Sequence[Any]) -> M:
        """The object as a session that has closed since would have loaded it (detached:
        every column loaded, nothing pending; ``make_transient_to_detached`` does the same
        and more, at three times the cost)."""
        obj: M = self._mapper.class_manager.new_instance()
        values = obj.__dict__
        values.update(zip(self.keys, raw, strict=True))
        for key, decode in self._decoders.items():
            values[key] = decode(values[key])
        instance_state(obj).key = self._mapper.identity_key_from_primary_key((raw[self.pk],))
        return obj


class Reader:
    """The retrieval hot path's own DBAPI connection to a SQLite store, one per store
    (:meth:`of`).

    A retrieval reads a handful of rows and logs one; through a Session each statement costs
    ~0.1 ms of ORM and pool bookkeeping, more than scoring 10k vectors. So one pooled
    connection of the store's engine (its pragmas: WAL, busy timeout) is held and runs these
    few fixed statements directly. Reading and logging on the same connection also keeps its
    page cache: SQLite drops a connection's cache whenever *another* connection commits. On a
    file each statement, or each :meth:`snapshot`, reads one snapshot. An in-memory database
    has a single connection that everyone shares (StaticPool): there each read borrows it
    like a session would, and logging goes through a session.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.isolated = sqlite_path(store.url) is not None
        self.dialect = store.engine.dialect
        self.procedure = Rows(Procedure, self.dialect, "p")
        self.revision = Rows(ProcedureRevision, self.dialect, "r")
        self.lock = threading.RLock()  # one statement (or snapshot) at a time
        self._held: Any = None  # the pool's connection wrapper, kept for the store's life
        self._conn: sqlite3.Connection | None = None  # its DBAPI connection (files only)
        self._statements: dict[bool, Statements] = {}  # by "filters statuses"
        self._generation = 0  # connections opened so far: data versions compare within one
        self._inserts: dict[type[SQLModel], tuple[str, list[tuple[str, Any]]]] = {}

    @classmethod
    def of(cls, store: Store) -> Reader:
        """The reader of ``store`` (created on first use, gone with the store)."""
        with _READERS_LOCK:
            reader = _READERS.get(store)
            if reader is None:
                reader = _READERS[store] = cls(store)
            return reader

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The DBAPI connection (autocommit: one statement, one snapshot), for this thread
        alone while in use; errors come out as StoreError."""
        with self.lock, self._translated():
            if not self.isolated:
                with self.store.engine.connect() as shared:
                    yield shared.connection.driver_connection
                return
            if self._held is None:
                self._held = self.store.engine.raw_connection()
                self._conn = self._held.driver_connection
                self._generation += 1
            yield self._conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, SQLAlchemyError) as exc:
            raise translate(exc, self.store.url) from exc

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One statement's rows, read in one snapshot; errors come out as StoreError. (The
        retrieval's hot path: no context manager once the connection is held.)"""
        with self.lock:
            if self._conn is None:
                with self.connection() as conn:
                    return conn.execute(sql, params).fetchall()
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise translate(exc, self.store.url) from exc

    def version(self) -> tuple[int, int] | None:
        """A token that stays equal while no *other* connection commits (SQLite's
        ``data_version``; this connection writes retrieval logs only, never what the index
        holds). None where it cannot tell (one shared in-memory connection)."""
        if not self.isolated:
            return None
        with self.lock:
            (data_version,) = self.rows("PRAGMA data_version")[0]
            return self._generation, int(data_version)

    def log(self, obj: Retrieval) -> int:
        """Write one retrieval's log in one statement, committed at once; its id. Each column
        is encoded by its own SQLAlchemy type, as a session would write it."""
        model = type(obj)
        if model not in self._inserts:
            mapper = inspect(model)
            props = [p for p in mapper.column_attrs if not p.columns[0].primary_key]
            columns = [p.columns[0] for p in props]
            sql = (
                f"INSERT INTO {mapper.local_table.name} "  # type: ignore[union-attr]
                f"({', '.join(c.name for c in columns)}) VALUES ({', '.join('?' for _ in props)})"
            )
            binds = [
                (p.key, c.type.dialect_impl(self.dialect).bind_processor(self.dialect))
                for p, c in zip(props, columns, strict=True)
            ]
            self._inserts[model] = (sql, binds)
        sql, binds = self._inserts[model]
        values = []
        for key, bind in binds:
            value = getattr(obj, key)
            values.append(value if bind is None else bind(value))
        with self.connection() as conn:
            return int(conn.execute(sql, values).lastrowid or 0)

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one read transaction: several statements, one snapshot."""
        with self.connection() as conn:  # (holds the lock until the snapshot ends)
            if not self.isolated:  # one shared connection: nothing to isolate from
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")  # a read: this ends the snapshot, nothing to keep

    def eligible(self, statuses: Sequence[str] | None) -> list[int]:
        """Ids of the procedures with a revision (and one of ``statuses``), ascending."""
        if statuses is None:
            return [pid for (pid,) in self.rows(ELIGIBLE + " ORDER BY id")]
        sql = ELIGIBLE + " AND status IN (SELECT value FROM json_each(?)) ORDER BY id"
        return [pid for (pid,) in self.rows(sql, (json.dumps(list(statuses)),))]

    def servable(
        self,
        candidates: Sequence[tuple[int, int]],
        statuses: Sequence[str] | None,
        limit: int,
        *,
        widen: bool = True,
    ) -> list[tuple[Procedure, ProcedureRevision]]:
        """The first ``limit`` candidates (procedure id, revision id; best first) whose
        procedure has one of ``statuses`` *now*, each with that revision. The answer comes
        from one statement, so the statuses checked and the rows returned are one snapshot.

        Usually the best ``limit`` candidates are all servable: one statement reads just
        their rows and checks the status on them. Only when some are not does a second
        statement search the whole window (unless not ``widen``: the first ``limit`` only)."""
        if not candidates or limit <= 0:
            return []
        wanted = None if statuses is None else _json_list(tuple(statuses))
        first = candidates[:limit]
        sql = self._statements.get(statuses is not None) or self._sql(statuses)
        raw = self.rows(sql.first, (json.dumps([rev for _, rev in first]), wanted))
        if widen and len(raw) < len(first) < len(candidates):
            raw = self.rows(sql.window, (json.dumps(candidates), wanted, limit))
        n = len(self.procedure)
        rank = {rev: i for i, (_, rev) in enumerate(candidates)}
        pairs = [(self.procedure.build(row[:n]), self.revision.build(row[n:])) for row in raw]
        return sorted(pairs, key=lambda pair: rank[pair[1].id or 0])

    def _sql(self, statuses: Sequence[str] | None) -> Statements:
        """The statements of :meth:`servable`, built on first use. In the window, statuses
        are read through the (status, id) index, which holds no embeddings: a few small pages
        instead of a row page per candidate. A database without that index still answers,
        slower."""
        columns = f"{self.procedure.columns}, {self.revision.columns}"
        if statuses is None:
            on_row, ok = "?2 IS NULL", "EXISTS (SELECT 1 FROM procedure AS s WHERE s.id = c.pid)"
        else:
            has = self.rows(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (STATUS_INDEX,)
            )
            hint = f"INDEXED BY {STATUS_INDEX} " if has else ""
            on_row = "p.status IN (SELECT value FROM json_each(?2))"
            ok = (
                f"EXISTS (SELECT 1 FROM procedure AS s {hint}WHERE s.status IN "
                "(SELECT value FROM json_each(?2)) AND s.id = c.pid)"
            )
        first = (
            f"SELECT {columns} FROM procedurerevision AS r JOIN procedure AS p "
            f"ON p.id = r.procedure_id WHERE r.id IN (SELECT value FROM json_each(?1)) AND {on_row}"
        )
        window = (
            "WITH c AS (SELECT key AS rank, json_extract(value, '$[0]') AS pid, "
            "json_extract(value, '$[1]') AS rid FROM json_each(?1)), "
            f"ok AS (SELECT rank, pid, rid FROM c WHERE {ok} "
            "ORDER BY rank LIMIT ?3) "
            f"SELECT {columns} FROM ok JOIN procedure AS p ON p.id = ok.pid "
            "JOIN procedurerevision AS r ON r.id = ok.rid AND r.procedure_id = p.id"
        )
        self._statements[statuses is not None] = Statements(first, window)
        return self._statements[statuses is not None]


@dataclass(frozen=True)
class Statements:
    first: str  # rows of the best candidates that are servable (status checked on the row)
    window: str  # rows of the first ``limit`` servable candidates of a whole window
