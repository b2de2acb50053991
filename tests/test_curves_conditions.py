"""The Learning curves page tells the story by condition: runs that differ only by seed are
averaged (each seed weighs the same), their spread is a band in the line's colour, unknown
outcomes stay unknown, and the page opens on the largest comparison, not on runs one by one."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from test_charts import add, sim_run
from test_gate_pages import ACTIVE_MARKUP, hostile_db_fixture, markdown_shown, plot_strings
from test_pages import T0, run_page

from memp_core import conditions, curves, curves_chart, markers
from memp_core.conditions import ConditionPoint
from memp_core.errors import ConfigError
from memp_core.markers import MemoryMarker
from memp_core.models import Run, Trajectory
from memp_core.store import Store

CONDITIONS, RUNS = "conditions", "runs"  # the page's views, as its URL names them
_ = hostile_db_fixture  # the hostile database (names with markup), as the gate tests use it


def comparison(policy: str, seed: int, rates: list[float], **kw: object) -> Run:
    """A run of a demo-like policy comparison (own memory, run-level metrics only)."""
    memory = {} if policy != "none" else {"retrieve_policy": None, "build_policy": None}
    kw.setdefault("config", {"isolated": True, "update_every": 12})
    return sim_run(f"demo: strong agent, {policy}, isolated memory", seed, rates=rates,
                   kind="experiment", update_policy=policy, **memory, **kw)  # fmt: skip


def by_group(cpoints: list[ConditionPoint], cond: str) -> dict[int, ConditionPoint]:
    return {p.group: p for p in cpoints if p.condition == cond}


# -- the read model: averaging over seeds --------------------------------------------------------


def test_each_seed_weighs_the_same_whatever_its_task_count(store: Store) -> None:
    a = sim_run("a", 1, rates=[0.5, 0.6])
    b = sim_run("b", 2, rates=[0.7, 1.0])
    b.metrics[0]["tasks"] = 3  # a seed with fewer tasks in a group still counts once
    runs = add(store, a, b)
    cond = curves.condition_of(runs[0])
    cp = by_group(conditions.condition_curves(curves.curve_points(store, runs)), cond)
    assert cp[0].success_mean == pytest.approx(0.6) and cp[1].success_mean == pytest.approx(0.8)
    assert (cp[1].success_lo, cp[1].success_hi) == (0.6, 1.0)
    assert cp[0].seeds == 2 and cp[0].tasks == 12 + 3
    assert cp[1].steps_mean == pytest.approx(9.0)


def test_seeds_with_different_group_counts_average_what_each_group_has(store: Store) -> None:
    long, short = add(
        store,
        sim_run("long", 1, rates=[0.2, 0.4, 0.6, 0.8, 0.9, 1.0]),
        # a run stopped after four of six groups (cancelled): still a seed of the condition
        sim_run("short", 2, rates=[0.4, 0.6, 0.8, 0.8], n_tasks=72, n_groups=6,
                status="cancelled"),
    )  # fmt: skip
    assert curves.condition_of(long) == curves.condition_of(short)
    points = curves.curve_points(store, [long, short])
    cp = by_group(conditions.condition_curves(points), curves.condition_of(long))
    assert [cp[g].seeds for g in range(6)] == [2, 2, 2, 2, 1, 1]
    assert cp[3].success_mean == pytest.approx(0.8)
    assert cp[4].success_mean == pytest.approx(0.9)  # the one seed left, not diluted
    assert cp[5].success_lo == cp[5].success_hi == 1.0
    assert [b.group for b in conditions.bands(points)] == [0, 1, 2, 3]  # a band needs two seeds
    # The chart draws the band only where two seeds are: its x values stop at group 3.
    cpoints = conditions.condition_curves(points)
    fig = curves_chart.condition_figure(cpoints, names={}, colors={})
    band_xs = {x for t in fig.data if t.fill == "toself" for x in t.x}
    assert band_xs == {0, 1, 2, 3}
    line = next(t for t in fig.data if t.mode == "lines+markers")
    assert list(line.x) == [0, 1, 2, 3, 4, 5]


def _trajectories(store: Store, run: Run, outcomes: dict[int, list[bool | None]]) -> None:
    with store.transaction() as s:
        for group, results in outcomes.items():
            for i, ok in enumerate(results):
                s.add(Trajectory(task="put a mug in cabinet", task_type="put", run_id=run.id,
                                 group_index=group, success=ok, step_count=10,
                                 source="simulator",
                                 created_at=T0 + timedelta(minutes=10 * group + i)))  # fmt: skip


def test_unknown_outcomes_are_counted_as_unknown_never_as_successes(store: Store) -> None:
    a, b = add(
        store,
        *(sim_run(n, seed, rates=[0.0, 0.0], metrics=[]) for n, seed in (("a", 1), ("b", 2))),
    )
    # Seed a: group 0 one success of two judged (one unknown); group 1 one failure.
    _trajectories(store, a, {0: [True, False, None], 1: [False]})
    # Seed b: group 0 judged; group 1 nobody recorded a verdict at all.
    _trajectories(store, b, {0: [True, True], 1: [None, None, None]})
    cp = by_group(
        conditions.condition_curves(curves.curve_points(store, [a, b])), curves.condition_of(a)
    )
    assert cp[0].success_mean == pytest.approx((0.5 + 1.0) / 2)  # not (2/3 + 1) / 2
    assert cp[0].unknown == 1
    assert cp[1].seeds == 1 and cp[1].success_mean == 0.0  # b has no rate there: left out
    assert cp[1].unknown == 3
    summary = {s.condition: s for s in conditions.condition_summaries(list(cp.values()))}
    assert summary[curves.condition_of(a)].unknown == 4


def test_the_band_can_be_one_standard_deviation_around_the_mean(store: Store) -> None:
    runs = add(store, *(sim_run(f"r{i}", i, rates=[r]) for i, r in enumerate([0.2, 0.4, 0.6])))
    (p,) = conditions.condition_curves(curves.curve_points(store, runs), "sd")
    assert p.success_mean == pytest.approx(0.4)
    assert (p.success_lo, p.success_hi) == (pytest.approx(0.2), pytest.approx(0.6))  # sd 0.2
    with pytest.raises(ConfigError, match="unknown spread"):
        conditions.condition_curves([], "iqr")


# -- which conditions the page opens on, and their names ----------------------------------------


def demo_like(store: Store) -> list[Run]:
    """A policy comparison (none, vanilla, reflect; three seeds each) beside a story: one
    online reflect run, one online run without memory and an imported trial log."""
    rates = {"none": [0.4, 0.4, 0.45, 0.4], "vanilla": [0.4, 0.5, 0.55, 0.6],
             "reflect": [0.4, 0.6, 0.7, 0.8]}  # fmt: skip
    runs = [comparison(p, seed, [r + 0.05 * (seed - 21) for r in rs])
            for p, rs in rates.items() for seed in (21, 22, 23)]  # fmt: skip
    reflect = runs[-1]
    reflect.config = {**reflect.config, "memory_changes": [
        MemoryMarker(0, 0.5, "revision added", 7, ["put a mug in cabinet (rev 1, build)"]).record(),
        MemoryMarker(0, 1.5, "revision added", 3, ["heat an egg (rev 9, reflection)"]).record(),
    ]}  # fmt: skip
    runs += [
        sim_run("demo: strong agent, reflect", 1),
        sim_run("demo: strong agent, no memory", 1, retrieve_policy=None, update_policy="none",
                build_policy=None),
        Run(name="reflexion trials", kind="import", source="import:react:x.jsonl",
            metrics=[{"index": 0, "tasks": 5, "success_rate": 0.2, "mean_steps": 9.0}]),
    ]  # fmt: skip
    return add(store, *runs)


def test_the_page_opens_on_the_largest_comparison_no_memory_first(store: Store) -> None:
    runs = demo_like(store)
    opened = conditions.default_conditions(conditions.conditions(list(reversed(runs))))
    assert [c.policy for c in opened] == ["none", "vanilla", "reflect"]
    assert all(len(c.run_ids) == 3 and "isolated memory" in c.name for c in opened)
    names, shared = conditions.short_names(opened)
    assert [names[c.name] for c in opened] == [
        "no memory", "vanilla · query k5 · script", "reflect · query k5 · script"
    ]  # fmt: skip
    assert shared == ("heuristic-strong · 4 groups × 12 tasks · experiment · isolated memory · "
                      "memory updated every 12 tasks")  # fmt: skip


def test_memory_changes_of_a_condition_add_up_over_its_seeds(store: Store) -> None:
    runs = demo_like(store)
    reflect = [r for r in runs if r.update_policy == "reflect" and r.kind == "experiment"]
    other = comparison("reflect", 24, [0.5, 0.6, 0.7, 0.8], config={
        "isolated": True, "update_every": 12,
        "memory_changes": [MemoryMarker(0, 0.5, "revision added", 5, ["x"]).record()]})  # fmt: skip
    (other,) = add(store, other)
    marks = markers.condition_markers(store, [*reflect, other])
    first = next(m for m in marks if m.position == 0.5)
    assert (first.count, first.runs) == (12, 2)
    assert first.label.startswith("12 × revision added over 2 runs: ")
    assert [m.position for m in marks] == [0.5, 1.5]


# -- the page ----------------------------------------------------------------------------------


def test_the_page_shows_conditions_averaged_with_bands_not_runs_one_by_one(
    store: Store,
) -> None:
    demo_like(store)
    at = run_page("pages/4_Learning_curves.py")
    assert not at.exception, at.exception
    assert at.radio(key="curves_view").value == CONDITIONS
    assert len(at.multiselect(key="curves_conditions").value) == 3
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = [t for t in spec["data"] if t.get("mode") == "lines+markers"]
    # One mean line per condition in each of the two rows: 6 lines for 9 runs.
    assert len(lines) == 2 * 3
    assert [t["name"] for t in lines if t.get("showlegend", True)] == [
        "no memory (3 seeds)", "vanilla · query k5 · script (3 seeds)",
        "reflect · query k5 · script (3 seeds)",
    ]  # fmt: skip
    reflect = next(t for t in lines if t["name"].startswith("reflect"))
    assert reflect["y"] == pytest.approx([0.45, 0.65, 0.75, 0.85])  # the mean of three seeds
    assert reflect["line"]["color"] == curves_chart.POLICY_COLORS["reflect"]
    fills = {t["fillcolor"] for t in spec["data"] if t.get("fill") == "toself"}
    assert fills == {curves_chart._rgba(t["line"]["color"], curves_chart.BAND_ALPHA)
                     for t in lines}  # fmt: skip
    # The reflect seeds' memory changes (kept in the run's config), in a colour of their own.
    marks = [t for t in spec["data"] if t.get("mode") == "markers"]
    assert marks and {t["marker"]["color"] for t in marks} == {curves_chart.MARKER_COLOR}
    assert sorted(marks[0]["x"]) == [0.5, 1.5]
    assert spec["layout"]["yaxis"]["tickformat"] == ".0%"
    assert any(s.value == "Per condition" for s in at.subheader)
    assert any(s.value == "Per run" for s in at.subheader)
    # The per-run view is one click away, with its own filters.
    at.radio(key="curves_view").set_value(RUNS).run()
    assert not at.exception, at.exception
    assert at.multiselect(key="curves_runs").value
    assert at.radio(key="curves_color").value == "condition"


def test_the_filters_live_in_the_url_and_a_shared_link_opens_the_same_view(
    store: Store,
) -> None:
    demo_like(store)
    conds = conditions.conditions(list(reversed(store.runs())))
    key = {c.policy: str(c.run_ids[0]) for c in conds if "isolated memory" in c.name}
    at = run_page("pages/4_Learning_curves.py")
    picker = at.multiselect(key="curves_conditions")
    assert picker.value == [key["none"], key["vanilla"], key["reflect"]]
    picker.set_value([key["none"], key["reflect"]]).run()
    at.radio(key="curves_spread").set_value("sd").run()
    assert not at.exception, at.exception
    assert at.query_params["conditions"] == f"{key['none']},{key['reflect']}"
    assert at.query_params["band"] == "sd"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len([t for t in spec["data"] if t.get("mode") == "lines+markers"]) == 2 * 2
    # A link naming an older seed of a condition still opens that condition.
    vanilla = next(c for c in conds if c.policy == "vanilla" and "isolated memory" in c.name)
    link = run_page("app.py")
    link.switch_page("pages/4_Learning_curves.py")
    link.query_params.update({"conditions": str(vanilla.run_ids[-1]), "band": "sd"})
    link.run()
    assert not link.exception, link.exception
    assert link.multiselect(key="curves_conditions").value == [key["vanilla"]]
    assert link.radio(key="curves_spread").value == "sd"


def test_the_page_does_not_draw_the_png_until_it_is_asked_for(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing the PNG starts a browser (kaleido): seconds on every first render of the page.
    It is drawn when the button is clicked, from the figure on screen."""
    demo_like(store)
    drawn: list[object] = []
    real = curves_chart.figure_png
    monkeypatch.setattr(curves_chart, "figure_png", lambda fig, **kw: drawn.append(fig))
    at = run_page("pages/4_Learning_curves.py")
    assert not at.exception, at.exception
    at.radio(key="curves_view").set_value(RUNS).run()
    assert not at.exception, at.exception
    assert drawn == []
    assert any(b.label == "Download PNG (this chart)" for b in at.get("download_button"))
    monkeypatch.setattr(curves_chart, "figure_png", real)
    spec = at.get("plotly_chart")[0].proto.spec
    assert curves_chart.png_bytes(spec, engine="matplotlib")[:4] == b"\x89PNG"


# -- names from the data stay text -------------------------------------------------------------


@pytest.mark.parametrize("view", [CONDITIONS, RUNS])
def test_names_from_the_data_stay_text_in_both_views(view: str, hostile_db: dict[str, int]) -> None:
    at = run_page("pages/4_Learning_curves.py")
    at.radio(key="curves_view").set_value(view).run()
    at.radio(key="curves_color").set_value("model").run()
    assert not at.exception, at.exception
    texts = markdown_shown(at)
    assert not [t for t in texts if ACTIVE_MARKUP.search(t)]
    assert not [p for p in plot_strings(at) if re.search(r"<\s*(img|a)\b", p, re.IGNORECASE)]


# -- cached read models see every change -------------------------------------------------------


def test_the_data_version_moves_with_every_change_curves_read(store: Store) -> None:
    from memp_core.models import AuditEvent, Procedure, ProcedureRevision

    seen = {curves.data_version(store)}
    (run,) = add(store, sim_run("a", 1, status="running"))
    seen.add(curves.data_version(store))
    _trajectories(store, run, {0: [True]})
    seen.add(curves.data_version(store))
    with store.transaction() as s:
        proc = Procedure(key="k", title="put a mug", task_type="put")
        s.add(proc)
        s.flush()
        s.add(ProcedureRevision(procedure_id=proc.id or 0, task_text="put a mug", script="1."))
    seen.add(curves.data_version(store))
    with store.transaction() as s:
        s.add(AuditEvent(actor="human:rita", action="approve", object_type="procedure",
                         object_id=1))  # fmt: skip
    seen.add(curves.data_version(store))
    with store.transaction() as s:
        row = s.get(Run, run.id)
        assert row is not None
        row.status = "done"
        s.add(row)
    seen.add(curves.data_version(store))
    assert len(seen) == 6


def test_a_memory_change_shows_on_the_next_render_despite_the_cache(store: Store) -> None:
    """The page caches markers per database and its last change: a revision written during
    a run between two renders is on the second."""
    from memp_core.models import Procedure, ProcedureRevision

    (run,) = add(store, sim_run("live", 1, metrics=[], status="running", created_at=T0))
    _trajectories(store, run, {0: [True, False], 1: [True]})
    at = run_page("pages/4_Learning_curves.py")
    at.radio(key="curves_view").set_value(RUNS).run()
    assert not at.exception, at.exception
    marks = [t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
             if t.get("mode") == "markers"]  # fmt: skip
    assert marks == []
    with store.transaction() as s:
        proc = Procedure(key="k", title="put a mug", task_type="put")
        s.add(proc)
        s.flush()
        s.add(ProcedureRevision(procedure_id=proc.id or 0, task_text="put a mug", script="1.",
                                created_at=T0 + timedelta(minutes=5)))  # fmt: skip
    at.run()
    assert not at.exception, at.exception
    marks = [t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
             if t.get("mode") == "markers"]  # fmt: skip
    assert [(m["name"], list(m["x"])) for m in marks] == [("memory: revision added", [0.5])]
