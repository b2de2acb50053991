"""One real-browser smoke test: `streamlit run app.py`, every page in Debian's chromium.

Screenshots land in tests/artifacts/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from memp_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
# URL path of each page (Streamlit drops the number prefix) and text that must be visible.
PAGES = [
    ("", "Memp Studio", "Latest runs"),
    ("Trajectories", "Trajectories", "Trajectory detail"),
    ("Procedures", "Procedures", "Current revision"),
    ("Lineage", "Lineage", "Diff to its parent"),
    ("Learning_curves", "Learning curves", "Per run"),
    ("Retrieval_playground", "Retrieval playground", "Facts extracted from the task"),
    ("Experiments", "Experiments", "Recent runs"),
    ("Import_Export", "Import / Export", "Import"),
    ("Audit_log", "Audit log", "events match"),
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PlaywrightTimeout = pytest.importorskip("playwright.sync_api").TimeoutError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout} s")


@pytest.fixture(name="server", scope="module")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make chromium)")
    from test_pages import fill_database

    from memp_core.embeddings import get_embedder

    db = tmp_path_factory.mktemp("browser") / "memp.db"
    url = f"sqlite:///{db}"
    store = Store(url)
    ids = fill_database(store, get_embedder())
    store.dispose()
    port = free_port()
    env = dict(os.environ, MEMP_DATABASE_URL=url, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("MEMP_AUTH_FILE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base, ids
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(name="browser", scope="module")
def browser_fixture(server: tuple[str, dict]) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def settle(page: object, title: str) -> None:
    """Wait until the page's title is drawn and the script has finished running."""
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )
    # Tables in view draw into a canvas after the script ends; give them time to (this only
    # affects how complete the screenshot looks, so a slow table does not fail the test).
    try:
        page.wait_for_function(  # type: ignore[attr-defined]
            """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
                      .filter(d => d.offsetParent !== null
                                   && d.getBoundingClientRect().top < window.innerHeight)
                      .every(d => d.querySelector('canvas'))""",
            timeout=15_000,
        )
    except PlaywrightTimeout:
        print(f"tables on {title!r} had not drawn after 15 s; screenshot taken anyway")
    page.wait_for_timeout(800)  # type: ignore[attr-defined]  # let charts finish drawing


def test_every_page_opens_in_a_real_browser(server: tuple[str, dict], browser: object) -> None:
    base, _ids = server
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1700})  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path, title, key_text in PAGES:
        page.goto(f"{base}/{path}")
        settle(page, title)
        page.get_by_text(key_text).first.wait_for(state="visible", timeout=15_000)
        assert not page.locator('[data-testid="stException"]').count(), path
        name = path or "Overview"
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert dialogs == []


def test_hostile_trajectory_text_renders_inert(server: tuple[str, dict], browser: object) -> None:
    base, ids = server
    dialogs: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1700})  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.add_init_script("window.__xss = 0; window.alert = () => { window.__xss += 1; };")
    page.goto(f"{base}/Trajectories?trajectory={ids['hostile']}")
    settle(page, "Trajectories")
    # The task is shown as literal text, so the payload is readable and did nothing.
    shown = page.locator('[data-testid="stText"]').filter(has_text="<script>alert(1)</script>")
    shown.first.wait_for(state="visible", timeout=15_000)
    assert page.locator("img[src='x']").count() == 0
    page.get_by_role("tab", name="Failed vs successful").click()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "Trajectories_hostile.png"), full_page=True)
    assert page.evaluate("window.__xss") == 0
    assert dialogs == []


def test_an_uploaded_log_is_previewed_then_imported(
    server: tuple[str, dict], browser: object, tmp_path: Path
) -> None:
    from test_pages import ALFWORLD_LOG

    base, _ids = server
    log = tmp_path / "spraybottle.txt"
    log.write_text(ALFWORLD_LOG)
    page = browser.new_page(viewport={"width": 1400, "height": 1700})  # type: ignore[attr-defined]
    page.goto(f"{base}/Import_Export")
    settle(page, "Import / Export")
    page.locator("input[type='file']").set_input_files(str(log))
    page.get_by_role("button", name="Preview").click()
    page.get_by_text("Preview: nothing has been written yet.").wait_for(timeout=30_000)
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("Imported 1 trajectories").wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "Import_Export_done.png"), full_page=True)
