"""The web console over HTTP, in-process: login, CSRF, Host/Origin, escaping, one persona at a
time, and every page's state changes checked against the store's own API.

Time is injected (:class:`FakeClock`), so token and session expiry are tested without waiting.
The real-browser tests are in ``test_console_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import severance
from severance.console import LOGIN_TOKEN_SECONDS, create_app
from severance.console.security import CSP, SESSION_IDLE_SECONDS
from severance.console.serving import check_exposure, console_origins
from severance.crossings import Selection
from severance.keys import Secret

ORIGIN = "http://127.0.0.1:8767"
XSS = '<script>alert("x")</script><img src=x onerror="alert(1)">'
WORK_TEXTS = ("Q3 launch moved to Oct 12", "Standup is at 9:30 in room Ganymede", XSS)
HOME_TEXTS = ("Dentist appointment on Friday at 4pm", "Buy oat milk")
VAULT_PASSPHRASE = "vault-secret-passphrase"
#: How the login page moves on to "/" (a same-origin refresh, not a redirect).
REFRESH = '<meta http-equiv="refresh" content="0; url=/">'


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_store(root: Path) -> tuple[severance.Store, dict[str, list[str]]]:
    """work and home (with memories) and a sealed vault, each with its floor."""
    store = severance.Store.init(root / "store", key_file=root / "keys" / "master.key")
    store.add_persona("work")
    store.add_persona("home")
    store.add_persona("vault", sealed_with=Secret(passphrase=VAULT_PASSPHRASE))
    store.add_floor("office", "work", clients=["claude-code"], paths=["~/work/**"])
    store.add_floor("house", "home", default=True)
    store.add_floor("safe", "vault")
    ids: dict[str, list[str]] = {}
    for floor, texts in (("office", WORK_TEXTS), ("house", HOME_TEXTS)):
        with store.enter(floor=floor) as s:
            ids[floor] = [s.remember(t, kind="fact", tags=["t1"]).id for t in texts]
    return store, ids


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[severance.Store, dict[str, list[str]]]]:
    store, ids = make_store(tmp_path)
    yield store, ids
    store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(setup, clock):
    return create_app(setup[0], origins=console_origins("127.0.0.1", 8767), clock=clock)


def anonymous(app) -> TestClient:
    client = TestClient(app, base_url=ORIGIN, follow_redirects=False)
    client.headers["origin"] = ORIGIN
    return client


class Browser:
    """A logged-in client that posts forms with its CSRF token, as the pages do."""

    def __init__(self, app) -> None:
        self.client = anonymous(app)
        response = self.client.get(app.state.console.login_url())
        assert response.status_code == 200 and REFRESH in response.text
        page = self.client.get("/")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        self.csrf = found.group(1)

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, **kw):
        return self.client.post(url, data={"csrf": self.csrf, **(data or {})}, **kw)

    def wake(self, persona: str, floor: str, **extra: str):
        return self.post("/wake", {"persona": persona, "floor": floor, **extra})


@pytest.fixture
def browser(app) -> Iterator[Browser]:
    b = Browser(app)
    yield b
    b.client.close()


def events(store: severance.Store) -> list[tuple[str, str | None]]:
    return [(e.event, e.persona) for e in store.audit()]


# -- login -----------------------------------------------------------------------------------
def test_login_sets_a_strict_httponly_cookie_and_drops_the_token(app) -> None:
    client = anonymous(app)
    response = client.get(app.state.console.login_url())
    assert response.status_code == 200 and REFRESH in response.text
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert client.get("/").status_code == 200


def test_a_login_token_works_once(app) -> None:
    url = app.state.console.login_url()
    assert anonymous(app).get(url).status_code == 200
    second = anonymous(app).get(url)
    assert second.status_code == 403 and "set-cookie" not in second.headers
    assert "does not work" in second.text


def test_a_login_token_expires(app, clock) -> None:
    fresh, stale = app.state.console.login_url(), app.state.console.login_url()
    clock.now += LOGIN_TOKEN_SECONDS - 1
    assert anonymous(app).get(fresh).status_code == 200
    clock.now += 2
    assert anonymous(app).get(stale).status_code == 403


@pytest.mark.parametrize("token", ["", "nope", "a" * 43])
def test_a_made_up_token_is_refused(app, token: str) -> None:
    assert anonymous(app).get(f"/login?token={token}").status_code == 403


def test_an_idle_browser_session_ends_and_its_persona_sleeps(app, browser, clock, setup) -> None:
    store = setup[0]
    browser.wake("work", "office")
    clock.now += SESSION_IDLE_SECONDS + 1
    assert browser.get("/memories").status_code == 401
    assert events(store)[-1] == ("exit", "work")


def test_logout_puts_the_persona_to_sleep(browser, setup) -> None:
    browser.wake("work", "office")
    assert browser.post("/logout").status_code == 303
    assert events(setup[0])[-1] == ("exit", "work")
    assert browser.get("/").status_code == 401


@pytest.mark.parametrize(
    "path", ["/", "/memories", "/audit", "/audit/store", "/floors", "/crossings"]
)
def test_nothing_is_served_without_logging_in(app, setup, path: str) -> None:
    response = anonymous(app).get(path)
    assert response.status_code == 401
    for text in (*WORK_TEXTS, *HOME_TEXTS, "work", "office"):
        assert text not in response.text


# -- CSRF, Host and Origin --------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_a_post_without_the_csrf_token_is_refused(browser, setup, token) -> None:
    before = events(setup[0])
    data = {"persona": "work", "floor": "office"}
    if token is not None:
        data["csrf"] = token
    response = browser.client.post("/wake", data=data)
    assert response.status_code == 403
    assert events(setup[0]) == before  # nothing woke


def test_the_csrf_token_may_come_as_a_header(browser) -> None:
    response = browser.client.post(
        "/wake", data={"persona": "work", "floor": "office"}, headers={"x-csrf-token": browser.csrf}
    )
    assert response.status_code == 303


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:9999", "null"])
def test_cross_origin_requests_are_refused(browser, setup, origin: str) -> None:
    before = events(setup[0])
    posted = browser.client.post(
        "/wake",
        data={"csrf": browser.csrf, "persona": "work", "floor": "office"},
        headers={"origin": origin},
    )
    assert posted.status_code == 403
    read = browser.client.get("/", headers={"origin": origin})
    assert read.status_code == 403 and "work" not in read.text
    assert events(setup[0]) == before


def test_a_post_without_origin_is_refused(browser) -> None:
    del browser.client.headers["origin"]
    response = browser.post("/wake", {"persona": "work", "floor": "office"})
    assert response.status_code == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8767", "127.0.0.1:9999"])
def test_a_foreign_host_is_refused_even_with_a_valid_token(app, host: str) -> None:
    # DNS rebinding: the attacker's name resolves to 127.0.0.1 but the Host header says so.
    url = app.state.console.login_url()
    client = anonymous(app)
    refused = client.get(url, headers={"host": host})
    assert refused.status_code == 421 and "set-cookie" not in refused.headers
    assert client.get(url).status_code == 200  # the token was not spent on the refusal


def test_every_response_carries_the_security_headers(browser, setup) -> None:
    browser.wake("work", "office")
    memory_id = setup[1]["office"][0]
    for path in ("/", "/memories", f"/memories/{memory_id}", "/static/console.css", "/nope"):
        response = browser.get(path)
        assert response.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert browser.get("/memories").headers["cache-control"] == "no-store"


class _Scripts(HTMLParser):
    """Collects inline scripts, event-handler attributes and off-site references."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.problems.append("inline <script>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{tag} {name}=")
            if name in ("src", "href") and value and "//" in value:
                self.problems.append(f"off-site {value}")


def _pages(browser: Browser, ids: dict[str, list[str]]) -> list[str]:
    browser.wake("work", "office")
    memory = ids["office"][0]
    return [
        "/",
        "/memories",
        "/memories?q=launch",
        f"/memories/{memory}",
        f"/memories/{memory}/edit",
        f"/memories/{memory}/forget",
        "/audit",
        "/audit/store",
        "/floors",
        "/floors/test?client=claude-code&path=~/work/x",
        "/crossings",
        "/personas/home/clean-slate",
    ]


def test_no_page_has_inline_script_or_off_site_references(browser, setup) -> None:
    for path in _pages(browser, setup[1]):
        response = browser.get(path)
        assert response.status_code == 200, path
        parser = _Scripts()
        parser.feed(response.text)
        assert parser.problems == [], path


def test_memory_text_is_always_escaped(browser, setup) -> None:
    xss_id = setup[1]["office"][2]
    browser.wake("work", "office")
    for path in (
        "/memories",
        "/memories?q=alert+script",
        f"/memories/{xss_id}",
        f"/memories/{xss_id}/edit",
        f"/memories/{xss_id}/forget",
    ):
        body = browser.get(path).text
        assert "<script>alert" not in body and "<img src=x" not in body, path
        assert "&lt;script&gt;alert(" in body, path


# -- one persona at a time ---------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/memories", "/audit", "/memories/{id}", "/memories/{id}/edit"])
def test_nothing_of_a_persona_before_it_is_woken(browser, setup, path: str) -> None:
    response = browser.get(path.format(id=setup[1]["office"][0]))
    assert response.status_code == 303 and response.headers["location"] == "/"
    listing = browser.get("/")
    assert "Wake a persona first" in listing.text
    for text in (*WORK_TEXTS, *HOME_TEXTS):
        assert text not in listing.text


def test_the_persona_list_shows_counts_seals_and_floors_but_no_memory(browser) -> None:
    page = browser.get("/").text
    assert "sealed" in page and "office" in page and "house" in page and "safe" in page
    assert re.search(r"<dt>Memories</dt><dd>3</dd>", page)
    for text in (*WORK_TEXTS, *HOME_TEXTS):
        assert text not in page


def test_waking_is_audited_and_switching_closes_the_previous_persona(browser, setup) -> None:
    store, ids = setup
    assert browser.wake("work", "office").status_code == 303
    assert events(store)[-1] == ("enter", "work")
    assert store.audit()[-1].detail["floor"] == "office"
    work_page = browser.get("/memories").text
    assert "Q3 launch moved to Oct 12" in work_page
    browser.wake("home", "house")
    assert events(store)[-2:] == [("exit", "work"), ("enter", "home")]
    home_pages = [browser.get(p).text for p in ("/memories", "/memories?q=launch", "/audit")]
    for page in home_pages:
        for text in ("Q3 launch", "Ganymede"):
            assert text not in page
    # An id of work's is not found from home, exactly like an id that never existed.
    assert browser.get(f"/memories/{ids['office'][0]}").status_code == 404


def test_a_floor_of_another_persona_wakes_nothing(browser, setup) -> None:
    before = events(setup[0])
    response = browser.wake("work", "house")
    assert response.status_code in (400, 422)
    assert events(setup[0]) == before


def test_a_sealed_persona_asks_for_its_own_secret(browser, setup) -> None:
    refused = browser.wake("vault", "safe")
    assert refused.status_code == 403 and "sealed" in refused.text
    wrong = browser.wake("vault", "safe", passphrase="not it")
    assert wrong.status_code == 403
    assert ("enter", "vault") not in events(setup[0])
    assert browser.wake("vault", "safe", passphrase=VAULT_PASSPHRASE).status_code == 303
    assert events(setup[0])[-1] == ("enter", "vault")


def test_each_browser_has_its_own_persona(app, setup) -> None:
    first, second = Browser(app), Browser(app)
    first.wake("work", "office")
    assert second.get("/memories").status_code == 303  # second woke nothing
    assert "Q3 launch" in first.get("/memories").text


# -- memories ----------------------------------------------------------------------------------
def test_search_shows_score_and_ranks(browser) -> None:
    browser.wake("work", "office")
    page = browser.get("/memories?q=when+is+the+launch").text
    first = page.index("Q3 launch moved to Oct 12")
    assert "score 0." in page and "dense #1" in page and "keyword #1" in page
    assert first < page.index("Ganymede")


def test_filters_and_paging(browser, setup) -> None:
    store = setup[0]
    with store.enter(floor="office") as s:
        for i in range(25):
            s.remember(f"note number {i}", kind="note", tags=["bulk"])
    browser.wake("work", "office")
    page1 = browser.get("/memories?tag=bulk").text
    assert page1.count('class="result"') == 20 and "Next" in page1
    page2 = browser.get("/memories?tag=bulk&page=2").text
    assert page2.count('class="result"') == 5 and "Previous" in page2
    assert "Q3 launch" not in page1 + page2
    facts = browser.get("/memories?kind=fact").text
    assert "Q3 launch" in facts and "note number" not in facts
    none = browser.get("/memories?since=2999-01-01").text
    assert "No memories" in none
    searched = browser.get("/memories?q=note+number&kind=fact").text
    assert "note number 1" not in searched and "Q3 launch" in searched
    assert browser.get("/memories?since=yesterday").status_code == 422
    assert browser.get("/memories?page=0").status_code == 422


def test_edit_creates_a_version_with_its_changes(browser, setup) -> None:
    store, ids = setup
    memory_id = ids["office"][0]
    browser.wake("work", "office")
    response = browser.post(
        f"/memories/{memory_id}/edit",
        {
            "text": "Q3 launch moved to Oct 19",
            "kind": "fact",
            "tags": "t1, launch",
            "metadata": '{"by": "pm"}',
            "occurred_at": "",
        },
    )
    assert response.status_code == 303
    page = browser.get(f"/memories/{memory_id}").text
    assert "<del>12</del>" in page and "<ins>19</ins>" in page
    assert "Version 2" in page and "Version 1" in page
    with store.enter(floor="office") as s:
        m = s.get(memory_id)
        assert (m.text, m.version, m.tags, m.metadata) == (
            "Q3 launch moved to Oct 19",
            2,
            ("t1", "launch"),
            {"by": "pm"},
        )


@pytest.mark.parametrize(
    "change", [{"metadata": "[1, 2]"}, {"metadata": "{nope"}, {"text": ""}, {"kind": ""}]
)
def test_a_bad_edit_changes_nothing(browser, setup, change: dict[str, str]) -> None:
    store, ids = setup
    memory_id = ids["office"][0]
    browser.wake("work", "office")
    form = {"text": "changed", "kind": "fact", "tags": "", "metadata": "{}", **change}
    response = browser.post(f"/memories/{memory_id}/edit", form)
    assert response.status_code == 400
    assert 'role="alert"' in response.text
    with store.enter(floor="office") as s:
        assert s.get(memory_id).version == 1


def test_forget_asks_first_then_forgets(browser, setup) -> None:
    store, ids = setup
    memory_id = ids["office"][1]
    browser.wake("work", "office")
    confirm = browser.get(f"/memories/{memory_id}/forget")
    assert "Forget this memory?" in confirm.text
    with store.enter(floor="office") as s:
        assert s.get(memory_id)  # asking changed nothing
    assert browser.post(f"/memories/{memory_id}/forget").status_code == 303
    with store.enter(floor="office") as s, pytest.raises(severance.MemoryNotFoundError):
        s.get(memory_id)


# -- audit and floors --------------------------------------------------------------------------
def test_the_persona_audit_shows_only_its_own_entries(browser) -> None:
    browser.wake("home", "house")
    page = browser.get("/audit").text
    assert "persona_added" in page and "enter" in page
    assert "office" not in page and "vault" not in page  # work's floor, vault's entries


def test_the_store_audit_shows_the_chain_and_verify(browser) -> None:
    page = browser.get("/audit/store").text
    assert "Verified: all" in page and "store_created" in page
    entered = browser.get("/audit/store?event=floor_added").text
    assert "floor_added" in entered and "store_created" not in entered.split("<tbody>")[1]


def test_floor_test_says_which_persona_and_why(browser) -> None:
    page = browser.get("/floors/test?client=claude-code&path=~/work/acme").text
    assert "This wakes <strong>work</strong> through floor <strong>office</strong>" in page
    assert "matches &#39;~/work/**&#39;" in page
    default = browser.get("/floors/test?client=zed&path=/tmp").text
    assert "default floor" in default and "<strong>home</strong>" in default
    unknown = browser.get("/floors/test?floor=nosuch").text
    assert "no floor named" in unknown


def test_floors_can_be_added_and_removed(browser, setup) -> None:
    store = setup[0]
    added = browser.post("/floors", {"name": "lab", "persona": "home", "paths": "~/lab/**"})
    assert added.status_code == 303
    assert [f.name for f in store.floors()] == ["office", "house", "safe", "lab"]
    page = browser.get("/floors").text
    rows = [page.index(f'id="floor-{name}"') for name in ("office", "house", "safe", "lab")]
    assert rows == sorted(rows)
    twice = browser.post("/floors", {"name": "lab", "persona": "home", "paths": "~/x"})
    assert twice.status_code == 400 and "already exists" in twice.text
    assert browser.post("/floors/lab/remove").status_code == 303
    assert "lab" not in [f.name for f in store.floors()]
    assert browser.post("/floors/lab/remove").status_code == 404


# -- crossings ---------------------------------------------------------------------------------
def _review_id(response) -> str:
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def test_a_reviewed_reintegration_crosses_only_what_stayed_ticked(browser, setup) -> None:
    store, ids = setup
    keep, drop, xss = ids["office"]
    browser.wake("work", "office")
    rid = _review_id(
        browser.post("/crossings/reintegrate", {"source": "work", "into": "home", "mode": "copy"})
    )
    assert events(store)[-1] == ("exit", "work")  # the review closed the awake persona
    review = browser.get(f"/crossings/review/{rid}").text
    assert "Q3 launch" in review and "Ganymede" in review and "&lt;script&gt;" in review
    assert "<strong>3</strong> selected" in review
    updated = browser.post(
        f"/crossings/review/{rid}", {"action": "preview", "include": [keep, xss]}
    )
    assert updated.status_code == 303
    review = browser.get(f"/crossings/review/{rid}").text
    assert "<strong>2</strong> selected" in review
    assert review.count("checked") == 2
    done = browser.post(f"/crossings/review/{rid}", {"action": "run", "include": [keep, xss]})
    assert done.status_code == 303
    result = browser.get(f"/crossings/review/{rid}").text
    assert "<strong>2</strong> copied" in result and "reintegrated_into" in result
    assert "reintegrated_from" in result
    rerun = browser.post(f"/crossings/review/{rid}", {"action": "run", "include": [drop]})
    assert rerun.status_code in (400, 422) and "already ran" in rerun.text
    woken = browser.client.post(
        "/wake",
        data={"csrf": browser.csrf, "persona": "home", "floor": "house"},
        follow_redirects=True,
    )
    assert "While home slept: reintegrated from" in woken.text  # home is told what crossed
    with store.enter(floor="house") as home:
        texts = {m.text for m in home.memories(limit=100).items}
    assert "Q3 launch moved to Oct 12" in texts and XSS in texts
    assert "Standup is at 9:30 in room Ganymede" not in texts


def test_a_cancelled_review_crosses_nothing(browser, setup) -> None:
    store = setup[0]
    rid = _review_id(
        browser.post(
            "/crossings/reintegrate", {"source": "work", "into": "home", "query": "launch"}
        )
    )
    before = events(store)
    assert browser.post(f"/crossings/review/{rid}", {"action": "cancel"}).status_code == 303
    assert events(store) == before
    assert browser.get(f"/crossings/review/{rid}").status_code == 404


def test_a_review_with_nothing_ticked_runs_nothing(browser, setup) -> None:
    store = setup[0]
    rid = _review_id(browser.post("/crossings/reintegrate", {"source": "work", "into": "home"}))
    before = events(store)
    response = browser.post(f"/crossings/review/{rid}", {"action": "run"})
    assert response.status_code == 400 and "Nothing is ticked" in response.text
    assert events(store) == before


def test_a_review_into_a_sealed_persona_needs_its_secret(browser, setup) -> None:
    browser.wake("work", "office")
    refused = browser.post("/crossings/reintegrate", {"source": "work", "into": "vault"})
    assert refused.status_code == 400 and "sealed" in refused.text
    assert events(setup[0])[-1] == ("enter", "work")  # a refused review leaves work awake
    ok = browser.post(
        "/crossings/reintegrate",
        {"source": "work", "into": "vault", "into_passphrase": VAULT_PASSPHRASE},
    )
    assert ok.status_code == 303


def test_an_override_shows_its_countdown_and_is_audited(browser, setup) -> None:
    store = setup[0]
    refused = browser.post(
        "/crossings/override", {"persona": "work", "minutes": "10", "reason": ""}
    )
    assert refused.status_code == 400
    assert "override" not in [e for e, _ in events(store)]
    response = browser.post(
        "/crossings/override", {"persona": "work", "minutes": "10", "reason": "release night"}
    )
    assert response.status_code == 303
    page = browser.get("/memories").text
    assert "data-expires-at=" in page and "override" in page and "Q3 launch" in page
    entry = next(e for e in reversed(store.audit()) if e.event == "override")
    assert entry.detail["reason"] == "release night" and entry.detail["minutes"] == 10


def test_clean_slate_needs_the_name_typed(browser, setup) -> None:
    store = setup[0]
    browser.wake("home", "house")
    page = browser.get("/personas/home/clean-slate").text
    assert "<strong>2</strong> memories" in page
    wrong = browser.post("/personas/home/clean-slate", {"confirm": "Home"})
    assert wrong.status_code == 400 and "nothing was erased" in wrong.text
    assert "home" in [p.name for p in store.personas()]
    assert browser.post("/personas/home/clean-slate", {"confirm": "home"}).status_code == 303
    assert "home" not in [p.name for p in store.personas()]
    assert browser.get("/memories").status_code == 303  # it was awake; nothing is now
    assert browser.get("/personas/home/clean-slate").status_code == 404


# -- where it may listen -----------------------------------------------------------------------
def test_only_loopback_without_tls() -> None:
    check_exposure("127.0.0.1", tls=False, insecure_remote=False)
    check_exposure("::1", tls=False, insecure_remote=False)
    with pytest.raises(severance.InvalidInputError, match="plain HTTP"):
        check_exposure("0.0.0.0", tls=False, insecure_remote=False)
    check_exposure("0.0.0.0", tls=True, insecure_remote=False)
    check_exposure("192.168.1.5", tls=False, insecure_remote=True)


def test_origins_follow_the_address() -> None:
    assert console_origins("127.0.0.1", 8767) == ["http://127.0.0.1:8767", "http://localhost:8767"]
    assert console_origins("::1", 9000) == ["http://[::1]:9000"]
    assert console_origins("192.168.1.5", 443, tls=True)[0] == "https://192.168.1.5:443"


# -- the API the review relies on, and every back-end ------------------------------------------
def test_selection_ids_narrow_a_reintegration(setup) -> None:
    store, ids = setup
    keep, other, _ = ids["office"]
    only = Selection(ids=(keep, ids["house"][0], "m_nosuch"))
    plan = store.reintegrate("work", "home", select=only, dry_run=True)
    assert [m.id for m in plan.memories] == [keep]  # home's id and a made-up one select nothing
    narrowed = Selection(query="standup room", ids=(keep,))
    assert store.reintegrate("work", "home", select=narrowed, dry_run=True).selected == 0
    with pytest.raises(severance.InvalidInputError):
        store.reintegrate("work", "home", select=Selection(ids=keep), dry_run=True)  # type: ignore[arg-type]
    assert store.reintegrate("work", "home", select=Selection(ids=(other,))).copied == 1


def test_the_console_over_every_backend(store: severance.Store) -> None:
    with store.enter(floor="office") as s:
        first = s.remember("The board meets on the first Monday", tags=["board"]).id
        s.remember("Expense reports are due on the 5th")
    app = create_app(store, origins=console_origins("127.0.0.1", 8767))
    b = Browser(app)
    assert re.search(r"<dt>Memories</dt><dd>2</dd>", b.get("/").text)
    b.wake("work", "office")
    assert "first Monday" in b.get("/memories?q=when+does+the+board+meet").text
    form = {"text": "The board meets on the second Monday", "kind": "note", "tags": "board"}
    assert b.post(f"/memories/{first}/edit", {**form, "metadata": "{}"}).status_code == 303
    assert "<ins>second</ins>" in b.get(f"/memories/{first}").text
    rid = _review_id(b.post("/crossings/reintegrate", {"source": "work", "into": "home"}))
    assert (
        b.post(f"/crossings/review/{rid}", {"action": "run", "include": [first]}).status_code == 303
    )
    b.wake("home", "house")
    assert "second Monday" in b.get("/memories").text and "Expense" not in b.get("/memories").text
    assert b.post(f"/memories/{first}/forget").status_code == 404  # work's id, not home's
    copy = re.search(r'href="/memories/(m_\w+)"', b.get("/memories?q=board").text)
    assert copy is not None
    page = b.get(f"/memories/{copy[1]}").text
    assert "copy from <strong>work</strong>" in page and first in page  # its provenance
    assert "Verified: all" in b.get("/audit/store").text
