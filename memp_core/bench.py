"""`memp bench retrieval`: top-5 retrieval and one-revision updates as memory grows.

- SQLite (the default section): the served path (``ProceduralMemory.retrieve``: in-memory
  index, statuses checked in the database, rows loaded) against a bare numpy matrix product
  over the same float32 vectors (the brute-force bound); an incremental update against
  rebuilding the whole index per update, as the paper's reference code does. Random unit
  vectors: brute force does not care how the data looks.
- Postgres (``--postgres``): the same served path, which there runs in the database through
  pgvector's HNSW index, against the same numpy bound, plus the bare SQL statement, the
  index build time and HNSW recall@5 against exact search. HNSW is an approximate graph
  search and its recall depends on the data: uniform random 384-d vectors have no
  neighbourhoods to walk (every point is about equally far from every other) and are its
  worst case, so this section uses embedding-like vectors by default (``LATENT_DIM``
  latent factors plus noise: nearest neighbours clearly closer than random pairs, as with
  sentence embeddings); ``--pg-data uniform`` measures the worst case.

Thread settings: the bound and the served path are timed under one BLAS/OpenMP thread each
(threadpoolctl), interleaved query by query. With the default thread pool the bare matrix
product at 10k paid more for waking threads than it saved (its median was above the 100k
one), which made the served path look closer to the bound than it is. Two figures show the
path as agents call it: ``retrieve_logged_ms`` (the same search with the retrieval logged)
and ``end_to_end_ms`` (the packaged MiniLM embeds the query text, then search and log; the
process's default threads, as a server runs).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, text
from threadpoolctl import threadpool_limits

from memp_core.embeddings import Embedder, get_embedder, to_bytes
from memp_core.errors import ConfigError
from memp_core.index import ProcedureIndex, top_rows
from memp_core.landing import append_revision
from memp_core.memory import ProceduralMemory
from memp_core.models import HNSW_EF_CONSTRUCTION, HNSW_M, Procedure, ProcedureRevision, utcnow
from memp_core.pgsearch import EF_SEARCH
from memp_core.store import Store

BENCH_DIM = 384  # all-MiniLM-L6-v2's dimension
LATENT_DIM = 32  # intrinsic dimension of the embedding-like vectors
NOISE = 0.5  # isotropic noise next to the latent signal (relative energy)
HNSW_INDEX = "ix_procedure_embedding_hnsw"
SHARED_BUFFERS = "1GB"  # of the throw-away benchmark server
BENCH_THREADS = 1  # BLAS/OpenMP threads while the bound and the served path are timed
E2E_QUERIES = 30  # end-to-end queries per size (MiniLM costs ~25 ms each)
TURNS = ["retrieve_ms", "retrieve_logged_ms", "bound_ms"]
OBJECTS = ["mug", "apple", "egg", "cloth", "bowl", "pillow", "knife"]
PLACES = ["cabinet", "drawer", "fridge", "shelf", "desk"]


class FixedEmbedder(Embedder):
    """Returns the query vectors of the benchmark in turn (no model: we time search only)."""

    name = "bench-random"
    dimension = BENCH_DIM

    def __init__(self) -> None:
        self.next: np.ndarray = np.zeros(BENCH_DIM, dtype=np.float32)

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.next.tolist() for _ in texts]

    def embed_array(self, texts: list[str]) -> np.ndarray:
        return np.tile(self.next, (len(texts), 1))


def run_retrieval_bench(sizes: list[int], repeats: int) -> dict[str, object]:
    """Medians in milliseconds, each size on its own fresh SQLite store.

    On a shared machine the background load drifts, so comparisons are interleaved: each
    query times the served path and the bare bound back to back (alternating which goes
    first), and one-revision updates take turns across all sizes instead of running size
    after size.
    """
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        mems: dict[int, tuple[ProceduralMemory, np.ndarray]] = {}
        for n in sizes:
            store = Store(f"sqlite:///{Path(tmp) / f'bench-{n}.db'}")
            matrix = unit_rows(rng, n)
            populate(store, matrix)
            mem = ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic")
            mem.index  # noqa: B018  (first sync loads every revision once; not timed)
            mems[n] = (mem, matrix)
        queries = {n: unit_rows(rng, repeats) for n in sizes}
        with threadpool_limits(limits=BENCH_THREADS):
            rows = {n: time_retrieval(mem, m, queries[n]) for n, (mem, m) in mems.items()}
        hits = sum(h for _, h in rows.values())
        e2e = time_end_to_end([mem.store for mem, _ in mems.values()], min(repeats, E2E_QUERIES))
        for n, ms in zip(sizes, e2e, strict=True):
            rows[n][0]["end_to_end_ms"] = ms
        for name, incremental, rounds in (
            ("update_ms", True, repeats),
            ("rebuild_ms", False, max(3, repeats // 10)),
        ):
            times = _round_robin(mems, rng, rounds, incremental=incremental)
            for n in sizes:
                rows[n][0][name] = _ms(times[n])
        for mem, _ in mems.values():
            mem.store.dispose()
    total = 5 * repeats * len(sizes)
    return {"sizes": {n: row for n, (row, _) in rows.items()},
            "recall_at_5": round(hits / total, 4) if total else None,
            "threads": BENCH_THREADS}  # fmt: skip


def time_retrieval(
    mem: ProceduralMemory, matrix: np.ndarray, queries: np.ndarray
) -> tuple[dict[str, float], int]:
    """Top-5 through ProceduralMemory.retrieve (unlogged, then logged as agents call it) vs
    ``matrix @ q`` + argpartition, per query, the three back to back in rotating order;
    also how many of the served top-5 are in the exact top-5."""
    embedder = mem.embedder
    assert isinstance(embedder, FixedEmbedder)
    times: dict[str, list[float]] = {"retrieve_ms": [], "retrieve_logged_ms": [], "bound_ms": []}
    hits = 0
    for i, q in enumerate(queries):
        embedder.next = q
        for turn in TURNS[i % 3 :] + TURNS[: i % 3]:
            t0 = time.perf_counter()
            if turn == "bound_ms":
                exact = top_rows(matrix @ q, 5)
            elif turn == "retrieve_ms":
                got = mem.retrieve("bench", k=5, log=False)
            else:
                mem.retrieve("bench", k=5, log=True)
            times[turn].append(time.perf_counter() - t0)
        hits += len({it.procedure.id for it in got} & {int(j) + 1 for j in exact})
    row = {name: _ms(t) for name, t in times.items()}
    row["ratio"] = round(row["retrieve_ms"] / row["bound_ms"], 3) if row["bound_ms"] else 0.0
    return row, hits


def time_end_to_end(stores: list[Store], queries: int) -> list[float | None]:
    """Median ms per store of ``retrieve(text, k=5)`` with the packaged MiniLM embedding a
    different task text each time and the retrieval logged; the stores take turns per query.
    None for every store when the model cannot be loaded (the rest of the bench stands)."""
    try:
        embedder = get_embedder()
    except ConfigError:
        return [None for _ in stores]
    mems = [ProceduralMemory(st, embedder=embedder, backend="heuristic") for st in stores]
    embedder.embed_array(["warm up"])  # the first call pays for lazy initialisation
    times: list[list[float]] = [[] for _ in mems]
    for i in range(queries):
        text = f"put a {OBJECTS[i % len(OBJECTS)]} {i} in the {PLACES[i % len(PLACES)]}"
        for turn in range(len(mems)):
            j = (i + turn) % len(mems)
            t0 = time.perf_counter()
            mems[j].retrieve(text, k=5, log=True)
            times[j].append(time.perf_counter() - t0)
    return [_ms(t) if t else None for t in times]


def _round_robin(
    mems: dict[int, tuple[ProceduralMemory, np.ndarray]],
    rng: np.random.Generator,
    rounds: int,
    *,
    incremental: bool,
) -> dict[int, list[float]]:
    sizes = list(mems)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for r in range(rounds):
        for n in sizes[r % len(sizes) :] + sizes[: r % len(sizes)]:
            times[n].append(timed_update(mems[n][0], n, rng, incremental=incremental))
    return times


def timed_update(
    mem: ProceduralMemory, n: int, rng: np.random.Generator, *, incremental: bool
) -> float:
    """Append one revision to a random procedure and make it searchable: incrementally
    (ours: on Postgres the HNSW insert happens in the same statement), or by rebuilding the
    index from every row (the reference code's way; SQLite only)."""
    pid = int(rng.integers(1, n + 1))
    vec = unit_rows(rng, 1)[0]
    t0 = time.perf_counter()
    with mem.store.transaction() as s:
        proc = s.get(Procedure, pid)
        rev = ProcedureRevision(procedure_id=pid, script="1. bench.", embedding=to_bytes(vec))
        append_revision(s, pid, rev, expected_current=proc.current_revision_id if proc else None)
    if mem.store.dialect != "postgresql":
        if incremental:
            mem.index.sync()
        else:
            ProcedureIndex(mem.store, BENCH_DIM).sync()
    return time.perf_counter() - t0


def populate(store: Store, matrix: np.ndarray) -> None:
    """n approved procedures, each with one revision holding a vector (bulk inserts)."""
    n = matrix.shape[0]
    now = utcnow()
    blobs = [to_bytes(v) for v in matrix]
    procs = [
        {"id": i + 1, "key": f"bench-{i + 1}", "title": f"bench {i + 1}", "task_type": "put",
         "status": "approved", "current_revision_id": i + 1, "use_count": 0,
         "success_count": 0, "pinned": False, "created_at": now, "updated_at": now,
         "embedding": blobs[i]}
        for i in range(n)
    ]  # fmt: skip
    revs = [
        {"id": i + 1, "procedure_id": i + 1, "kind": "script", "task_text": "", "script": "",
         "steps": [], "origin": "build", "author": "bench", "model": "bench", "rationale": "",
         "evidence_trajectory_ids": [], "facts": {}, "embedding": blobs[i], "created_at": now}
        for i in range(n)
    ]  # fmt: skip
    with store.transaction() as s:
        for i in range(0, n, 5000):
            s.execute(insert(Procedure), procs[i : i + 5000])
            s.execute(insert(ProcedureRevision), revs[i : i + 5000])


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, BENCH_DIM)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def embedding_like(rng: np.random.Generator, basis: np.ndarray, n: int) -> np.ndarray:
    """Unit vectors near a LATENT_DIM-dim subspace (``basis``), like sentence embeddings."""
    signal = rng.standard_normal((n, LATENT_DIM)).astype(np.float32) @ basis
    noise = rng.standard_normal((n, BENCH_DIM)).astype(np.float32) * np.sqrt(NOISE * LATENT_DIM)
    m = signal + noise
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _ms(seconds: list[float]) -> float:
    return round(float(np.median(seconds)) * 1000, 4)


# -- Postgres ------------------------------------------------------------------------------


def run_postgres_bench(
    sizes: list[int],
    repeats: int,
    *,
    url: str | None = None,
    ef_search: int = EF_SEARCH,
    data: str = "embedding-like",
) -> dict[str, object]:
    """Each size in its own fresh database of ``url``'s server (default: a throw-away
    server from the pgserver package). Times are medians in milliseconds."""
    rng = np.random.default_rng(1)
    basis = rng.standard_normal((LATENT_DIM, BENCH_DIM)).astype(np.float32)

    def vectors(n: int) -> np.ndarray:
        return embedding_like(rng, basis, n) if data == "embedding-like" else unit_rows(rng, n)

    out: dict[int, dict[str, float]] = {}
    hits = 0
    with _server(url) as base:
        mems: dict[int, tuple[ProceduralMemory, np.ndarray]] = {}
        for n in sizes:
            store = Store(_fresh_database(base, f"memp_bench_{n}"))
            matrix = vectors(n)
            build_s = pg_populate(store, matrix)
            mem = ProceduralMemory(store, embedder=FixedEmbedder(), backend="heuristic")
            mem.ef_search = ef_search
            mems[n] = (mem, matrix)
            with threadpool_limits(limits=BENCH_THREADS):
                row, got = time_retrieval(mem, matrix, vectors(repeats))
            row["sql_ms"] = _time_sql(store, vectors(min(repeats, 30)), ef_search)
            row["recall_at_5"] = round(got / (5 * repeats), 4)
            row["build_s"] = round(build_s, 2)
            out[n], hits = row, hits + got
        times = _round_robin(mems, rng, repeats, incremental=True)
        for n, (mem, _) in mems.items():
            out[n]["update_ms"] = _ms(times[n])
            mem.store.dispose()
    total = 5 * repeats * len(sizes)
    return {
        "sizes": out,
        "recall_at_5": round(hits / total, 4) if total else None,
        "ef_search": ef_search, "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
        "data": data,
    }  # fmt: skip


PROCEDURE_COLUMNS = (
    ("id", "int4"), ("key", "varchar"), ("title", "varchar"), ("task_type", "varchar"),
    ("status", "varchar"), ("current_revision_id", "int4"), ("use_count", "int4"),
    ("success_count", "int4"), ("pinned", "bool"), ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"), ("embedding", "vector"),
)  # fmt: skip
REVISION_COLUMNS = (
    ("id", "int4"), ("procedure_id", "int4"), ("kind", "varchar"), ("task_text", "varchar"),
    ("script", "varchar"), ("steps", "json"), ("origin", "varchar"), ("author", "varchar"),
    ("model", "varchar"), ("rationale", "varchar"), ("evidence_trajectory_ids", "json"),
    ("facts", "json"), ("embedding", "bytea"), ("created_at", "timestamptz"),
)  # fmt: skip


def pg_populate(store: Store, matrix: np.ndarray) -> float:
    """Bulk-load like :func:`populate` with binary COPY, then build the HNSW index in one
    go (inserting row by row into a live HNSW index is far slower); returns the build's
    seconds. The sequences move past the loaded ids, so appended revisions get new ones."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Json

    n, now = matrix.shape[0], utcnow()
    procs = (
        (i + 1, f"bench-{i + 1}", f"bench {i + 1}", "put", "approved", i + 1, 0, 0, False,
         now, now, matrix[i])
        for i in range(n)
    )  # fmt: skip
    revs = (
        (i + 1, i + 1, "script", "", "", Json([]), "build", "bench", "bench", "", Json([]),
         Json({}), to_bytes(matrix[i]), now)
        for i in range(n)
    )  # fmt: skip
    dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)  # a private connection: the pool's stay as SQLAlchemy expects
        conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
        _copy(conn, "procedure", PROCEDURE_COLUMNS, procs)
        _copy(conn, "procedurerevision", REVISION_COLUMNS, revs)
        for table in ("procedure", "procedurerevision"):
            conn.execute(f"SELECT setval('{table}_id_seq', {n})")
        conn.execute("SET maintenance_work_mem = '1GB'")
        t0 = time.perf_counter()
        conn.execute(
            f"CREATE INDEX {HNSW_INDEX} ON procedure USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        )
        build_s = time.perf_counter() - t0
        for table in ("procedure", "procedurerevision"):  # now, not by autovacuum mid-timing
            conn.execute(f"VACUUM (ANALYZE) {table}")
    return build_s


def _copy(
    conn: Any, table: str, columns: tuple[tuple[str, str], ...], rows: Iterable[tuple[Any, ...]]
) -> None:
    names = ", ".join(name for name, _ in columns)
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in columns])
            for row in rows:
                copy.write_row(row)


def _time_sql(store: Store, queries: np.ndarray, ef_search: int) -> float:
    """The bare statement (ids only, no filter, nothing loaded): the floor of the served path."""
    times = []
    with store.engine.connect() as conn:
        conn.execute(text("SELECT set_config('hnsw.ef_search', :v, false)"), {"v": str(ef_search)})
        for q in queries:
            literal = "[" + ",".join(map(repr, q.tolist())) + "]"
            t0 = time.perf_counter()
            conn.execute(
                text("SELECT id FROM procedure ORDER BY embedding <=> CAST(:q AS vector) LIMIT 5"),
                {"q": literal},
            ).all()
            times.append(time.perf_counter() - t0)
    return _ms(times)


@contextmanager
def _server(url: str | None) -> Iterator[str]:
    """The base URL of a Postgres server: ``url`` itself (as configured), or a throw-away
    pgserver with ``SHARED_BUFFERS``."""
    if url is not None:
        yield url
        return
    try:
        import pgserver
    except ImportError as exc:
        raise ConfigError("--postgres needs --pg-url or the pgserver package") from exc
    with tempfile.TemporaryDirectory(prefix="memp-pgbench-") as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        # pgvector's advice: room for the index in shared buffers (the default is 128 MB;
        # the 100k index is about 200 MB). Takes effect on restart.
        server.psql(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}';")
        server.cleanup()
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            socket_dir = server.get_uri().split("host=", 1)[1]
            yield f"postgresql+psycopg://postgres:@/postgres?host={socket_dir}"
        finally:
            server.cleanup()


def _fresh_database(base: str, name: str) -> str:
    """Drop and create database ``name`` on ``base``'s server; its URL."""
    store = Store(base, create=False)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    store.dispose()
    return str(store.engine.url.set(database=name).render_as_string(hide_password=False))
