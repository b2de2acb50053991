"""Finding near-duplicate procedures, and filing each cluster for review (`memp dedupe`).

Many agents learning at once write near-identical procedures. Two live procedures (draft,
pending review or approved) are near-duplicates when they have the same task type and their
current revisions are near-identical by **both** measures, each at least the threshold
(:data:`DEFAULT_THRESHOLD`):

- the cosine of the revisions' embeddings (the retrieval text: the task, then the script);
- a text similarity, rapidfuzz's ``fuzz.ratio`` (normalised Levenshtein, 0..1) of the task
  and the content (script, then any verbatim steps), whitespace collapsed and lowercased, so
  a doubled space or a trailing newline changes nothing.

Both, because each alone is fooled: the embedding of a short task hardly moves when a
script's steps change, and scripts distilled from runs share their wording (``find
<object>``, ``take <object>``) across tasks about different objects.

And never two procedures whose key facts conflict (one says the object is a bread, the
other a bowl; or two places, or two tools): the build keeps one procedure per task type,
object and place on purpose, and a merge would serve the bread's procedure for the bowl's
task. Scripts distilled for two objects can be as alike as a copy: on the demo database
"put a cool bread in countertop" and "put a cool bowl in countertop" score 0.93 cosine and
0.90 text. Facts come from the revision (what the build extracted), else from its task text.

With that rule, 0.9 keeps the simulator's distinct procedures apart and finds copies built
separately from edited logs (0.95 to 0.99) and re-imported copies (1.0); see
benchmarks/bench_dedupe.py for the figures.

Clusters: the procedures are taken in keeping order (:func:`keep_order`: approved before
pending before draft, then the most uses, then the first stored); each one not yet in a cluster
keeps every later one that is a near-duplicate of it. Every member of a cluster is thus
near-identical to the procedure it would be merged into, and a cluster's ``similarity`` is
its weakest member's (the lower of its two measures). Filing is :mod:`memp_core.merge`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from rapidfuzz import fuzz
from sqlmodel import col, select

from memp_core.actor import Actor
from memp_core.build import retrieval_text
from memp_core.embeddings import Embedder, from_bytes, get_embedder
from memp_core.errors import ConflictError, MempError
from memp_core.facts import extract_facts
from memp_core.lineage import revision_text
from memp_core.merge import (
    LIVE,
    Folds,
    Member,
    file_proposal,
    merge_records,
    require_proposer,
)
from memp_core.models import Procedure, ProcedureRevision, Status
from memp_core.store import Store

DEFAULT_THRESHOLD = 0.9
FACTS = ("object", "receptacle", "tool")  # the build's grouping facts besides the task type
BLOCK = 1024  # rows of the cosine matrix computed at once (memory: BLOCK x n floats)
_RANK = {Status.approved.value: 0, Status.pending_review.value: 1, Status.draft.value: 2}

State = Literal["filed", "pending", "declined", "waiting", "not_filed"]


@dataclass(frozen=True)
class Candidate:
    """A live procedure at its current revision, as dedupe compares it."""

    procedure: Procedure
    revision_id: int
    text: str  # normalised task + content
    vector: np.ndarray | None  # unit vector of the current revision, None: not comparable
    facts: dict[str, str] = field(default_factory=dict)  # object, receptacle, tool if known


@dataclass(frozen=True)
class Cluster(Folds):
    task_type: str
    kept_id: int
    members: tuple[Member, ...]  # the procedures it would fold in, at their revisions
    kept_revision_id: int
    similarity: float  # the weakest member's min(cosine, text)
    cosine: float  # the lowest member cosine
    text_similarity: float  # the lowest member text similarity


@dataclass(frozen=True)
class Filing:
    """What became of a cluster: ``filed`` now, already ``pending``, ``declined`` (the same
    proposal was turned down or dropped before: not filed twice), ``waiting`` (one of its
    procedures has another proposal pending), ``not_filed`` (a dry run)."""

    cluster: Cluster
    state: State
    revision_id: int | None = None
    note: str = ""


@dataclass(frozen=True)
class DedupeReport:
    threshold: float
    live: int  # live procedures compared
    filings: list[Filing] = field(default_factory=list)

    @property
    def filed(self) -> int:
        return sum(f.state == "filed" for f in self.filings)


def keep_order(p: Procedure) -> tuple[int, int, int]:
    """Which procedure of a cluster is kept: approved over pending over draft, then the most
    uses, then the one stored first (the lowest id: an imported file's creation date is only
    its claim)."""
    return (_RANK.get(p.status, 3), -p.use_count, int(p.id or 0))


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def candidates(store: Store, embedder: Embedder | None = None) -> list[Candidate]:
    """Every live procedure with its current revision; missing embeddings are computed."""
    with store.session() as s:
        rows = s.exec(
            select(Procedure, ProcedureRevision)
            .join(
                ProcedureRevision, col(ProcedureRevision.id) == col(Procedure.current_revision_id)
            )
            .where(col(Procedure.status).in_(LIVE))
            .order_by(col(Procedure.id))
        ).all()
    vectors = [_unit(rev.embedding) for _, rev in rows]
    todo = [i for i, v in enumerate(vectors) if v is None]
    if todo:
        embedder = embedder or get_embedder()
        texts = [retrieval_text(rows[i][1].kind, rows[i][1].task_text, rows[i][1].script)
                 for i in todo]  # fmt: skip
        for i, vec in zip(todo, embedder.embed_array(texts), strict=True):
            vectors[i] = _unit(np.asarray(vec, dtype=np.float32).tobytes())
    return [
        Candidate(
            p,
            int(rev.id or 0),
            normalise(f"{rev.task_text}\n{revision_text(rev)}"),
            v,
            key_facts(rev),
        )  # fmt: skip
        for (p, rev), v in zip(rows, vectors, strict=True)
    ]


def key_facts(rev: ProcedureRevision) -> dict[str, str]:
    """The revision's object, receptacle and tool: as the build stored them, else read from
    its task text."""
    stored = rev.facts if isinstance(rev.facts, dict) else {}
    facts = {k: str(stored[k]) for k in FACTS if stored.get(k)}
    if not facts and rev.task_text:
        facts = {k: v for k, v in extract_facts(rev.task_text).as_dict().items() if k in FACTS}
    return facts


def conflict(a: dict[str, str], b: dict[str, str]) -> bool:
    """True when both name a fact and name it differently (a bread against a bowl)."""
    return any(k in b and b[k] != v for k, v in a.items())


def find_clusters(
    store: Store, *, threshold: float = DEFAULT_THRESHOLD, embedder: Embedder | None = None
) -> tuple[list[Cluster], int]:
    """The clusters of near-duplicate live procedures, and how many live ones were compared."""
    if not 0 < threshold <= 1:
        raise MempError(f"the threshold must be in (0, 1], got {threshold}")
    cands = candidates(store, embedder)
    by_type: dict[str, list[Candidate]] = {}
    for c in cands:
        by_type.setdefault(c.procedure.task_type, []).append(c)
    clusters: list[Cluster] = []
    for task_type, group in sorted(by_type.items()):
        clusters += _cluster(task_type, sorted(group, key=lambda c: keep_order(c.procedure)),
                             threshold)  # fmt: skip
    return clusters, len(cands)


def _cluster(task_type: str, group: list[Candidate], threshold: float) -> list[Cluster]:
    pairs = _near_pairs(group, threshold)
    taken: set[int] = set()
    out: list[Cluster] = []
    for i, kept in enumerate(group):
        if i in taken:
            continue
        mine = [
            (j, cos, txt) for j, (cos, txt) in sorted(pairs.get(i, {}).items()) if j not in taken
        ]
        if not mine:
            continue
        taken.update([i, *(j for j, _, _ in mine)])
        cos, txt = min(m[1] for m in mine), min(m[2] for m in mine)
        out.append(Cluster(
            task_type=task_type, kept_id=int(kept.procedure.id or 0),
            members=tuple(Member(int(group[j].procedure.id or 0), group[j].revision_id)
                          for j, _, _ in mine),
            kept_revision_id=kept.revision_id,
            similarity=min(min(c, t) for _, c, t in mine), cosine=cos, text_similarity=txt,
        ))  # fmt: skip
    return out


def _near_pairs(
    group: list[Candidate], threshold: float
) -> dict[int, dict[int, tuple[float, float]]]:
    """``i -> {j: (cosine, text)}`` for i < j (keeping order) passing both measures."""
    idx = [i for i, c in enumerate(group) if c.vector is not None]
    out: dict[int, dict[int, tuple[float, float]]] = {}
    if len(idx) < 2:
        return out
    dims = {len(group[i].vector) for i in idx}  # type: ignore[arg-type]
    for dim in dims:  # revisions embedded by models of different sizes are not compared
        ids = [i for i in idx if len(group[i].vector) == dim]  # type: ignore[arg-type]
        m = np.stack([group[i].vector for i in ids])  # type: ignore[misc]
        for start in range(0, len(ids), BLOCK):
            sims = m[start : start + BLOCK] @ m.T
            for a, b in zip(*np.nonzero(sims >= threshold), strict=True):
                i, j = ids[start + int(a)], ids[int(b)]
                if i >= j or conflict(group[i].facts, group[j].facts):
                    continue
                txt = fuzz.ratio(group[i].text, group[j].text, score_cutoff=threshold * 100) / 100
                if txt >= threshold:
                    out.setdefault(i, {})[j] = (min(1.0, float(sims[a, b])), txt)
    return out


def _unit(blob: bytes | None) -> np.ndarray | None:
    if not blob or len(blob) % 4:
        return None
    vec = from_bytes(blob).astype(np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if np.isfinite(vec).all() and norm > 0 else None


def dedupe(
    store: Store,
    *,
    actor: Actor,
    threshold: float = DEFAULT_THRESHOLD,
    embedder: Embedder | None = None,
    file: bool = True,
) -> DedupeReport:
    """Find the clusters and file each as a merge proposal (``file=False``: only report).

    A proposal is filed once: the same procedures at the same revisions are not proposed
    again whether that proposal waits, was accepted, or was turned down; when one of them
    moves on (a new revision), the cluster may be proposed anew.
    """
    require_proposer(actor)
    clusters, live = find_clusters(store, threshold=threshold, embedder=embedder)
    if not file:
        return DedupeReport(threshold, live, [Filing(c, "not_filed") for c in clusters])
    return DedupeReport(threshold, live, [_file(store, c, actor) for c in clusters])


def _file(store: Store, c: Cluster, actor: Actor) -> Filing:
    records = merge_records(store, set(c.procedure_ids))
    ids = {*c.procedure_ids, *(r.kept_id for r in records)}
    with store.session() as s:
        procs = {p.id: p for p in s.exec(select(Procedure).where(col(Procedure.id).in_(ids))).all()}
    open_ = [r for r in records if procs[r.kept_id].proposed_revision_id == r.revision_id]
    same = [r for r in records if r.identity == c.identity]
    if same:
        state: State = "pending" if same[-1] in open_ else "declined"
        return Filing(c, state, same[-1].revision_id)
    if open_:  # one of them is in another merge proposal still waiting
        r = open_[0]
        return Filing(c, "waiting", r.revision_id,
                      f"procedures {', '.join(map(str, r.procedure_ids))} have merge proposal "
                      f"{r.revision_id} waiting for review")  # fmt: skip
    busy = [p for p in _ordered(procs, c.procedure_ids) if p.proposed_revision_id is not None]
    if busy:
        p = busy[0]
        return Filing(
            c,
            "waiting",
            p.proposed_revision_id,
            f"procedure {p.id} has revision {p.proposed_revision_id} waiting for review",
        )
    try:
        rev = file_proposal(store, c.kept_id, list(c.members), actor=actor,
                            similarity=c.similarity, cosine=c.cosine,
                            text_similarity=c.text_similarity)  # fmt: skip
    except ConflictError as exc:  # another writer moved one of them: next run proposes anew
        return Filing(c, "waiting", None, str(exc))
    return Filing(c, "filed", rev.id)


def _ordered(procs: dict[int | None, Procedure], ids: Sequence[int]) -> list[Procedure]:
    return [procs[i] for i in ids if i in procs]
