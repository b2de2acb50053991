"""The merge in the dashboard: the Lineage page draws both lineages with the merge edge, and
the merge panel shows the two procedures side by side with their stats, as text."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_merge import HEAT, Pair

from memp_core.embeddings import Embedder
from memp_core.lineage import figure, procedure_graph
from memp_core.models import Procedure
from memp_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages import the top-level `ui` package, as `streamlit run` does
    sys.path.insert(0, str(ROOT))
HOSTILE = "heat egg **now** <img src=x onerror=alert(1)> [x](http://evil.example)"


@pytest.fixture(name="pair")
def pair_fixture(store: Store, embedder: Embedder) -> Pair:
    pair = Pair(store, embedder)
    with store.transaction() as s:  # a title from an imported file may hold anything
        dup = s.get(Procedure, pair.dup.id)
        assert dup is not None
        dup.title = HOSTILE
        s.add(dup)
    return pair


def _panel(url: str, revision_id: int) -> None:
    from memp_core.store import Store
    from ui.merge_panel import merge_panel

    merge_panel(Store(url), revision_id)


def test_the_merge_panel_shows_both_scripts_and_their_stats(db_url: str, pair: Pair) -> None:
    at = AppTest.from_function(_panel, args=(db_url, pair.proposal), default_timeout=60).run()
    assert not at.exception, at.exception
    codes = [c.value for c in at.code]
    assert codes[:2] == [HEAT, HEAT.replace("1. ", "1.  ", 1)]  # both as stored, less the "\n"
    assert "-1. find" in codes[2] and "+1.  find" in codes[2]  # and what differs
    metrics = [(m.label, m.value) for m in at.metric]
    assert metrics == [("Uses", "4"), ("Successes", "2 (50%)"), ("Evidence runs", "1"),
                       ("Uses", "2"), ("Successes", "1 (50%)"), ("Evidence runs", "2")]  # fmt: skip
    assert HOSTILE in [t.value for t in at.text]  # shown as text, not rendered
    assert any("waiting for a person" in m.value for m in at.markdown)
    assert any("procedure 2 becomes merged into it" in c.value for c in at.caption)


def test_the_merge_panel_shows_nothing_for_other_revisions(db_url: str, pair: Pair) -> None:
    at = AppTest.from_function(
        _panel, args=(db_url, int(pair.kept.current_revision_id or 0)), default_timeout=60
    ).run()
    assert not at.exception and not at.markdown and not at.code


def test_the_lineage_page_draws_the_merge_edge_and_names_both_parents(
    store: Store, pair: Pair
) -> None:
    pair.accept()
    g = procedure_graph(store, int(pair.dup.id or 0))
    names = [t.name for t in figure(g).data]
    assert "merged in (evidence parent)" in names
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/3_Lineage.py").run()
    assert not at.exception, at.exception
    wanted = f"Evidence parents (merged in): revision {pair.dup.current_revision_id} of procedure"
    assert any(c.value.startswith(wanted) for c in at.caption), [c.value for c in at.caption]
    assert any("accepted" in m.value for m in at.markdown)
