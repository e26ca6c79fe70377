"""The web console under a hostile review: what an attacker, a second tab, a second process on
the same store, or a demanding user would try, each found wrong once and kept right here.

In-process over HTTP (Starlette's test client, real store files); the real-browser checks of
the same review are in ``test_console_browser.py``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import severance
from severance.cli.console import open_in_browser
from severance.console import create_app
from severance.console.app import MAX_FORM_BYTES
from severance.console.security import Origins
from severance.console.serving import console_origins
from severance.console.state import BrowserState
from severance.crossings import Selection
from test_console import (
    ORIGIN,
    REFRESH,
    VAULT_PASSPHRASE,
    Browser,
    FakeClock,
    anonymous,
    events,
    make_store,
)

MARKUP = '<script>alert(1)</script><img src=x onerror="alert(2)">'


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[severance.Store, dict[str, list[str]], Path]]:
    store, ids = make_store(tmp_path)
    yield store, ids, tmp_path
    store.close()


@pytest.fixture
def app(setup):
    return create_app(setup[0], origins=console_origins("127.0.0.1", 8767), clock=FakeClock())


@pytest.fixture
def browser(app) -> Iterator[Browser]:
    b = Browser(app)
    yield b
    b.client.close()


def state_of(app, browser: Browser) -> BrowserState:
    console = app.state.console
    session = console.sessions.get(browser.client.cookies.get(console.origins.cookie_name))
    assert session is not None
    return session.state


def error_of(html: str) -> str:
    found = re.search(r'class="error"[^>]*>([^<]*)<', html)
    return found.group(1) if found else ""


# -- login and origins -------------------------------------------------------------------------
def test_logging_in_again_ends_the_previous_browser_session(app, browser, setup) -> None:
    # A second login link opened in the same browser used to leave the first session, and
    # the persona it had woken, awake and unreachable until it idled out (12 hours).
    browser.wake("work", "office")
    again = browser.get(app.state.console.login_url())
    assert again.status_code == 200
    assert events(setup[0])[-1] == ("exit", "work")
    assert "no persona awake" in browser.get("/").text


@pytest.mark.parametrize(("scheme", "port"), [("http", 80), ("https", 443)])
def test_a_console_on_its_schemes_default_port_answers_browsers(setup, scheme, port) -> None:
    # Browsers leave the default port out of Host and Origin; the console once refused them all.
    tls = scheme == "https"
    origin = f"{scheme}://127.0.0.1"
    app = create_app(setup[0], origins=console_origins("127.0.0.1", port, tls=tls))
    client = TestClient(app, base_url=origin, follow_redirects=False)
    client.headers["origin"] = origin
    assert client.get(app.state.console.login_url()).status_code == 200
    page = client.get("/")
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    woken = client.post("/wake", data={"csrf": csrf[1], "persona": "work", "floor": "office"})
    assert woken.status_code == 303
    assert Origins([f"{scheme}://127.0.0.1:{port}"]).origin_ok(origin)
    assert not Origins([f"{scheme}://127.0.0.1:{port}"]).origin_ok(f"{scheme}://127.0.0.1:8")
    assert not Origins([f"{scheme}://127.0.0.1:{port}"]).host_ok("127.0.0.1:8")


def test_the_printed_address_is_the_one_listened_on() -> None:
    # --listen 127.0.0.2 printed (and answered only at) http://127.0.0.1:…, where nothing listens.
    assert console_origins("127.0.0.2", 8767) == ["http://127.0.0.2:8767"]
    assert console_origins("localhost", 8767)[0] == "http://127.0.0.1:8767"
    assert console_origins("::1", 8767) == ["http://[::1]:8767"]


def test_the_browser_is_given_a_private_page_not_the_token(tmp_path: Path) -> None:
    # webbrowser.open(url) puts the unspent token on the browser's command line, where every
    # user of the machine can read it (ps); the browser now gets a file only its owner reads.
    opened: list[str] = []
    url = "http://127.0.0.1:8767/login?token=Qm9-secret_token"
    page = open_in_browser(url, tmp_path, opener=opened.append)
    assert opened == [page.as_uri()] and "token" not in opened[0]
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o600
    assert f'content="0; url={url}"' in page.read_text()


# -- two tabs, and a second process on the same store ---------------------------------------
def test_a_stale_tabs_sleep_button_leaves_the_other_persona_awake(browser, setup) -> None:
    browser.wake("work", "office")
    stale_page = browser.get("/memories").text  # tab A, drawn while work was awake
    assert 'name="persona" value="work"' in stale_page
    browser.wake("home", "house")  # tab B
    response = browser.post("/sleep", {"persona": "work"})  # tab A's Sleep button
    assert response.status_code == 303
    assert events(setup[0])[-1] == ("enter", "home")  # home was not put to sleep
    assert "work was already asleep" in browser.get("/").text
    assert browser.post("/sleep", {"persona": "home"}).status_code == 303
    assert events(setup[0])[-1] == ("exit", "home")


def test_a_stale_sessions_error_leaves_the_persona_woken_since_awake(app, browser) -> None:
    # A request that began with work can fail (its session closed) after another tab woke
    # home; the error handler used to put whatever was awake — home — to sleep.
    browser.wake("work", "office")
    state = state_of(app, browser)
    work = state.session
    assert work is not None
    browser.wake("home", "house")
    state.sleep_if(work)
    awake = state.session
    assert awake is not None and awake.persona == "home"
    state.sleep_if(awake)
    assert state.session is None


def test_an_edit_drawn_before_another_save_does_not_overwrite_it(browser, setup) -> None:
    store, ids, _ = setup
    memory_id = ids["office"][0]
    browser.wake("work", "office")
    assert 'name="version" value="1"' in browser.get(f"/memories/{memory_id}/edit").text
    with store.enter(floor="office") as cli:  # another tab, the CLI or an assistant
        cli.update(memory_id, "Q3 launch moved to Oct 26")
    mine = {"text": "Q3 launch moved to Oct 19", "kind": "fact", "metadata": "{}"}
    stale = browser.post(f"/memories/{memory_id}/edit", {**mine, "version": "1"})
    assert stale.status_code == 409 and "now version 2" in error_of(stale.text)
    assert ">Q3 launch moved to Oct 19</textarea>" in stale.text  # nothing typed is lost
    assert 'name="version" value="2"' in stale.text
    with store.enter(floor="office") as s:
        assert s.get(memory_id).text == "Q3 launch moved to Oct 26"
    assert browser.post(f"/memories/{memory_id}/edit", {**mine, "version": "2"}).status_code == 303
    with store.enter(floor="office") as s:
        assert (s.get(memory_id).text, s.get(memory_id).version) == (mine["text"], 3)


def test_forgetting_a_memory_changed_since_it_was_confirmed_asks_again(browser, setup) -> None:
    store, ids, _ = setup
    memory_id = ids["office"][1]
    browser.wake("work", "office")
    assert 'name="version" value="1"' in browser.get(f"/memories/{memory_id}/forget").text
    with store.enter(floor="office") as cli:
        cli.update(memory_id, "Standup moved to 10:00, room Europa")
    asked = browser.post(f"/memories/{memory_id}/forget", {"version": "1"})
    assert asked.status_code == 409 and "now version 2" in error_of(asked.text)
    assert "room Europa" in asked.text
    with store.enter(floor="office") as s:
        assert s.get(memory_id).version == 2  # still there
    assert browser.post(f"/memories/{memory_id}/forget", {"version": "2"}).status_code == 303
    with store.enter(floor="office") as s, pytest.raises(severance.MemoryNotFoundError):
        s.get(memory_id)


def test_a_foreign_host_is_told_where_the_console_answers(app) -> None:
    # Opening the console by the machine's IP or 0.0.0.0 gave a bare "Unknown host.".
    refused = anonymous(app).get("/", headers={"host": "0.0.0.0:8767"})
    assert refused.status_code == 421 and ORIGIN in refused.text


def test_a_persona_erased_by_another_process_is_not_shown_as_awake(browser, setup) -> None:
    root = setup[2]
    browser.wake("work", "office")
    with severance.Store.open(root / "store", key_file=root / "keys" / "master.key") as cli:
        cli.clean_slate("work", confirm="work")  # the CLI, on the same store
    response = browser.get("/memories")
    assert response.status_code == 303 and response.headers["location"] == "/"
    page = browser.get("/").text
    assert "work was erased (clean slate) elsewhere" in page
    assert "no persona awake" in page


# -- secrets, errors, edges --------------------------------------------------------------------
def test_a_reviews_secrets_are_never_in_a_repr(app, browser) -> None:
    rid = browser.post(
        "/crossings/reintegrate",
        {"source": "work", "into": "vault", "into_passphrase": VAULT_PASSPHRASE},
    )
    assert rid.status_code == 303
    state = state_of(app, browser)
    assert state.review is not None and state.review.into_secret is not None
    assert VAULT_PASSPHRASE not in repr(state.review) and VAULT_PASSPHRASE not in repr(state)


def test_an_oversized_form_is_refused_as_too_large_and_changes_nothing(browser, setup) -> None:
    store, ids, _ = setup
    browser.wake("work", "office")
    memory_id = ids["office"][0]
    form = {"text": "x" * (MAX_FORM_BYTES + 1), "kind": "fact", "metadata": "{}"}
    response = browser.post(f"/memories/{memory_id}/edit", form)
    assert response.status_code == 413
    assert "larger than the console accepts" in error_of(response.text)
    assert "CSRF" not in response.text
    with store.enter(floor="office") as s:
        assert s.get(memory_id).version == 1


def test_a_bad_edit_comes_back_with_everything_typed(browser, setup) -> None:
    store, ids, _ = setup
    browser.wake("work", "office")
    memory_id = ids["office"][0]
    typed = {
        "text": "Q3 launch moved again",
        "kind": "note",
        "tags": "launch, risk",
        "occurred_at": "2026-11-02T10:00:00+00:00",
        "metadata": "{not json",
    }
    response = browser.post(f"/memories/{memory_id}/edit", typed)
    assert response.status_code == 400 and "JSON object" in error_of(response.text)
    for name in ("kind", "tags", "occurred_at"):
        assert f'name="{name}" value="{typed[name]}"' in response.text, name
    assert ">Q3 launch moved again</textarea>" in response.text
    with store.enter(floor="office") as s:
        assert s.get(memory_id).version == 1


def test_an_edit_keeps_the_line_breaks_of_a_memory(browser, setup) -> None:
    store = setup[0]
    with store.enter(floor="office") as s:
        m = s.remember("Agenda:\n- budget\n- hiring")
    browser.wake("work", "office")
    # As a browser sends the textarea: every line break as CRLF.
    form = {"text": "Agenda:\r\n- budget\r\n- hiring\r\n- offsite", "kind": "fact"}
    assert browser.post(f"/memories/{m.id}/edit", {**form, "metadata": "{}"}).status_code == 303
    with store.enter(floor="office") as s:
        assert s.get(m.id).text == "Agenda:\n- budget\n- hiring\n- offsite"
    assert "<ins>\n- offsite</ins>" in browser.get(f"/memories/{m.id}").text


def test_tags_and_paths_may_hold_spaces(browser, setup) -> None:
    # Fields were split at every space: saving an edit of the text alone turned a memory's tag
    # "project alpha" (as an assistant stores it) into "project" and "alpha".
    store = setup[0]
    with store.enter(floor="office") as s:
        m = s.remember("Alpha ships in May", tags=["project alpha", "a,b"])
    browser.wake("work", "office")
    form = browser.get(f"/memories/{m.id}/edit").text
    shown = re.search(r'name="tags" value="([^"]*)"', form)
    assert shown is not None and shown[1] == "project alpha, a,b"
    edit = {"text": "Alpha ships in June", "kind": "fact", "tags": "project alpha, a,b"}
    assert browser.post(f"/memories/{m.id}/edit", {**edit, "metadata": "{}"}).status_code == 303
    assert "Saved as version 2" in browser.get("/").text
    same = browser.post(f"/memories/{m.id}/edit", {**edit, "metadata": "{}", "version": "2"})
    assert same.status_code == 303
    assert "Nothing changed: it is still version 2" in browser.get("/").text
    retagged = {**edit, "tags": "project alpha, launch plan", "metadata": "{}"}
    assert browser.post(f"/memories/{m.id}/edit", retagged).status_code == 303
    with store.enter(floor="office") as s:
        assert [v.tags for v in s.history(m.id)] == [
            ("project alpha", "a,b"),
            ("project alpha", "a,b"),
            ("project alpha", "launch plan"),
        ]
    listed = browser.get("/memories?tag=project+alpha").text
    assert "Alpha ships in June" in listed and "Q3 launch" not in listed
    added = browser.post(
        "/floors", {"name": "docs", "persona": "home", "paths": "~/Mobile Documents/**, ~/x/**"}
    )
    assert added.status_code == 303, error_of(added.text)
    paths = next(f.paths for f in store.floors() if f.name == "docs")
    assert paths == ("~/Mobile Documents/**", "~/x/**")


def test_a_floor_with_several_days_in_one_window_can_be_added(browser, setup) -> None:
    # The hours field was split at every comma, so "mon,wed 09:00-12:00" (a valid window of
    # two days) became "mon" and "wed 09:00-12:00", and the floor could not be added.
    store = setup[0]
    hours = "mon,wed 09:00-12:00, sat 10:00-14:00; sun 18:00-20:00"
    added = browser.post("/floors", {"name": "lab", "persona": "home", "hours": hours})
    assert added.status_code == 303, error_of(added.text)
    floor = next(f for f in store.floors() if f.name == "lab")
    assert floor.hours == ("mon,wed 09:00-12:00", "sat 10:00-14:00", "sun 18:00-20:00")
    assert "mon,wed 09:00-12:00; sat 10:00-14:00" in browser.get("/floors").text


def test_a_floor_test_with_a_bad_time_answers_on_the_floors_page(browser) -> None:
    response = browser.get("/floors/test?client=cursor&at=next+tuesday")
    assert response.status_code == 200
    assert 'id="floor-answer"' in response.text and "invalid time" in response.text
    assert 'value="next tuesday"' in response.text  # the form keeps what was typed


def test_error_pages_are_never_cached_even_under_static(browser) -> None:
    browser.wake("work", "office")
    missing = browser.get("/static/nope.css")
    assert missing.status_code == 404
    assert missing.headers["cache-control"] == "no-store"  # it carries the CSRF token
    assert "no-store" not in browser.get("/static/console.css").headers.get("cache-control", "")


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/"])
def test_static_files_stay_in_their_folder(browser, path: str) -> None:
    response = browser.get(path)
    assert response.status_code == 404 and "create_app" not in response.text


def test_every_audit_entry_stays_reachable_page_by_page(browser, setup) -> None:
    # The audit pages used to stop at the newest 500 entries, with no way to older ones.
    store = setup[0]
    for i in range(260):
        store.add_floor(f"f{i}", "home", paths=[f"~/f{i}/**"])
        store.remove_floor(f"f{i}")
    total = len(store.audit())
    assert total > 520
    first = browser.get("/audit/store").text
    assert first.count('<td class="num">') == 100 and f"{total} entries" in first
    last_page = (total + 99) // 100
    assert 'href="/audit/store?page=2" rel="next"' in first
    last = browser.get(f"/audit/store?page={last_page}").text
    assert "store_created" in last and 'rel="next"' not in last
    assert f"page={last_page - 1}" in last
    filtered = browser.get("/audit/store?event=floor_added&page=3").text
    rows = filtered.split("<tbody>")[1]
    assert rows.count('<td class="num">') == 63 and "floor_removed" not in rows  # 263 added
    assert "event=floor_added&amp;page=2" in filtered  # the pager keeps the filter
    past = browser.get(f"/audit/store?page={last_page + 1}").text
    assert f"Nothing more on page {last_page + 1}" in past
    assert browser.get("/audit/store?page=0").status_code == 422


@pytest.mark.parametrize("query", ["", "q=launch"])
def test_a_page_past_the_end_says_so(browser, query: str) -> None:
    browser.wake("work", "office")
    page = browser.get(f"/memories?{query}&page=7").text
    assert 'id="past-the-end"' in page and "Nothing more on page 7" in page
    assert "Nothing in work matches" not in page and "No memories" not in page
    assert 'href="/memories?' in page and "page=1" in page


# -- what a memory, a persona, a floor or an audit entry can carry ----------------------------
class _Injected(HTMLParser):
    """Elements and attributes that markup smuggled in through a stored value would add."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" or (tag == "script" and not dict(attrs).get("src")):
            self.found.append(tag)
        self.found.extend(f"{tag} {name}" for name, _ in attrs if name.startswith("on"))


def test_markup_in_every_stored_field_stays_text(browser, setup) -> None:
    store, _, _ = setup
    store.add_floor("lab", "home", paths=[f"~/{MARKUP}/**"], hosts=[MARKUP])
    with store.enter(floor="office") as s:
        m = s.remember(
            MARKUP,
            kind="note",
            tags=["a<b>", '"quoted"'],
            metadata={MARKUP: MARKUP, "nested": {"k": MARKUP}},
            source=MARKUP,
        )
        s.update(m.id, MARKUP + " v2", metadata={MARKUP: "changed"})
    store.reintegrate("work", "home", select=Selection(ids=(m.id,)))
    browser.post("/crossings/override", {"persona": "work", "minutes": "5", "reason": MARKUP})
    pages = [f"/memories/{m.id}", f"/memories/{m.id}/edit", "/memories?q=script+alert", "/audit"]
    pages += ["/audit/store", "/floors", f"/floors/test?path=~/{MARKUP}/x&host={MARKUP}"]
    pages += [f"/memories?kind={MARKUP}", f"/memories?since={MARKUP}", "/memories/<script>x"]
    browser.wake("home", "house")
    copied = re.search(r'href="/memories/(m_\w+)"', browser.get("/memories?q=alert").text)
    assert copied is not None
    home_page = browser.get(f"/memories/{copied[1]}").text  # with its provenance
    browser.wake("work", "office")
    for html in [home_page] + [browser.get(p).text for p in pages]:
        parser = _Injected()
        parser.feed(html)
        assert parser.found == [], html[:200]
        assert "&lt;script&gt;" in html, html[html.index("<main") :][:300]


# -- accessibility basics ----------------------------------------------------------------------
class _Controls(HTMLParser):
    """Form controls without a label: neither inside a <label>, nor named by aria-label."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.unlabelled: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "label":
            self.depth += 1
        control = tag in ("input", "select", "textarea") and names.get("type") != "hidden"
        if control and not self.depth and not names.get("aria-label"):
            self.unlabelled.append(f"{tag} {names.get('name')}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.depth -= 1


def _every_page(browser: Browser, ids: dict[str, list[str]]) -> list[str]:
    """The HTML of every kind of page, work awake (and then its review open)."""
    browser.wake("work", "office")
    memory = ids["office"][0]
    paths = ["/", "/memories", f"/memories/{memory}", f"/memories/{memory}/edit"]
    paths += [f"/memories/{memory}/forget", "/audit", "/audit/store", "/floors", "/crossings"]
    paths += ["/personas/home/clean-slate"]
    pages = [browser.get(path).text for path in paths]
    review = browser.post("/crossings/reintegrate", {"source": "work", "into": "home"})
    pages.append(browser.get(review.headers["location"]).text)
    return pages


def test_every_control_has_a_label(browser, setup) -> None:
    for page in _every_page(browser, setup[1]):
        parser = _Controls()
        parser.feed(page)
        assert parser.unlabelled == [], page[page.index("<title>") :][:80]


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.remembered: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "form" and names.get("autocomplete") != "off":
            self.remembered.append(f"form {names.get('action')}")


def test_no_form_feeds_the_browsers_autocomplete_history(browser, setup) -> None:
    # The browser keeps one autocomplete history per site: what was typed into work's search
    # or tags would be offered, under home's, in the forms drawn for home.
    forms = 0
    for page in _every_page(browser, setup[1]):
        parser = _Forms()
        parser.feed(page)
        assert parser.remembered == [], page[page.index("<title>") :][:80]
        forms += page.count("<form ")
    assert forms > 20


def test_a_fresh_browser_is_told_to_log_in_not_shown_a_traceback(app) -> None:
    client = anonymous(app)
    client.cookies.set(app.state.console.origins.cookie_name, "made-up")
    response = client.get("/memories")
    assert response.status_code == 401 and "Traceback" not in response.text
    assert REFRESH not in response.text
    assert client.get(f"{ORIGIN}/login?token=&token=").status_code == 403
