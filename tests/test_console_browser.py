"""The web console in a real headless Chromium (Debian's ``chromium``), driven by Playwright.

One browser for the whole module, with a fresh profile directory; the console runs under
uvicorn on 127.0.0.1 in a thread, over a real store. Nothing here downloads a browser: the
test uses ``/usr/bin/chromium`` (``.ci/run`` installs it) and skips, saying why, only when that
binary is missing.

The screenshots in ``docs/`` come from this run: set ``SEVERANCE_CONSOLE_SCREENSHOTS=docs``
to write them there (otherwise they go to a temporary directory, and are still checked).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

import uvicorn  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

import severance  # noqa: E402
from severance.cli.console import open_in_browser  # noqa: E402
from severance.console import console_origins, create_app  # noqa: E402
from severance.console.serving import bind  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[1]
# A click that submits a form returns before the next page has loaded: every read after one
# goes through ``expect``, which retries, never a one-shot read of whatever page is up.
expect.set_options(timeout=15_000)
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run"
        " does this)",
        allow_module_level=True,
    )

WORK = [
    ("Q3 launch moved to Oct 12", "fact", ["launch", "q3"]),
    ("Standup is at 9:30 in room Ganymede", "fact", ["meetings"]),
    ("Acme's renewal is due in January; Dana owns it", "note", ["acme"]),
    ("The staging database is called pg-stage-2", "fact", ["infra"]),
    ("Prefers short written updates over calls", "preference", []),
    (
        '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">',
        "note",
        ["xss"],
    ),
]
HOME = [
    ("Dentist appointment on Friday at 4pm", "episode", ["health"]),
    ("Buy oat milk and coffee beans", "note", ["shopping"]),
    ("Mum's birthday is on 14 March", "fact", ["family"]),
]
SIDE = [("Sketch ideas for the pottery stall", "note", [])]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[severance.Store]:
    root = tmp_path_factory.mktemp("console-browser")
    s = severance.Store.init(root / "store", key_file=root / "keys" / "master.key")
    for persona, floor, rule in (
        ("work", "office", {"clients": ["claude-code", "cursor"], "paths": ["~/work/**"]}),
        ("home", "house", {"default": True}),
        ("side", "studio", {"paths": ["~/studio/**"]}),
    ):
        s.add_persona(persona)
        s.add_floor(floor, persona, **rule)
    for floor, memories in (("office", WORK), ("house", HOME), ("studio", SIDE)):
        with s.enter(floor=floor) as session:
            for i, (text, kind, tags) in enumerate(memories):
                # Spread over the autumn, so the screenshots look like a real persona's.
                when = datetime(2026, 9, 2, 9, 30, tzinfo=UTC) + timedelta(days=11 * i, hours=i)
                session.remember(text, kind=kind, tags=tags, occurred_at=when)
    yield s
    s.close()


@pytest.fixture(scope="module")
def console(store: severance.Store) -> Iterator[object]:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(store, origins=console_origins("127.0.0.1", port))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.02)
    yield app.state.console
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=LAPTOP,
        )
        context.set_default_timeout(15_000)
        yield context
        context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("SEVERANCE_CONSOLE_SCREENSHOTS")
    where = (ROOT / wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture
def page(browser_context, console):
    """A page logged in afresh (cookies cleared: a new browser session, nothing awake)."""
    browser_context.clear_cookies()
    p = browser_context.new_page()
    p.set_viewport_size(LAPTOP)
    problems: list[str] = []
    p.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(str(e)))
    p.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    p.goto(console.login_url())
    p.wait_for_url(console.origins.primary + "/")  # the login page moves on by itself
    p.problems = problems
    yield p
    # No CSP violation, script error or dialog on any page the test visited.
    assert problems == []
    p.close()


def snap(page, shots: Path, name: str, phone: bool = False) -> None:
    if phone:
        page.set_viewport_size(PHONE)
    path = shots / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    if phone:
        page.set_viewport_size(LAPTOP)


def origin_of(page) -> str:
    parts = urlsplit(page.url)
    return f"{parts.scheme}://{parts.netloc}"


def wake(page, persona: str) -> None:
    page.goto(origin_of(page) + "/")
    page.get_by_role("button", name=f"Wake {persona}").click()
    page.wait_for_url("**/memories")


def texts_of(memories: list[tuple[str, str, list[str]]]) -> list[str]:
    return [t for t, _, _ in memories if "<" not in t]


def test_login_by_url_lands_on_the_persona_list(page, console, shots) -> None:
    assert page.url.endswith("/")  # the token left the address bar
    assert "token" not in page.url
    assert page.get_by_role("heading", name="Personas").is_visible()
    body = page.inner_text("main")
    for text in texts_of(WORK) + texts_of(HOME):
        assert text not in body
    cookies = page.context.cookies()
    assert any(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
    snap(page, shots, "personas")
    snap(page, shots, "personas-phone", phone=True)


def test_a_used_login_link_is_refused_in_the_browser(page, console) -> None:
    url = console.login_url()
    page.goto(url)
    page.wait_for_url(origin_of(page) + "/")
    page.context.clear_cookies()
    response = page.goto(url)
    assert response is not None and response.status == 403
    assert "does not work" in page.inner_text("main")
    page.problems.remove(
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    )


def test_a_login_link_opened_from_elsewhere_logs_in(page, console, tmp_path) -> None:
    # A navigation another site (or a file) starts withholds SameSite=Strict cookies from its
    # whole redirect chain: a 303 from /login used to land on "Not logged in", token spent.
    # The desktop browser is started on such a file (the token stays off its command line).
    page.context.clear_cookies()
    opened: list[str] = []
    open_in_browser(console.login_url(), tmp_path, opener=opened.append)
    page.goto(opened[0])
    page.wait_for_url(console.origins.primary + "/")
    assert page.get_by_role("heading", name="Personas").is_visible()
    page.go_back()  # the spent login URL is not left in the history
    assert "/login" not in page.url


def test_waking_and_searching(page, shots) -> None:
    wake(page, "work")
    assert page.locator("#awake-persona").inner_text().startswith("work")
    listed = page.inner_text("main")
    assert all(t in listed for t in texts_of(WORK))
    page.get_by_label("Search").fill("when is the launch?")
    page.get_by_role("button", name="Search").click()
    first = page.locator(".result").first
    expect(first).to_contain_text("Q3 launch moved to Oct 12")
    assert re.search(r"score \d\.\d{3}", first.inner_text())
    assert "dense #" in first.inner_text()
    snap(page, shots, "search")
    snap(page, shots, "search-phone", phone=True)


def test_a_persona_text_never_appears_in_pages_for_another(page, console) -> None:
    wake(page, "work")
    wake(page, "home")  # switching puts work to sleep
    origin = origin_of(page)
    seen = []
    for path in (
        "/",
        "/memories",
        "/memories?q=launch+standup+renewal",
        "/audit",
        "/floors",
        "/crossings",
        "/audit/store",
    ):
        page.goto(origin + path)
        seen.append(page.content())
    page.goto(origin + "/memories?q=dentist")
    page.locator(".result a").first.click()
    page.wait_for_url("**/memories/*")
    page.wait_for_load_state()
    seen.append(page.content())
    # Back through the history to the pages drawn while work was awake: never from a cache.
    for _ in range(len(seen) + 3):
        if page.go_back() is None:
            break
        seen.append(page.content())
    for html in seen:
        for text in texts_of(WORK):
            assert text not in html
    assert any("Dentist appointment" in html for html in seen)


def test_opening_a_memory_editing_it_and_its_history(page, shots) -> None:
    wake(page, "work")
    page.get_by_label("Search").fill("staging database")
    page.get_by_role("button", name="Search").click()
    page.locator(".result a", has_text="pg-stage-2").click()
    expect(page.locator("#memory-text")).to_have_text("The staging database is called pg-stage-2")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Text").fill("The staging database is called pg-stage-3 since the move")
    page.get_by_role("button", name="Save version 2").click()
    expect(page.locator("main")).to_contain_text("Saved as version 2")
    history = page.locator(".history")
    assert history.locator("del").first.inner_text() == "pg-stage-2"
    assert "pg-stage-3" in history.locator("ins").first.inner_text()
    assert "Version 1" in history.inner_text()
    snap(page, shots, "memory")


def test_forgetting_asks_then_forgets(page) -> None:
    wake(page, "work")
    page.locator(".result a", has_text="short written updates").click()
    page.get_by_role("link", name="Forget…").click()
    expect(page.locator("main")).to_contain_text("Forget this memory?")
    page.get_by_role("button", name="Forget it").click()
    page.wait_for_url("**/memories")
    page.wait_for_load_state()
    assert "short written updates" not in page.inner_text("main")


def test_stored_markup_stays_inert_text(page) -> None:
    wake(page, "work")
    page.locator(".result a", has_text="document.title").click()
    expect(page.locator("#memory-text")).to_contain_text("<script>")
    assert page.title() != "pwned"
    page.go_back()
    assert page.title() != "pwned"
    assert page.locator("main img").count() == 0


def test_floors_list_and_test(page, shots) -> None:
    origin = origin_of(page)
    page.goto(origin + "/floors")
    rows = page.locator("table.floors tbody tr td:nth-child(2) strong")
    expect(rows).to_have_text(["office", "house", "studio"])
    page.locator("input[name=client]").fill("cursor")
    page.locator("input[name=path]").fill("~/work/acme")
    page.get_by_role("button", name="Test").click()
    answer = page.locator("#floor-answer")
    expect(answer).to_contain_text("This wakes work through floor office")
    expect(answer).to_contain_text("~/work/**")
    snap(page, shots, "floors")
    page.get_by_role("button", name="Move floor studio up").click()
    expect(page.locator("main")).to_contain_text("Moved floor studio to position 2.")
    expect(rows).to_have_text(["office", "studio", "house"])
    page.get_by_role("button", name="Move floor studio down").click()
    expect(page.locator("main")).to_contain_text("Moved floor studio to position 3.")
    expect(rows).to_have_text(["office", "house", "studio"])


def test_a_reintegration_review_excludes_one_memory_and_runs(page, store, shots) -> None:
    origin = origin_of(page)
    page.goto(origin + "/crossings")
    page.get_by_label("Source persona").select_option("work")
    page.get_by_label("Target persona").select_option("home")
    page.get_by_label("Kinds").fill("fact")
    page.get_by_role("button", name="Dry run and review").click()
    page.wait_for_url("**/crossings/review/*")
    expect(page.locator("#plan-summary")).to_contain_text("3 selected")  # work's three facts
    expect(page.locator("#ticked-count")).to_contain_text("3 of 3 ticked")
    page.get_by_label("Standup is at 9:30 in room Ganymede").uncheck()
    expect(page.locator("#ticked-count")).to_contain_text("2 of 3 ticked")
    snap(page, shots, "review")
    page.get_by_role("button", name="Run: copy the ticked memories").click()
    result = page.locator("#result-summary")
    expect(result).to_contain_text("2 crossed")
    expect(result).to_contain_text("1 excluded by you")
    expect(page.locator("#result-audit")).to_contain_text("reintegrated_into")
    snap(page, shots, "reintegrated")
    with store.enter(floor="house") as home:
        texts = {m.text for m in home.memories(limit=100).items}
    assert "Standup is at 9:30 in room Ganymede" not in texts
    assert any(t.startswith("Q3 launch") for t in texts)


def test_an_override_counts_down(page, shots) -> None:
    origin = origin_of(page)
    # This device's clock is an hour ahead of the server's: the countdown once read "expired"
    # at once and reloaded the page in a loop.
    page.clock.install(time=datetime.now(UTC) + timedelta(hours=1))
    page.goto(origin + "/crossings")
    form = page.locator("form", has=page.get_by_role("button", name="Start the override"))
    form.locator("select[name=persona]").select_option("side")
    form.get_by_label("Minutes").fill("5")
    form.get_by_label("Reason").fill("pottery fair tomorrow")
    form.get_by_role("button", name="Start the override").click()
    page.wait_for_url("**/memories")
    countdown = page.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"^[45]:\d\d left$"))
    first = countdown.inner_text()
    page.wait_for_function(
        "(t) => document.querySelector('.countdown').textContent !== t", arg=first
    )
    snap(page, shots, "override")


def test_clean_slate_waits_for_the_name(page, store, shots) -> None:
    origin = origin_of(page)
    page.goto(origin + "/personas/side/clean-slate")
    erase = page.get_by_role("button", name="Erase side for good")
    expect(erase).to_be_disabled()
    page.get_by_label("Type side to confirm").fill("sid")
    expect(erase).to_be_disabled()
    page.get_by_label("Type side to confirm").fill("side")
    expect(erase).to_be_enabled()
    snap(page, shots, "clean-slate")
    erase.click()
    page.wait_for_url(origin + "/")
    expect(page.locator("main")).to_contain_text("gone for good")
    assert "side" not in [p.name for p in store.personas()]


def test_the_store_audit_verifies(page, shots) -> None:
    origin = origin_of(page)
    page.goto(origin + "/audit/store")
    expect(page.locator("#verify")).to_contain_text("✓ Verified")
    events = page.locator("table.audit tbody tr td:nth-child(3)").all_inner_texts()
    assert "clean_slate" in events and "reintegrated_into" in events and "override" in events
    snap(page, shots, "audit")
