"""In a real browser: the Learning curves page opens on conditions, and "Download PNG" hands
over the chart on screen, drawn when clicked (AppTest cannot click a deferred download)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from matplotlib import image as mpimg
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, settle, streamlit_on
from test_curves_conditions import demo_like

from memp_core import curves_chart
from memp_core.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(name="served", scope="module")
def served_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make chromium)")
    url = f"sqlite:///{tmp_path_factory.mktemp('curves') / 'memp.db'}"
    store = Store(url)
    demo_like(store)
    store.dispose()
    with streamlit_on(url) as base:
        yield base


def test_the_png_download_is_the_chart_on_screen(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        page.goto(f"{served}/Learning_curves")
        settle(page, "Learning curves")
        assert not page.locator('[data-testid="stException"]').count()
        page.get_by_text("Per condition").first.wait_for(state="visible", timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "Learning_curves_conditions.png"), full_page=True)
        with page.expect_download(timeout=120_000) as info:
            page.get_by_role("button", name="Download PNG (this chart)").click()
        target = tmp_path / "chart.png"
        info.value.save_as(target)
        browser.close()
    png = target.read_bytes()
    assert png[:4] == b"\x89PNG"
    img = mpimg.imread(io.BytesIO(png), format="png")[:, :, :3] * 255
    # The reflect line's own colour is in it: the conditions chart, not another one.
    r, g, b = (int(curves_chart.POLICY_COLORS["reflect"][i : i + 2], 16) for i in (1, 3, 5))
    near = (abs(img - (r, g, b)).max(axis=2) <= 8).sum()
    assert near > 100
