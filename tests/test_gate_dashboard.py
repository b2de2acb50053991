"""The review gate on the network (issue 11, items 1-3 and the smaller ones): each attack on
the dashboard, its sign-in and its settings, as a test.

Dashboards run as real `memp dashboard` subprocesses on free 127.0.0.1 ports; sign-in runs
through AppTest against real credentials files; the database is a real SQLite file.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jwt
import pytest
import yaml
from sqlalchemy import text
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from memp_core.cli import app, dashboard_plan
from memp_core.config import PROJECT_ROOT, Settings, get_settings, safe_url
from memp_core.credentials import (
    NETWORK_OPT_OUT_ENV,
    LoginThrottle,
    load_credentials,
    read_token,
    record_sign_out,
    signed_out_since,
)
from memp_core.embeddings import packaged_model_dir
from memp_core.errors import ConfigError, StoreError
from memp_core.models import Trajectory
from memp_core.store import Store, TrajectoryFilter
from ui.auth import visitor_allowed

runner = CliRunner()
GOOD_KEY = "k3Vq9w-Zt1pX8rN2bL7yH4sD6fJ0mQ5cE_aWuTgYoRi"  # 43 random-looking characters
KEY_ADVICE = "secrets.token_urlsafe(32)"


# -- helpers --------------------------------------------------------------------------


def credentials_yaml(path: Path, *, key: str = GOOD_KEY, **overrides: object) -> Path:
    """A credentials file for rita (reviewer) and vera (viewer); ``overrides`` replace
    top-level sections."""
    from streamlit_authenticator import Hasher

    data: dict[str, object] = {
        "credentials": {"usernames": {
            "rita": {"name": "Rita Reviewer", "email": "rita@example.com",
                     "password": Hasher.hash("rita-pass"), "roles": ["reviewer"]},
            "vera": {"name": "Vera Viewer", "email": "vera@example.com",
                     "password": Hasher.hash("vera-pass"), "roles": ["viewer"]},
        }},
        "cookie": {"name": "memp_test", "key": key, "expiry_days": 7},
    }  # fmt: skip
    data.update(overrides)
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dashboard(db_url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`memp dashboard --no-browser ...` in its own session (process group), no credentials."""
    env = dict(os.environ, MEMP_DATABASE_URL=db_url, HF_HUB_OFFLINE="1")
    env.pop("MEMP_AUTH_FILE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "memp_core", "dashboard", "--no-browser", *args],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no dashboard on 127.0.0.1:{port} within 60 s: {log.read_text()}")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (Linux /proc)."""
    found: set[str] = set()
    for family, table in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            (addr_hex, port_hex), state = fields[1].split(":"), fields[3]
            if state != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr_hex)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


@pytest.fixture(autouse=True)
def never_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CliRunner test that wrongly got past the checks must fail, not turn the test
    process into a Streamlit server (`memp dashboard` execs Streamlit)."""

    def refuse(*_args: object) -> None:
        raise AssertionError("memp dashboard launched Streamlit instead of refusing")

    monkeypatch.setattr(os, "execve", refuse)


def one_line_error(result: object) -> str:
    out = result.output.strip()  # type: ignore[attr-defined]
    assert result.exit_code == 1, out  # type: ignore[attr-defined]
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    return out


# -- 1. anyone on the network is admin ---------------------------------------------------


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_dashboard_without_credentials_listens_on_loopback_only(
    db_url: str, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "dashboard.log"
    proc = start_dashboard(db_url, log, "--port", str(port))
    try:
        wait_healthy(port, proc, log)
        addresses = listening_addresses(port)
    finally:
        kill_group(proc)
    assert addresses, "nothing listens on the port"
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses
    assert f"http://127.0.0.1:{port}" in log.read_text()  # it says where it really is


def test_network_host_without_credentials_is_refused(db_url: str) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10", "dashboard.example.org"):
        out = one_line_error(
            runner.invoke(app, ["dashboard", "--host", host], env={"MEMP_AUTH_FILE": None})
        )
        assert f"--host {host}" in out and "--insecure-no-sign-in-on-network" in out


def test_the_loudly_named_opt_out_serves_the_network_and_says_so(db_url: str) -> None:
    plan = dashboard_plan(get_settings(), host="0.0.0.0", port=8600, headless=True, insecure=True)
    assert plan.argv[plan.argv.index("--server.address") + 1] == "0.0.0.0"
    assert plan.env[NETWORK_OPT_OUT_ENV] == "1"
    assert any("every visitor is admin" in line for line in plan.banner)
    loopback = dashboard_plan(get_settings(), host="::1", port=8600, headless=True, insecure=False)
    assert NETWORK_OPT_OUT_ENV not in loopback.env and "http://[::1]:8600" in loopback.banner[0]


def test_without_credentials_a_visitor_from_another_machine_is_refused_by_the_page() -> None:
    # `streamlit run app.py --server.address 0.0.0.0` bypasses the CLI: the page refuses too.
    assert visitor_allowed(None, opted_out=False)  # Streamlit's way of saying "loopback"
    assert visitor_allowed("::ffff:127.0.0.1", opted_out=False)
    for remote in ("192.0.2.10", "2001:db8::1", "::ffff:192.0.2.10", "garbage"):
        assert not visitor_allowed(remote, opted_out=False)
    assert visitor_allowed("192.0.2.10", opted_out=True)


def test_a_network_host_with_valid_credentials_is_served(db_url: str, tmp_path: Path) -> None:
    auth = credentials_yaml(tmp_path / "auth.yaml")
    plan = dashboard_plan(
        get_settings(auth_file=auth), host="0.0.0.0", port=8600, headless=True, insecure=False
    )
    assert plan.env["MEMP_AUTH_FILE"] == str(auth.resolve())
    assert any("sign-in required" in line for line in plan.banner)


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups")
def test_sigterm_stops_streamlit(db_url: str, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "dashboard.log"
    proc = start_dashboard(db_url, log, "--port", str(port))
    try:
        wait_healthy(port, proc, log)
        os.kill(proc.pid, signal.SIGTERM)  # what a service manager or `kill` sends
        proc.wait(timeout=30)
        # Nothing of the dashboard is left running: its process group is empty.
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
    finally:
        kill_group(proc)


def test_postgres_password_is_never_printed(db_url: str) -> None:
    url = "postgresql+psycopg://memp:hunter2@db.internal:5432/memp"
    plan = dashboard_plan(
        get_settings(database_url=url), host="127.0.0.1", port=8600, headless=True, insecure=False
    )
    assert "hunter2" not in " ".join(plan.banner) and "memp:***@db.internal" in plan.banner[0]
    assert safe_url("postgresql://u:hunter2@h:notaport/db") == "postgresql://u:***@h:notaport/db"


def test_init_never_prints_a_postgres_password(pg_url: str) -> None:
    with_password = pg_url.replace("postgres:@", "postgres:hunter2@")  # trust auth ignores it
    for args in (["init"], ["init", "--json"]):
        res = runner.invoke(app, [*args, "--db", with_password])
        assert res.exit_code == 0, res.output
        assert "hunter2" not in res.output and "***" in res.output


# -- 2. a forgeable cookie -----------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "<random secret>",
        "changeme",
        "secret",
        "short-but-random-Zx81",
        "a" * 40,
        None,
        "",
        "PASTE-YOUR-GENERATED-KEY-HERE",
        "paste-your-generated-key-here-from-the-readme",
    ],
)
def test_placeholder_cookie_key_is_refused(key: str | None, tmp_path: Path) -> None:
    auth = credentials_yaml(tmp_path / "auth.yaml", key=key)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cookie.key") as err:
        load_credentials(auth)
    assert KEY_ADVICE in str(err.value) and str(auth) in str(err.value)


def test_placeholder_cookie_key_is_refused_before_launch(db_url: str, tmp_path: Path) -> None:
    auth = credentials_yaml(tmp_path / "auth.yaml", key="<random secret>")
    out = one_line_error(runner.invoke(app, ["dashboard"], env={"MEMP_AUTH_FILE": str(auth)}))
    assert "placeholder" in out and KEY_ADVICE in out


def test_placeholder_cookie_key_is_refused_at_page_load(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = credentials_yaml(tmp_path / "auth.yaml", key="<random secret>")
    monkeypatch.setenv("MEMP_AUTH_FILE", str(auth))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] and "placeholder" in at.error[0].value
    assert not at.text_input and not at.metric  # no form to sign in with, no data


# -- 3. sign-in rewrites the credentials file; malformed files --------------------------


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].set_value(username)
    at.text_input[1].set_value(password)
    at.button[0].click().run()
    return at


def signed_in_as(at: AppTest) -> str | None:
    return next((t.value for t in at.sidebar.text if "role:" in t.value), None)


def test_sign_in_never_writes_the_credentials_file(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = credentials_yaml(tmp_path / "auth.yaml")
    auth.chmod(0o400)  # a mounted secret (root may still write: we compare bytes and mtime)
    before = (auth.read_bytes(), auth.stat().st_mtime_ns)
    monkeypatch.setenv("MEMP_AUTH_FILE", str(auth))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    sign_in(at, "rita", "wrong")
    assert any("incorrect" in e.value for e in at.error)
    sign_in(at, "rita", "rita-pass")
    assert not at.exception, at.exception
    assert signed_in_as(at) == "Rita Reviewer (rita) · role: reviewer"
    at.sidebar.button(key="auth_logout").click().run()
    assert not at.exception, at.exception
    assert (auth.read_bytes(), auth.stat().st_mtime_ns) == before


def test_failed_sign_ins_lock_the_username(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMP_AUTH_FILE", str(credentials_yaml(tmp_path / "auth.yaml")))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    for _ in range(LoginThrottle.MAX_FAILURES):
        sign_in(at, "rita", "guess")
    sign_in(at, "rita", "rita-pass")  # the right password, too late
    assert not at.exception, at.exception
    assert any("Too many failed sign-ins" in e.value for e in at.error)
    assert signed_in_as(at) is None and not at.metric
    sign_in(at, "vera", "vera-pass")  # another person is not locked out
    assert signed_in_as(at) == "Vera Viewer (vera) · role: viewer"


def test_a_locked_username_opens_again_after_the_window() -> None:
    throttle = LoginThrottle(max_failures=3, window_s=60)
    for t in (0.0, 1.0, 2.0):
        throttle.failed("Rita", now=t)
    assert throttle.locked_for("rita", now=30) == pytest.approx(30)
    assert throttle.locked(now=30) == {"rita"}
    assert throttle.locked_for("rita", now=60.5) == 0 and throttle.locked(now=61) == set()
    throttle.failed("vera", now=0)
    throttle.succeeded("vera")
    assert throttle.locked_for("vera", now=1) == 0


def _users(**rita: object) -> dict[str, object]:
    entry = {"name": "Rita", "password": "$2b$12$" + "a" * 53, "roles": ["reviewer"]}
    entry.update(rita)
    return {"usernames": {"rita": entry}}


COOKIE = {"name": "memp_test", "key": GOOD_KEY, "expiry_days": 7}
MALFORMED: dict[str, tuple[str, str]] = {
    "empty": ("", "empty"),
    "yaml error": ("credentials: [unclosed\ncookie: {", "not valid YAML"),
    "a list": ("- rita\n- vera\n", "expected a mapping"),
    "no cookie section": (yaml.safe_dump({"credentials": _users()}), "no 'cookie' section"),
    "no users": (yaml.safe_dump({"cookie": COOKIE}), "no users"),
    "roles as a string": (
        yaml.safe_dump({"credentials": _users(roles="reviewer"), "cookie": COOKIE}),
        "roles must be a list",
    ),
    "plaintext password": (
        yaml.safe_dump({"credentials": _users(password="rita-pass"), "cookie": COOKIE}),
        "bcrypt hash",
    ),
    "unknown role": (
        yaml.safe_dump({"credentials": _users(roles=["superuser"]), "cookie": COOKIE}),
        "unknown role 'superuser'",
    ),
    "no roles": (yaml.safe_dump({"credentials": _users(roles=[]), "cookie": COOKIE}), "no roles"),
    "bad expiry": (
        yaml.safe_dump({"credentials": _users(), "cookie": {**COOKIE, "expiry_days": "week"}}),
        "expiry_days",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_credentials_files_are_one_line_each(
    case: str, db_url: str, tmp_path: Path
) -> None:
    content, problem = MALFORMED[case]
    auth = tmp_path / "auth.yaml"
    auth.write_text(content)
    out = one_line_error(runner.invoke(app, ["dashboard"], env={"MEMP_AUTH_FILE": str(auth)}))
    assert str(auth) in out and problem in out
    assert "rita-pass" not in out  # a plaintext password is never echoed


@pytest.mark.parametrize("case", ["yaml error", "roles as a string", "plaintext password"])
def test_malformed_credentials_are_one_error_line_at_page_load(
    case: str, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = tmp_path / "auth.yaml"
    auth.write_text(MALFORMED[case][0])
    monkeypatch.setenv("MEMP_AUTH_FILE", str(auth))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and MALFORMED[case][1] in at.error[0].value
    assert not at.text_input and not at.metric


def test_missing_credentials_file_is_one_line(db_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    out = one_line_error(runner.invoke(app, ["dashboard"], env={"MEMP_AUTH_FILE": str(missing)}))
    assert str(missing) in out and "cannot read" in out


# -- the stolen cookie ---------------------------------------------------------------------


def library_cookie(key: str, username: str, issued: float, days: float = 7) -> str:
    """A remember-me cookie exactly as streamlit-authenticator 0.4 signs one."""
    return jwt.encode({"username": username, "exp_date": issued + days * 86_400}, key, "HS256")


def test_signed_out_cookie_is_refused(store: Store, tmp_path: Path) -> None:
    creds = load_credentials(credentials_yaml(tmp_path / "auth.yaml"))
    stolen = library_cookie(GOOD_KEY, "rita", time.time() - 60)
    token = read_token(creds, stolen)
    assert token is not None and not signed_out_since(store, "rita", token.issued_at)
    record_sign_out(store, creds.users["rita"].actor(), stolen)
    assert signed_out_since(store, "rita", token.issued_at)  # the copy no longer signs in
    fresh = read_token(creds, library_cookie(GOOD_KEY, "rita", time.time() + 1))
    assert fresh is not None and not signed_out_since(store, "rita", fresh.issued_at)
    assert not signed_out_since(store, "vera", token.issued_at)
    event = store.audit_events(limit=1)[0]
    assert (event.actor, event.action, event.object_type) == ("human:rita", "sign-out", "session")
    assert len(event.detail["token_sha256"]) == 64


@pytest.mark.parametrize(
    "forged",
    [
        library_cookie("another-key-of-more-than-32-bytes-0123456789", "rita", time.time()),
        library_cookie(GOOD_KEY, "mallory", time.time()),  # not in the file
        library_cookie(GOOD_KEY, "rita", time.time() - 8 * 86_400),  # expired
        jwt.encode({"username": "rita", "exp_date": "soon"}, GOOD_KEY, "HS256"),
        jwt.encode({"username": "rita"}, "", algorithm="none"),
        "not-a-token",
    ],
)
def test_forged_or_expired_cookies_sign_nobody_in(forged: str, tmp_path: Path) -> None:
    creds = load_credentials(credentials_yaml(tmp_path / "auth.yaml"))
    assert read_token(creds, forged) is None


# -- smaller ones: settings, URLs, schema, cache, filters --------------------------------


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_busy_timeout_abc_is_one_line(value: str, db_url: str) -> None:
    out = one_line_error(runner.invoke(app, ["init"], env={"MEMP_SQLITE_BUSY_TIMEOUT": value}))
    assert f"MEMP_SQLITE_BUSY_TIMEOUT='{value}'" in out


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("not a url", "cannot read the database URL"),
        ("foo://x/y", "not 'foo'"),
        ("mysql://u:hunter2@h/db", "not 'mysql'"),
        ("postgresql+nodriver://u:hunter2@h/db", "Can't load plugin"),
    ],
)
def test_unparseable_or_unknown_dialect_url_is_one_line(url: str, problem: str) -> None:
    out = one_line_error(runner.invoke(app, ["init", "--db", url]))
    assert problem in out and "hunter2" not in out


def test_database_from_a_newer_schema_is_refused(db_url: str, store: Store) -> None:
    with store.transaction() as s:
        s.connection().execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    out = one_line_error(runner.invoke(app, ["init"]))
    assert "'9999_future'" in out and "newer release" in out
    with pytest.raises(StoreError, match="does not know"):
        Store(db_url)


def test_unwritable_cache_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # no folder can be made under it, even by root
    with pytest.raises(ConfigError, match="MEMP_CACHE_DIR=") as err:
        packaged_model_dir(blocker / "cache")
    assert "\n" not in str(err.value)


def test_sqlite_uri_is_not_taken_as_a_relative_path(db_url: str, store: Store) -> None:
    uri = Settings(database_url="sqlite:///file:data/x.db?mode=ro&uri=true")
    assert (
        uri.resolved_database_url() == f"sqlite:///file:{PROJECT_ROOT}/data/x.db?mode=ro&uri=true"
    )
    path = db_url.removeprefix("sqlite:///")
    with store.transaction() as s:
        s.add(Trajectory(task="heat some egg", success=True))
    read_only = Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        assert read_only.counts().trajectories == 1  # the same file, opened read-only
        with pytest.raises(StoreError, match="readonly"), read_only.transaction() as s:
            s.add(Trajectory(task="write through a read-only URI"))
    finally:
        read_only.dispose()
    assert not list(PROJECT_ROOT.glob("file:*"))  # no stray file named after the URI


def test_percent_and_underscore_in_the_text_filter_are_literal(store: Store) -> None:
    with store.transaction() as s:
        for task in ("heat 100% of the egg", "heat 1000 eggs", "put a_b in c", "put axb in c"):
            s.add(Trajectory(task=task, success=True))
    tasks = lambda q: sorted(t.task for t in store.list_trajectories(TrajectoryFilter(text=q)).rows)  # noqa: E731
    assert tasks("100%") == ["heat 100% of the egg"]
    assert tasks("a_b") == ["put a_b in c"]
    assert tasks("%") == ["heat 100% of the egg"]


# -- the stolen cookie, end to end in a real browser ------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_a_cookie_copied_before_sign_out_no_longer_signs_in(db_url: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    port, log = free_port(), tmp_path / "dashboard.log"
    env = dict(os.environ, MEMP_DATABASE_URL=db_url, HF_HUB_OFFLINE="1",
               MEMP_AUTH_FILE=str(credentials_yaml(tmp_path / "auth.yaml")))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "memp_core", "dashboard", "--no-browser", "--port", str(port)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    signed_in_text, form_text = "role: reviewer", "Sign in to use Memp Studio"
    try:
        wait_healthy(port, proc, log)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"]
            )

            def visit(cookies: list[dict]) -> str:  # type: ignore[type-arg]
                """Open the dashboard in a fresh browser with these cookies: who is it?"""
                ctx = browser.new_context()
                ctx.add_cookies(cookies)  # type: ignore[arg-type]
                page = ctx.new_page()
                page.goto(base)
                either = page.get_by_text(signed_in_text).or_(page.get_by_text(form_text))
                either.first.wait_for(timeout=60_000)
                seen = signed_in_text if page.get_by_text(signed_in_text).count() else form_text
                ctx.close()
                return seen

            owner = browser.new_context()
            page = owner.new_page()
            page.goto(base)
            page.get_by_role("textbox", name="Username").fill("rita")
            page.get_by_role("textbox", name="Password").fill("rita-pass")
            page.get_by_role("button", name="Login").click()
            page.get_by_text(signed_in_text).wait_for(timeout=60_000)
            page.wait_for_function("() => document.cookie.includes('memp_test=')", timeout=30_000)
            stolen = [c for c in owner.cookies() if c["name"] == "memp_test"]
            assert visit(stolen) == signed_in_text  # the copy works while rita is signed in
            page.get_by_role("button", name="Sign out").click()
            page.get_by_text(form_text).wait_for(timeout=60_000)
            assert visit(stolen) == form_text  # and not after she signed out
            browser.close()
    finally:
        kill_group(proc)


def test_dashboard_without_a_terminal_or_display_serves_and_never_prompts(
    db_url: str, tmp_path: Path
) -> None:
    # As a service, a container or `ssh -T` runs it: no --no-browser, stdin closed, no DISPLAY.
    port, log = free_port(), tmp_path / "dashboard.log"
    env = dict(os.environ, MEMP_DATABASE_URL=db_url, HF_HUB_OFFLINE="1")
    for name in ("MEMP_AUTH_FILE", "DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "memp_core", "dashboard", "--port", str(port)],
        env=env, stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_healthy(port, proc, log)
    finally:
        kill_group(proc)
    out = log.read_text()
    assert "Email" not in out and f"http://127.0.0.1:{port}" in out


def test_the_browser_opens_only_where_a_display_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from memp_core.opener import display_available

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_available()
    monkeypatch.setenv("DISPLAY", ":0")
    assert display_available()
    plan = dashboard_plan(get_settings(), host="0.0.0.0", port=8600, headless=False, insecure=True)
    assert plan.argv[plan.argv.index("--server.headless") + 1] == "true"  # never Streamlit's prompt
    assert plan.local_url == "http://127.0.0.1:8600"
