"""Issue 18 item 7: passwords masked wherever a URL is shown, a statement timeout reads as a
timeout, ``/health`` tells when PostgreSQL is down, and a store's key mode is not revealed
to someone who opens it without its key."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from severance import MissingKeyError, StorageTimeoutError, Store, StoreNotFoundError
from severance.backends.postgres import map_postgres_errors, mask_url, parse_url
from severance.http import create_app

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hunter2@db.example/sev?store=a",
        "postgresql://u@db.example/sev?password=hunter2&store=a",
        "postgresql:///sev?host=/run/pg&PASSWORD=hunter2",
        "postgres://u@h/sev?sslpassword=hunter2&sslmode=require",
    ],
)
def test_passwords_are_masked_in_every_shown_url(url: str, pg_url: str) -> None:
    assert "hunter2" not in mask_url(url)
    assert "hunter2" not in parse_url(url)[2]
    assert "***" in mask_url(url)
    # Through the public API too: an error naming the store names it masked.
    target = f"{pg_url}&password=hunter2&store=nobody-here"
    with pytest.raises(StoreNotFoundError) as caught:
        Store.open(target)
    assert "hunter2" not in str(caught.value)


def test_a_statement_timeout_reads_as_a_timeout(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 1")
        with pytest.raises(StorageTimeoutError, match="time limit"), map_postgres_errors():
            conn.execute("SELECT pg_sleep(0.5)")


@pytest.mark.anyio
async def test_health_is_503_while_postgresql_is_unreachable(pg_url: str) -> None:
    location = f"{pg_url}&store=health"
    store = Store.init(location)
    app = create_app(store, rate=None)
    dbname = pg_url.split("?")[0].rsplit("/", 1)[1]
    admin_url = pg_url.replace(f"/{dbname}", "/postgres", 1)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sev.test") as client:
            assert (await client.get("/health")).json()["status"] == "ok"
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                )
            try:
                r = await client.get("/health")
                assert r.status_code == 503
                assert r.json()["status"] == "unavailable"
            finally:
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
            assert (await client.get("/health")).status_code == 200
    finally:
        store.close()


def test_opening_without_the_key_does_not_tell_how_it_is_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.init(tmp_path / "by-passphrase", passphrase="ochre lantern drifts at noon"):
        pass
    key_file = tmp_path / "elsewhere" / "k.key"
    with Store.init(tmp_path / "by-key-file", key_file=key_file):
        pass
    key_file.unlink()  # someone else's store: they hold the key, we do not
    messages = set()
    for name in ("by-passphrase", "by-key-file"):
        with pytest.raises(MissingKeyError) as caught:
            Store.open(tmp_path / name)
        messages.add(str(caught.value))
    assert len(messages) == 1
    assert str(key_file) not in messages.pop()
