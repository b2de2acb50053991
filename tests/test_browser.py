"""Real-browser tests: `streamlit run app.py`, every page in Debian's chromium.

Every page opens; the review queue acts on the row a reviewer clicked (issue 16 item 1, seen
only in a browser); hostile data fetches nothing and links nowhere (issue 11 item 8).
Screenshots land in tests/artifacts/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

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
    ("Agents", "Agents", "Per agent"),
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


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:PORT
    url: str  # the database it serves
    ids: dict[str, int]
    queue: list[int]  # pending procedures, in the order the queue shows them


@contextmanager
def streamlit_on(url: str) -> Iterator[str]:
    """`streamlit run app.py` on a free loopback port over database ``url``; its base URL."""
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
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(name="server", scope="module")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make chromium)")
    from test_gate_pages import add_queue
    from test_pages import fill_database

    from memp_core.embeddings import get_embedder
    from memp_core.queue import list_procedures

    db = tmp_path_factory.mktemp("browser") / "memp.db"
    url = f"sqlite:///{db}"
    store = Store(url)
    ids = fill_database(store, get_embedder())
    add_queue(store, get_embedder())
    queue = [p.id or 0 for p in list_procedures(store, status="pending_review").rows]
    store.dispose()
    with streamlit_on(url) as base:
        yield Server(base, url, ids, queue)


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make chromium)")
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


def test_every_page_opens_in_a_real_browser(server: Server, browser: object) -> None:
    base = server.base
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


def test_hostile_trajectory_text_renders_inert(server: Server, browser: object) -> None:
    base, ids = server.base, server.ids
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
    server: Server, browser: object, tmp_path: Path
) -> None:
    from test_pages import ALFWORLD_LOG

    base = server.base
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


# -- the review queue acts on the row that was clicked (issue 16 item 1) ----------------------

ROW_PX = 35  # Streamlit's default dataframe header and row height


def click_row(page: object, row: int) -> None:
    """Tick row ``row`` of the first table (its row marker, left of the first column)."""
    table = page.locator('[data-testid="stDataFrame"]').first  # type: ignore[attr-defined]
    table.locator("canvas").first.wait_for(timeout=30_000)
    box = table.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + ROW_PX * (row + 1) + ROW_PX // 2)  # type: ignore[attr-defined]


def open_heading(page: object) -> str:
    heading = page.get_by_role("heading", name="Procedure ", exact=False)  # type: ignore[attr-defined]
    return str(heading.filter(has_not_text="Procedures").first.inner_text()).strip()


def shoot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_clicked_row_saved_then_approved_approves_the_clicked_procedure(
    server: Server, browser: object
) -> None:
    from memp_core.models import Procedure

    store = Store(server.url)
    seen = {e.id for e in store.audit_events(limit=1000)}
    page = browser.new_page(viewport={"width": 1400, "height": 1700})  # type: ignore[attr-defined]
    page.goto(f"{server.base}/Procedures")
    settle(page, "Procedures")
    row = 3
    picked = server.queue[row]
    click_row(page, row)
    page.get_by_role("heading", name=f"Procedure {picked}", exact=True).wait_for(timeout=30_000)
    settle(page, "Procedures")  # the rerun has ended: no stale elements of the last procedure
    assert page.url.endswith(f"?procedure={picked}")
    shoot(page, "Procedures_1_clicked")
    page.get_by_role("tab", name="Edit").click()
    script = page.get_by_label("Script")
    script.fill("1. Find the thing.\n2. Open the cabinet.\n3. Put the thing in it.")
    script.blur()
    save = page.get_by_role("button", name=f"Save as a new revision of procedure {picked} ")
    save.wait_for(timeout=30_000)
    save.click()
    page.get_by_text(f"Saved a new revision of procedure {picked}:").wait_for(timeout=30_000)
    settle(page, "Procedures")
    # The queue re-sorted (the saved procedure is now the most recent): still the same one.
    assert open_heading(page) == f"Procedure {picked}"
    shoot(page, "Procedures_2_saved")
    revision = store.get(Procedure, picked).current_revision_id
    page.get_by_role("button", name=f"Approve procedure {picked} · revision {revision}").click()
    page.get_by_text(f"Approved procedure {picked}.").wait_for(timeout=30_000)
    settle(page, "Procedures")
    shoot(page, "Procedures_3_approved")
    new = [e for e in store.audit_events(limit=1000) if e.id not in seen]
    approved = [e.object_id for e in new if e.action == "approve"]
    assert approved == [picked]
    assert store.get(Procedure, picked).status == "approved"
    store.dispose()


def decisions(store: Store, seen: set[int]) -> list[tuple[str, int | None]]:
    return [(e.action, e.object_id) for e in store.audit_events(limit=1000) if e.id not in seen
            and e.action in ("approve", "reject")]  # fmt: skip


def test_a_typed_a_is_text_and_a_pressed_a_approves_then_opens_the_next(
    server: Server, browser: object
) -> None:
    """The review shortcuts (A approve, X reject, N skip) act only outside text boxes."""
    store = Store(server.url)
    seen = {e.id for e in store.audit_events(limit=1000)}
    pid, following = server.queue[5], server.queue[6]
    page = browser.new_page(viewport={"width": 1280, "height": 1600})  # type: ignore[attr-defined]
    page.goto(f"{server.base}/Procedures?procedure={pid}")
    settle(page, "Procedures")
    assert open_heading(page) == f"Procedure {pid}"
    comment = page.get_by_label("Comment (optional)")
    comment.click()
    page.keyboard.type("a and x and n")  # type: ignore[attr-defined]
    page.wait_for_timeout(1500)  # type: ignore[attr-defined]  # time for a wrong rerun to start
    settle(page, "Procedures")
    assert decisions(store, seen) == [] and open_heading(page) == f"Procedure {pid}"
    assert comment.input_value() == "a and x and n"
    page.get_by_role("heading", name=f"Procedure {pid}", exact=True).click()  # leave the box
    page.keyboard.press("a")  # type: ignore[attr-defined]
    page.get_by_role("heading", name=f"Procedure {following}", exact=True).wait_for(timeout=30_000)
    settle(page, "Procedures")
    assert decisions(store, seen) == [("approve", pid)]
    assert page.url.endswith(f"procedure={following}")
    shoot(page, "Procedures_4_approved_by_key")
    event = next(e for e in store.audit_events(limit=1000) if e.id not in seen)
    assert event.detail.get("comment") == "a and x and n"
    store.dispose()


def test_a_pending_row_on_the_overview_opens_it_in_the_queue(
    server: Server, browser: object
) -> None:
    from memp_core.overview import pending_reviews

    store = Store(server.url)
    wanted = [p.id for p in pending_reviews(store, 10)][1]
    store.dispose()
    page = browser.new_page(viewport={"width": 1280, "height": 1600})  # type: ignore[attr-defined]
    page.goto(server.base)
    settle(page, "Memp Studio")
    table = page.locator('[data-testid="stDataFrame"]').first
    table.locator("canvas").first.wait_for(timeout=30_000)
    box = table.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + ROW_PX * 2 + ROW_PX // 2)  # type: ignore[attr-defined]
    page.get_by_role("heading", name=f"Procedure {wanted}", exact=True).wait_for(timeout=30_000)
    assert page.url.endswith(f"/Procedures?procedure={wanted}")
    settle(page, "Procedures")
    shoot(page, "Overview_pending_clicked")


def test_a_filtered_queue_and_a_clicked_row_are_one_shareable_url(
    server: Server, browser: object
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1600})  # type: ignore[attr-defined]
    page.goto(f"{server.base}/Procedures?status=%28all%29&q=thing")
    settle(page, "Procedures")
    click_row(page, 1)
    page.wait_for_function("() => location.search.includes('procedure=')", timeout=30_000)  # type: ignore[attr-defined]
    settle(page, "Procedures")
    shared = page.url
    assert "status=%28all%29" in shared and "q=thing" in shared
    opened = open_heading(page)
    other = browser.new_page(viewport={"width": 1280, "height": 1600})  # type: ignore[attr-defined]
    other.goto(shared)  # another person opens the link: the same queue, the same procedure
    settle(other, "Procedures")
    assert open_heading(other) == opened
    box = other.get_by_label("Title contains")
    other.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelector('input[aria-label=\"Title contains\"]')?.value === 'thing'",
        timeout=15_000,
    )
    assert box.input_value() == "thing"


def test_filters_come_back_after_another_page(server: Server, browser: object) -> None:
    """The sidebar's links carry no query string; a page gets back what it showed last."""
    page = browser.new_page(viewport={"width": 1280, "height": 1200})  # type: ignore[attr-defined]
    page.goto(f"{server.base}/Procedures?status=%28all%29&q=thing")
    settle(page, "Procedures")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("link", name="Audit log").click()
    settle(page, "Audit log")
    assert page.url.endswith("/Audit_log")
    sidebar.get_by_role("link", name="Procedures").click()
    page.wait_for_function("() => location.search.includes('q=thing')", timeout=30_000)  # type: ignore[attr-defined]
    settle(page, "Procedures")
    assert page.get_by_label("Title contains").input_value() == "thing"


# -- hostile data fetches nothing and links nowhere (issue 11 item 8) --------------------------


class HitCounter(BaseHTTPRequestHandler):
    """A local web server standing in for an attacker's: it counts every request."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        HitCounter.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(name="attacker", scope="module")
def attacker_fixture() -> Iterator[int]:
    """The port of a local server that counts the requests a page makes to it."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), HitCounter)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()


@pytest.fixture(name="hostile_server", scope="module")
def hostile_server_fixture(
    tmp_path_factory: pytest.TempPathFactory, attacker: int
) -> Iterator[Server]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make chromium)")
    from test_gate_pages import fill_hostile, hostile

    from memp_core.embeddings import get_embedder

    url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'memp.db'}"
    store = Store(url)
    ids = fill_hostile(store, get_embedder(), hostile(attacker))
    store.dispose()
    with streamlit_on(url) as base:
        yield Server(base, url, ids, [])


HOSTILE_PAGES = [
    ("", "Memp Studio"),
    ("Trajectories", "Trajectories"),
    ("Procedures", "Procedures"),
    ("Lineage", "Lineage"),
    ("Learning_curves", "Learning curves"),
    ("Retrieval_playground", "Retrieval playground"),
    ("Experiments", "Experiments"),
    ("Import_Export", "Import / Export"),
    ("Audit_log", "Audit log"),
]


def test_hostile_data_fetches_nothing_and_links_nowhere(
    hostile_server: Server, browser: object
) -> None:
    base = hostile_server.base
    origin = urlsplit(base).netloc
    foreign: dict[str, list[str]] = {}
    page = browser.new_page(viewport={"width": 1400, "height": 1700})  # type: ignore[attr-defined]
    HitCounter.hits.clear()
    for path, title in HOSTILE_PAGES:
        page.goto(f"{base}/{path}")
        settle(page, title)
        for tab in ("Memory it was given", "Failed vs successful", "Evidence and history"):
            tabs = page.get_by_role("tab", name=tab)
            if tabs.count():
                tabs.first.click()
        page.wait_for_timeout(500)
        hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
        away = [h for h in hrefs if urlsplit(h).netloc != origin]
        if away:
            foreign[path or "Overview"] = away
        shoot(page, f"hostile_{path or 'Overview'}")
    assert HitCounter.hits == []
    assert foreign == {}
