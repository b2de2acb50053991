"""The revision graph of procedures: a networkx DAG, a plotly figure and diffs.

Revisions are append-only and point to their parent, so a procedure's history is a tree.
A merge of near-duplicates (:mod:`memp_core.merge`) makes it a DAG: the merge revision's
parent is the kept procedure's revision, and the merged procedure's revision is a second,
*evidence* parent (edge attribute ``kind="merge"``), so the graph of either procedure shows
both lineages. Each node carries how often the agents used that revision and how often they
succeeded with it, counted from the trajectories that followed it.
"""

from __future__ import annotations

import difflib
import html
import math
from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx
import plotly.graph_objects as go
from sqlalchemy import case, func
from sqlmodel import col, select

from memp_core.merge import MergeRecord, merge_records
from memp_core.models import Origin, Procedure, ProcedureRevision, Status, Trajectory
from memp_core.outcomes import Settled, settled_by_judgements
from memp_core.store import Store

ORIGIN_COLORS: dict[str, str] = {
    Origin.build.value: "#1f77b4",
    Origin.reflection.value: "#ff7f0e",
    Origin.human_edit.value: "#2ca02c",
    Origin.rollback.value: "#d62728",
    Origin.import_.value: "#9467bd",
    Origin.merge.value: "#8c564b",
}
OTHER_COLOR = "#7f7f7f"
# Parent edges plain; a merge's evidence edge (merged procedure -> merge revision) dashed.
EDGE_STYLES: tuple[tuple[str, dict[str, object], str], ...] = (
    ("parent", {"color": "#aaaaaa", "width": 1.5}, "parent"),
    ("merge", {"color": ORIGIN_COLORS[Origin.merge.value], "width": 2, "dash": "dash"},
     "merged in (evidence parent)"),
    ("proposed_merge", {"color": ORIGIN_COLORS[Origin.merge.value], "width": 1.5, "dash": "dot"},
     "merge proposed, not accepted"),
)  # fmt: skip
MERGE_EDGES = ("merge", "proposed_merge")


@dataclass(frozen=True)
class RevisionUse:
    """Runs that followed a revision, by effective outcome (unknown ones are no use)."""

    uses: int = 0
    successes: int = 0
    settled: Settled = Settled()  # outcomes among those that came from judgements

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.uses if self.uses else None


def revision_uses(
    store: Store, revision_ids: Iterable[int], *, count_unreviewed: bool = False
) -> dict[int, RevisionUse]:
    """Uses and successes per revision, from the trajectories that followed each one.

    Only runs with an effective outcome count (recorded, else a reviewed judgement, else an
    unreviewed one where ``count_unreviewed`` allows): an unknown one is no use with a failure.
    The recorded ones are counted in SQL; judgements are read for the unknown ones only."""
    ids = list(revision_ids)
    out: dict[int, RevisionUse] = {}
    with store.session() as s:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            followed = col(Trajectory.procedure_revision_id).in_(chunk)
            rows = s.exec(
                select(
                    Trajectory.procedure_revision_id,
                    func.count(),
                    func.sum(case((col(Trajectory.success).is_(True), 1), else_=0)),
                )
                .where(followed)
                .where(col(Trajectory.success).is_not(None))
                .group_by(Trajectory.procedure_revision_id)
            ).all()
            for rid, n, ok in rows:
                out[int(rid)] = RevisionUse(int(n), int(ok or 0))
            judged = settled_by_judgements(
                s, [Trajectory.procedure_revision_id], followed, count_unreviewed=count_unreviewed
            )
            for (rid,), extra in judged.items():
                use = out.get(int(rid), RevisionUse())
                out[int(rid)] = RevisionUse(
                    use.uses + extra.runs, use.successes + extra.successes, extra
                )
    return out


def build_graph(
    revisions: list[ProcedureRevision],
    uses: dict[int, RevisionUse],
    procedures: dict[int, Procedure] | None = None,
    merges: Iterable[MergeRecord] = (),
) -> nx.DiGraph:
    """A DAG with one node per revision (attributes ``revision``, ``use``, ``current``);
    edges are ``kind="parent"``, or ``kind="merge"`` from a merged procedure's revision to
    the merge revision that folded it in (``"proposed_merge"`` while nobody accepted it)."""
    procedures = procedures or {}
    current = {p.current_revision_id for p in procedures.values()}
    g: nx.DiGraph = nx.DiGraph()
    for rev in revisions:
        g.add_node(
            rev.id,
            revision=rev,
            use=uses.get(rev.id or 0, RevisionUse()),
            current=rev.id in current,
            procedure=procedures.get(rev.procedure_id),
        )
    for rev in revisions:
        if rev.parent_revision_id is not None and rev.parent_revision_id in g:
            g.add_edge(rev.parent_revision_id, rev.id, kind="parent")
    for m in merges:
        for member in m.members:
            if m.revision_id in g and member.revision_id in g:
                kind = "merge" if m.accepted_by is not None else "proposed_merge"
                g.add_edge(member.revision_id, m.revision_id, kind=kind)
    return g


def merge_parents(g: nx.DiGraph, node: int) -> list[int]:
    """The evidence parents of a merge revision: revisions of the procedures it merged."""
    return sorted(a for a, _, k in g.in_edges(node, data="kind") if k in MERGE_EDGES)


def procedure_graph(
    store: Store, procedure_id: int, *, count_unreviewed: bool = False
) -> nx.DiGraph:
    """One procedure's lineage, with the lineages of procedures merged with it (or proposed
    to be); ``count_unreviewed`` as in :func:`revision_uses`."""
    merges = merge_records(store, {procedure_id})
    ids = sorted({procedure_id, *(i for m in merges for i in m.procedure_ids)})
    procedures = {i: store.get(Procedure, i) for i in ids}
    revisions = sorted((r for i in ids for r in store.revisions_of(i)), key=lambda r: r.id or 0)
    rev_ids = [r.id for r in revisions if r.id is not None]
    uses = revision_uses(store, rev_ids, count_unreviewed=count_unreviewed)
    return build_graph(revisions, uses, procedures, merges)


def task_type_graph(
    store: Store, task_type: str, *, limit: int = 400, count_unreviewed: bool = False
) -> nx.DiGraph:
    """All procedures of one task type as a forest (newest ``limit`` revisions at most)."""
    procedures = {p.id: p for p in store.procedures(task_type=task_type) if p.id is not None}
    with store.session() as s:
        revisions = list(
            s.exec(
                select(ProcedureRevision)
                .where(col(ProcedureRevision.procedure_id).in_(list(procedures)))
                .order_by(col(ProcedureRevision.id).desc())
                .limit(limit)
            ).all()
        )
    revisions.reverse()
    uses = revision_uses(
        store, [r.id for r in revisions if r.id is not None], count_unreviewed=count_unreviewed
    )
    return build_graph(revisions, uses, procedures, merge_records(store, set(procedures)))


@dataclass(frozen=True)
class LineageChoice:
    procedure: Procedure
    revisions: int


def richest_lineages(store: Store, *, limit: int = 300) -> list[LineageChoice]:
    """Procedures with the most revisions first (the histories worth looking at)."""
    n = func.count(col(ProcedureRevision.id))
    with store.session() as s:
        rows = s.exec(
            select(Procedure, n)
            .join(ProcedureRevision, col(ProcedureRevision.procedure_id) == col(Procedure.id))
            .group_by(col(Procedure.id))
            .order_by(n.desc(), col(Procedure.updated_at).desc())
            .limit(limit)
        ).all()
    return [LineageChoice(p, int(c)) for p, c in rows]


def layout(g: nx.DiGraph) -> dict[int, tuple[float, float]]:
    """Generations left to right; each procedure gets its own horizontal band (top to
    bottom by id) and siblings spread within it, so a forest reads as one tree per row."""
    pos: dict[int, tuple[float, float]] = {}
    top = 0.0
    by_procedure: dict[int, list[int]] = {}
    for node, data in g.nodes(data=True):
        by_procedure.setdefault(data["revision"].procedure_id, []).append(node)
    for pid in sorted(by_procedure):
        tree = g.subgraph(by_procedure[pid])
        widest = 1
        for depth, layer in enumerate(nx.topological_generations(tree)):
            ordered = sorted(layer)
            widest = max(widest, len(ordered))
            for i, node in enumerate(ordered):
                pos[node] = (float(depth), top - i)
        top -= widest + 0.5
    return pos


def figure_height(g: nx.DiGraph) -> int:
    """Tall enough that one procedure band is about 40 px."""
    rows = {round(y, 1) for _, y in layout(g).values()} if g.number_of_nodes() else set()
    return max(360, min(2400, 60 + 40 * len(rows)))


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def hover_text(rev: ProcedureRevision, use: RevisionUse, procedure: Procedure | None) -> str:
    """Plotly hover text; stored text is HTML-escaped because plotly renders a few tags."""
    rate = f"{use.success_rate:.0%}" if use.success_rate is not None else "–"
    if said := use.settled.describe():
        rate += f" (includes {said})"
    parts = [
        f"revision {rev.id} ({rev.origin})",
        f"procedure: {procedure.title if procedure else rev.procedure_id}",
        f"author: {rev.author or '–'}",
        f"model: {rev.model or '–'}",
        f"used {use.uses}× · success {rate}",
        f"rationale: {_clip(rev.rationale) or '–'}",
    ]
    return "<br>".join(html.escape(p, quote=False) for p in parts)


def figure(g: nx.DiGraph, *, selected: int | None = None, title: str = "") -> go.Figure:
    """The DAG drawn with plotly: colour = origin, size = uses, hover = who/why/how well."""
    pos = layout(g)
    fig = go.Figure()
    for kind, style, label in EDGE_STYLES:
        edges = [(a, b) for a, b, k in g.edges(data="kind") if (k or "parent") == kind]
        if not edges and kind != "parent":
            continue
        fig.add_trace(
            go.Scatter(
                x=[v for a, b in edges for v in (pos[a][0], pos[b][0], None)],
                y=[v for a, b in edges for v in (pos[a][1], pos[b][1], None)],
                mode="lines", hoverinfo="skip", name=label, showlegend=kind != "parent",
                line=style,
            )
        )  # fmt: skip
    by_origin: dict[str, list[int]] = {}
    for node, data in g.nodes(data=True):
        by_origin.setdefault(data["revision"].origin, []).append(node)
    for origin, nodes in sorted(by_origin.items()):
        data = [g.nodes[n] for n in nodes]
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in nodes],
                y=[pos[n][1] for n in nodes],
                mode="markers+text",
                name=html.escape(origin, quote=False),  # a legend entry: plotly renders tags
                showlegend=True,
                text=[str(n) for n in nodes],
                textposition="top center",
                customdata=nodes,
                hovertext=[hover_text(d["revision"], d["use"], d["procedure"]) for d in data],
                hoverinfo="text",
                marker={
                    "size": [12 + 6 * math.sqrt(d["use"].uses) for d in data],
                    "color": ORIGIN_COLORS.get(origin, OTHER_COLOR),
                    "line": {
                        "width": [
                            4 if n == selected else (2 if d["current"] else 0)
                            for n, d in zip(nodes, data, strict=True)
                        ],
                        "color": "#111111",
                    },
                },
            )  # fmt: skip
        )
    fig.update_layout(
        title=title or None,
        xaxis={"title": "generation (parent → child)", "showgrid": False, "zeroline": False,
               "dtick": 1},
        yaxis=_band_axis(g, pos),
        legend_title_text="origin",
        height=figure_height(g),
        margin={"l": 20, "r": 20, "t": 40 if title else 10, "b": 40},
    )  # fmt: skip
    return fig


def _band_axis(g: nx.DiGraph, pos: dict[int, tuple[float, float]]) -> dict[str, object]:
    """With several procedures, label each band with the procedure's id and title."""
    top: dict[int, float] = {}
    titles: dict[int, str] = {}
    for node, data in g.nodes(data=True):
        rev, proc = data["revision"], data["procedure"]
        top[rev.procedure_id] = max(top.get(rev.procedure_id, -1e9), pos[node][1])
        merged = proc is not None and proc.status == Status.merged.value
        titles[rev.procedure_id] = (_clip(proc.title, 32) if proc is not None else "") + (
            " (merged)" if merged else ""
        )
    if len(top) < 2:
        return {"visible": False}
    return {
        "tickvals": list(top.values()),
        "ticktext": [html.escape(f"#{pid} {titles[pid]}", quote=False) for pid in top],
        "showgrid": False, "zeroline": False,
    }  # fmt: skip


def revision_text(rev: ProcedureRevision) -> str:
    """The text a reviewer reads and diffs: the script, then any verbatim steps."""
    parts = [rev.script.rstrip()] if rev.script.strip() else []
    if rev.steps:
        lines = [f"> {st.get('action', '')}\n  {st.get('observation', '')}" for st in rev.steps]
        parts.append("Example trajectory:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def unified_diff(
    old: str, new: str, *, old_label: str = "parent", new_label: str = "revision"
) -> str:
    diff = difflib.unified_diff(
        old.splitlines(), new.splitlines(), fromfile=old_label, tofile=new_label, lineterm=""
    )
    return "\n".join(diff)


def diff_to_parent(store: Store, revision: ProcedureRevision) -> str | None:
    """Unified diff between a revision and its parent; None for a root revision."""
    if revision.parent_revision_id is None:
        return None
    parent = store.get(ProcedureRevision, revision.parent_revision_id)
    return unified_diff(
        revision_text(parent),
        revision_text(revision),
        old_label=f"revision {parent.id}",
        new_label=f"revision {revision.id}",
    )
