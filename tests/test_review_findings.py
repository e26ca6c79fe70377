"""Findings of the hostile reviews that lived outside the reviewed modules.

- A persona's own view of the audit log (its session's ``audit()`` and ``notices()``, and so
  the HTTP API, MCP and console built on them) never names the other persona of a
  reintegration; the store's owner still sees it in the store-wide log.
- Names with a trailing newline and absurd time-zone names are typed errors.
- A sealed persona's passphrase never shows in a repr.
- A store created with an embedder *object* records a spec that opens it again.
- Two processes remembering the same memories at the same moment store each once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import severance
from severance.embedders import load_embedder
from severance.errors import EmbedderError, InvalidFloorError
from severance.floors import check_name
from severance.http import create_app
from severance.keys import Secret
from severance.passes import Passes

SECRET_NAME = "acme-secret"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def crossed(store_location: str) -> severance.Store:
    """Memories copied from a persona whose very name is private into ``home``."""
    s = severance.Store.init(store_location)
    s.add_persona(SECRET_NAME)
    s.add_persona("home")
    s.add_floor("acme", persona=SECRET_NAME)
    s.add_floor("house", persona="home")
    with s.enter(floor="acme") as acme:
        acme.remember("The merger closes in March")
    s.reintegrate(SECRET_NAME, "home")
    return s


def test_a_personas_own_view_never_names_the_other_persona(crossed: severance.Store) -> None:
    with crossed.enter(floor="house") as home:
        views = [e.detail for e in home.audit()] + [n.detail for n in home.notices()]
    assert any(d.get("copied") == 1 for d in views)  # the crossing is told, with its count
    assert SECRET_NAME not in repr(views)
    # The owner's store-wide log keeps both sides.
    assert any(e.detail.get("source") == SECRET_NAME for e in crossed.audit("home"))


@pytest.fixture
async def home_client(crossed: severance.Store) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    token = Passes(crossed).issue("house").token
    transport = httpx.ASGITransport(app=create_app(crossed, rate=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://severance.test") as c:
        yield c, token


@pytest.mark.anyio
async def test_http_notices_and_audit_never_name_the_other_persona(
    home_client: tuple[httpx.AsyncClient, str],
) -> None:
    c, token = home_client
    headers = {"Authorization": f"Bearer {token}"}
    for path in ("/v1/notices", "/v1/audit"):
        r = await c.get(path, headers=headers)
        assert r.status_code == 200
        assert "reintegrated_from" in r.text and SECRET_NAME not in r.text


@pytest.mark.parametrize("name", ["work\n", "work\r\n", "\nwork"])
def test_a_name_with_a_newline_is_refused(name: str) -> None:
    with pytest.raises(InvalidFloorError):
        check_name(name, "persona")


def test_an_absurd_time_zone_is_a_typed_error(store: severance.Store) -> None:
    before = [f.name for f in store.floors()]
    with pytest.raises(InvalidFloorError, match="unknown time zone"):
        store.add_floor("late", persona="home", hours=["mon 18:00-23:00"], timezone="Z" * 5000)
    assert [f.name for f in store.floors()] == before


def test_a_secret_never_shows_its_passphrase() -> None:
    secret = Secret(passphrase="correct horse battery staple")
    assert "correct horse" not in repr(secret) and "correct horse" not in str(secret)


class Wrapped:
    """An embedder object of the caller's own (the bundled model behind another name)."""

    name = "my-wrapped-minilm"

    def __init__(self) -> None:
        self._inner = load_embedder()
        self.dimension = self._inner.dimension
        self.batch_size = self._inner.batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._inner.embed(texts)


def test_the_bundled_embedder_given_as_an_object_reopens(tmp_path: Path) -> None:
    with severance.Store.init(tmp_path / "s", embedder=load_embedder()) as s:
        s.add_persona("work")
    with severance.Store.open(tmp_path / "s") as s:
        assert s.embedder.name == load_embedder().name


def test_an_embedder_object_of_ones_own_must_be_given_again(tmp_path: Path) -> None:
    with severance.Store.init(tmp_path / "s", embedder=Wrapped()) as s:
        s.add_persona("work")
        s.add_floor("office", persona="work")
        with s.enter(floor="office") as w:
            w.remember("Q3 launch moved to Oct 12")
    with severance.Store.open(tmp_path / "s") as s, pytest.raises(EmbedderError, match="object"):
        _ = s.embedder
    with severance.Store.open(tmp_path / "s", embedder=Wrapped()) as s:
        w = s.enter(floor="office")
        assert [r.memory.text for r in w.recall("launch", k=1)] == ["Q3 launch moved to Oct 12"]


# -- two writers of the same memories at the same moment store them once ----------------------
TWIN = """
import sys, time
from pathlib import Path
import severance

location, go = sys.argv[1:]
store = severance.Store.open(location)
with store.enter(floor="office") as session:
    session.count()
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    stored = session.remember_many([f"Invoice {n} is paid" for n in range(120)], batch_size=16)
    print(sum(not m.duplicate for m in stored), flush=True)
store.close()
"""


def test_two_processes_remembering_the_same_memories_store_them_once(
    store: severance.Store, store_location: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", TWIN, store_location, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        go.touch()
        new = [int(child.communicate(timeout=120)[0].strip()) for child in children]
    finally:
        for child in children:
            child.kill()
    assert sum(new) == 120  # between them, each memory was stored exactly once
    with store.enter(floor="office") as s:
        assert s.count() == 120
