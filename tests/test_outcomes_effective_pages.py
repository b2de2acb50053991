"""The pages that show a success rate count a reviewed judgement's outcome and say so.

One run recorded a failure, one recorded unknown was confirmed a success by a reviewer, one
stays unknown: every page shows 50% (not 0%) and a caption naming the judged outcome.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_outcomes_effective_readmodels import REVIEWER, add, judge, world

from memp_core.judge.judgements import review_judgement
from memp_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages import the top-level `ui` package, as `streamlit run` does
    sys.path.insert(0, str(ROOT))
NOTE = "1 outcome from reviewed judgements"


@pytest.fixture(name="judged")
def judged_fixture(store: Store) -> Store:
    w = world(store)
    add(store, w, False)
    review_judgement(store, judge(store, add(store, w, None), "success"), actor=REVIEWER)
    add(store, w, None)
    return store


def open_page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    if path != "app.py":
        at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption).replace("\\", "")


def test_overview_counts_the_confirmed_run_and_says_so(judged: Store) -> None:
    at = open_page("app.py")
    (rate,) = [m for m in at.metric if m.label == "Success"]
    assert (rate.value, rate.delta) == ("50%", "1 unknown")
    assert f"Success rate includes {NOTE}." in captions(at)


def test_agents_page_counts_the_confirmed_run_and_says_so(judged: Store) -> None:
    at = open_page("pages/9_Agents.py")
    (rate,) = [m for m in at.metric if m.label == "Success rate"]
    assert rate.value == "50%"
    assert f"Success rates include {NOTE}." in captions(at)
    assert f"success 50% over runs with an outcome (includes {NOTE})" in captions(at)
    (runs,) = [df.value for df in at.dataframe if "outcome" in df.value.columns]
    assert sorted(zip(runs["outcome"], runs["from"], strict=True)) == [
        ("failure", "recorded"), ("success", "reviewed judgement"), ("unknown", "–"),
    ]  # fmt: skip


def test_lineage_page_counts_the_confirmed_run_and_says_so(judged: Store) -> None:
    at = open_page("pages/3_Lineage.py")
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Used"], metrics["Success"]) == ("2", "50%")
    assert f"Uses and success include {NOTE}." in captions(at)


def test_learning_curves_page_counts_the_confirmed_run_and_says_so(judged: Store) -> None:
    at = open_page("pages/4_Learning_curves.py")
    (table,) = [df.value for df in at.dataframe if "seeds" in df.value.columns]
    assert list(table["first"]) == [50.0]  # the per-condition table, in whole percents
    said = f"Success rates include {NOTE}: runs recorded unknown that a judge's verdict settled."
    assert said in captions(at)
