"""The learning-curves chart tells the story: one name per run, unlike runs never pooled,
percent axis, bands in their lines' colour, memory changes in a colour of their own, a PNG
that is the chart on screen, and Overview alerts only where there is a trend to see."""

from __future__ import annotations

import io
import json
from dataclasses import fields
from datetime import timedelta

import pytest
from matplotlib import image as mpimg
from test_pages import T0, run_page

from memp_core import conditions, curves, curves_chart
from memp_core.config import get_settings
from memp_core.curves import CurvePoint
from memp_core.markers import MemoryMarker
from memp_core.models import Procedure, Run
from memp_core.overview import overview
from memp_core.store import Store


def sim_run(name: str, seed: int, **kw: object) -> Run:
    """A finished simulator run with per-group metrics, like run_loop records."""
    rates = kw.pop("rates", [0.5, 0.6, 0.7, 0.8])
    assert isinstance(rates, list)
    base: dict[str, object] = {
        "name": name, "kind": "online", "agent": "heuristic", "agent_model": "heuristic-strong",
        "environment": "household-sim", "build_policy": "script", "retrieve_policy": "query",
        "update_policy": "reflect", "k": 5, "seed": seed, "n_tasks": 12 * len(rates),
        "n_groups": len(rates), "status": "done", "source": "simulator",
        "config": {"auto_approve": True, "max_steps": 50},
        "metrics": [{"index": i, "tasks": 12, "success_rate": r, "mean_steps": 10.0 - i}
                 for i, r in enumerate(rates)],
    }  # fmt: skip
    base.update(kw)
    return Run(**base)  # type: ignore[arg-type]


def add(store: Store, *runs: Run) -> list[Run]:
    with store.transaction() as s:
        s.add_all(runs)
        s.flush()
        for r in runs:
            s.refresh(r)
        s.expunge_all()
    return list(runs)


# -- item 9: one label, conditions that do not pool unlike runs -------------------------------


def test_a_run_has_one_label_on_experiments_charts_and_overview(store: Store) -> None:
    (run,) = add(store, sim_run("demo: strong agent, reflect, review mode", 3,
                                config={"auto_approve": False}))  # fmt: skip
    label = f"#{run.id} demo: strong agent, reflect, review mode · seed 3"
    assert curves.run_label(run) == label
    assert {p.run for p in curves.curve_points(store, [run])} == {label}
    assert [c.label for c in overview(store, get_settings()).latest_runs] == [label]
    at = run_page("pages/6_Experiments.py")
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["run"]) == [label]
    at = run_page("pages/4_Learning_curves.py")
    at.radio(key="curves_view").set_value("runs").run()
    runs = at.multiselect(key="curves_runs")
    assert runs.value == [str(run.id)] and runs.options == [label]


def test_a_name_that_states_its_seed_is_not_told_it_twice(store: Store) -> None:
    (run,) = add(store, sim_run("heuristic-strong memory=reflect seed=4", 4))
    assert curves.run_label(run) == f"#{run.id} heuristic-strong memory=reflect seed=4"


def test_a_review_mode_run_with_four_groups_is_not_a_seed_of_a_six_group_run(
    store: Store,
) -> None:
    auto, review = add(
        store,
        sim_run("demo: strong agent, reflect", 1, rates=[0.5, 0.6, 0.7, 0.8, 0.8, 0.9]),
        sim_run("demo: strong agent, reflect, review mode", 3, rates=[0.2, 0.3, 0.3, 0.4],
                config={"auto_approve": False}),
    )  # fmt: skip
    assert curves.condition_of(auto) != curves.condition_of(review)
    assert "review mode" in curves.condition_of(review)
    assert "4 groups" in curves.condition_of(review)
    assert conditions.bands(curves.curve_points(store, [auto, review])) == []


def test_an_isolated_experiment_is_not_pooled_with_an_online_run(store: Store) -> None:
    online, isolated = add(
        store,
        sim_run("online", 1),
        sim_run("isolated", 21, kind="experiment", config={"isolated": True}),
    )
    assert curves.condition_of(online) != curves.condition_of(isolated)
    assert "isolated memory" in curves.condition_of(isolated)
    assert conditions.bands(curves.curve_points(store, [online, isolated])) == []


def test_seeds_of_one_condition_still_share_a_band(store: Store) -> None:
    runs = add(store, sim_run("a", 1), sim_run("b", 2, rates=[0.3, 0.4, 0.9, 1.0]))
    bands = conditions.bands(curves.curve_points(store, runs))
    assert [b.group for b in bands] == [0, 1, 2, 3] and all(b.seeds == 2 for b in bands)


def test_config_defaults_that_name_no_condition_are_the_loops_defaults() -> None:
    from memp_core.loop import LoopConfig

    defaults = {f.name: f.default for f in fields(LoopConfig)}
    for key, value in curves.CONFIG_DEFAULTS.items():
        assert (list(defaults[key]) if key == "task_types" else defaults[key]) == value


# -- item 9: what the chart draws ---------------------------------------------------------------


def points_of(runs: list[Run], store: Store) -> list[CurvePoint]:
    return curves.curve_points(store, runs)


def test_success_axis_reads_percent(store: Store) -> None:
    runs = add(store, sim_run("a", 1))
    fig = curves_chart.figure(points_of(runs, store))
    assert fig.layout.yaxis.tickformat == ".0%"
    assert "%{y:.0%}" in fig.data[0].hovertemplate


def test_a_band_is_filled_in_its_lines_colour(store: Store) -> None:
    runs = add(store, sim_run("a", 1), sim_run("b", 2, rates=[0.3, 0.4, 0.9, 1.0]),
               sim_run("c", 1, update_policy="vanilla"))  # fmt: skip
    points = points_of(runs, store)
    for color_by in ("condition", "run", "policy", "model"):
        fig = curves_chart.figure(points, conditions.bands(points), color_by=color_by)
        line = next(t for t in fig.data if t.mode == "lines+markers").line.color
        band = next(t for t in fig.data if t.fill == "toself")
        assert band.fillcolor == curves_chart._rgba(line, curves_chart.BAND_ALPHA), color_by
        assert band.legendgroup == fig.data[0].legendgroup


def test_memory_changes_have_a_colour_no_line_has(store: Store) -> None:
    runs = add(store, *(sim_run(f"r{i}", i, update_policy=f"p{i}") for i in range(12)))
    markers = [MemoryMarker(runs[0].id or 0, 1.5, "approved", 1, ["x"]),
               MemoryMarker(runs[0].id or 0, 2.0, "revision added", 2, ["y", "z"])]  # fmt: skip
    fig = curves_chart.figure(points_of(runs, store), markers=markers, color_by="run")
    lines = {t.line.color for t in fig.data if t.mode == "lines+markers"}
    marks = [t for t in fig.data if t.mode == "markers"]
    assert len(lines) == len(curves_chart.PALETTE)
    assert {t.marker.color for t in marks} == {curves_chart.MARKER_COLOR}
    assert curves_chart.MARKER_COLOR not in lines
    assert {t.name for t in marks} == {"memory: approved", "memory: revision added"}
    assert {s.x0 for s in fig.layout.shapes} == {1.5, 2.0}  # a dotted line at each change


def test_names_from_the_data_stay_text_in_the_chart(store: Store) -> None:
    runs = add(store, sim_run("<a href='x'>evil</a>", 1))
    fig = curves_chart.figure(points_of(runs, store), color_by="run")
    assert "<a href" not in json.dumps([t.name for t in fig.data])
    assert "&lt;a href" in fig.data[0].name


# -- item 8: the PNG is the chart on screen ------------------------------------------------------


def pixels_near(png: bytes, rgb: tuple[int, int, int], tol: int = 6) -> int:
    img = mpimg.imread(io.BytesIO(png), format="png")[:, :, :3] * 255
    diff = abs(img - rgb).max(axis=2)
    return int((diff <= tol).sum())


def blended(hex_color: str, alpha: float) -> tuple[int, int, int]:
    """A see-through colour over the white background."""
    rgb = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
    return tuple(round(255 - (255 - c) * alpha) for c in rgb)  # type: ignore[return-value]


# "auto" is plotly's own export (kaleido) where kaleido and a chromium are installed, else the
# same figure drawn with matplotlib: either way the PNG must show what the page shows.
@pytest.mark.parametrize("engine", ["matplotlib", "auto"])
def test_the_png_shows_the_bands_colours_and_markers_of_the_chart(
    store: Store, engine: str
) -> None:
    runs = add(store, sim_run("a", 1), sim_run("b", 2, rates=[0.1, 0.2, 0.9, 1.0]))
    points = points_of(runs, store)
    markers = [MemoryMarker(runs[0].id or 0, 1.5, "approved", 1, ["x"])]
    fig = curves_chart.figure(points, conditions.bands(points), markers)  # by condition: one colour
    export = curves_chart.figure_png(fig, engine=engine)
    assert engine in ("auto", export.engine) and export.data[:4] == b"\x89PNG"
    line = curves_chart.PALETTE[0]
    assert pixels_near(export.data, blended(line, 1.0)) > 200  # the condition's lines
    assert pixels_near(export.data, blended(line, curves_chart.BAND_ALPHA)) > 2000  # its band
    assert pixels_near(export.data, blended(curves_chart.MARKER_COLOR, 1.0), tol=20) > 20
    # One condition, one colour: the second run's own colour (PALETTE[1]) is nowhere.
    assert pixels_near(export.data, blended(curves_chart.PALETTE[1], 1.0)) == 0


def test_a_dollar_in_a_run_name_does_not_break_the_png(store: Store) -> None:
    runs = add(store, sim_run("cost $5 $x^$ run", 1))
    fig = curves_chart.figure(points_of(runs, store), color_by="run")
    assert curves_chart.figure_png(fig, engine="matplotlib").data[:4] == b"\x89PNG"


def test_learning_curves_page_draws_bands_in_colour_and_offers_the_png(store: Store) -> None:
    add(store, sim_run("a", 1), sim_run("b", 2, rates=[0.3, 0.4, 0.9, 1.0]))
    at = run_page("pages/4_Learning_curves.py")
    assert not at.exception, at.exception
    for view in ("conditions", "runs"):  # both views, same rules
        at.radio(key="curves_view").set_value(view).run()
        assert not at.exception, at.exception
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        fills = [t["fillcolor"] for t in spec["data"] if t.get("fill") == "toself"]
        lines = [t["line"]["color"] for t in spec["data"] if t.get("mode") == "lines+markers"]
        assert fills and set(fills) == {curves_chart._rgba(lines[0], curves_chart.BAND_ALPHA)}
        assert spec["layout"]["yaxis"]["tickformat"] == ".0%"
    assert at.radio(key="curves_color").value == "condition"


# -- "Smaller": overview alerts only where there is a trend -------------------------------------


def test_overview_alerts_skip_procedures_used_once_and_no_memory_baselines(
    store: Store,
) -> None:
    falling = [0.9, 0.9, 0.9, 0.9, 0.2, 0.1]
    baseline, learner = add(
        store,
        sim_run("baseline", 1, retrieve_policy=None, update_policy="none", build_policy=None,
                rates=falling),
        sim_run("learner", 1, rates=falling, created_at=T0 + timedelta(hours=1)),
    )  # fmt: skip
    with store.transaction() as s:
        s.add(Procedure(key="once", title="used once", task_type="put", status="approved",
                        use_count=1, success_count=0))  # fmt: skip
        s.add(Procedure(key="often", title="fails often", task_type="put", status="approved",
                        use_count=6, success_count=1))  # fmt: skip
    ov = overview(store, get_settings())
    assert [a.run.id for a in ov.run_alerts] == [learner.id]
    assert [a.procedure.title for a in ov.procedure_alerts] == ["fails often"]
