"""Quarantine, not collapse (issue 18, item 6): one row that fails authentication is skipped by
every read, reported by id (a typed error, a notice, an audit entry) and can be forgotten; the
rest of the persona stays readable. Both back-ends: the row is tampered with through the
back-end's own storage calls (what anyone with write access to the database can do), swapping
in another memory's payload or a vector sealed for another version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

import severance
from severance import QuarantinedError
from severance.backends import open_backend
from severance.backends.base import HistoryRow, MemoryRow, PersonaRows
from severance.http import create_app
from severance.passes import Passes


@contextmanager
def raw_rows(location: str, persona_id: str) -> Iterator[PersonaRows]:
    backend = open_backend(location)
    try:
        yield backend.rows(persona_id)
    finally:
        backend.close()


def tamper(location: str, persona_id: str, victim: str, donor: str) -> None:
    """Write a new version of ``victim`` carrying ``donor``'s payload: a row no key holder
    made (its payload is sealed for another memory id and version)."""
    with raw_rows(location, persona_id) as rows:
        old, other = rows.get(victim), rows.get(donor)
        assert old is not None and other is not None
        forged = MemoryRow(
            old.id,
            0,
            old.version + 1,
            old.learned_at,
            old.occurred_at,
            old.updated_at,
            other.payload,
            old.vector,
        )
        rows.replace(
            forged, HistoryRow(old.id, old.version, old.occurred_at, old.updated_at, 0, old.payload)
        )


@pytest.fixture
def work(store: severance.Store) -> Iterator[tuple[severance.Store, list[severance.Memory]]]:
    with store.enter(floor="office") as s:
        made = [
            s.remember("The vault code is 1234", tags=["vault"]),
            s.remember("The lobby opens at 8"),
            s.remember("Parking is on level 3"),
        ]
    yield store, made


def test_a_tampered_row_is_quarantined_and_the_rest_stays_readable(
    work: tuple[severance.Store, list[severance.Memory]], store_location: str
) -> None:
    store, (victim, lobby, parking) = work
    persona_id = store.persona("work").id
    tamper(store_location, persona_id, victim.id, lobby.id)
    with store.enter(floor="office") as s:
        # Listing, recall and export skip it; the others read as before.
        assert {m.id for m in s.memories().items} == {lobby.id, parking.id}
        assert victim.id not in [r.memory.id for r in s.recall("vault code")]
        assert [r.memory.id for r in s.recall("lobby", k=1)] == [lobby.id]
        assert {m.id for m in s.export()} == {lobby.id, parking.id}
        # Reported by id: a typed error, the session's list, a notice.
        with pytest.raises(QuarantinedError) as caught:
            s.get(victim.id)
        assert caught.value.memory_id == victim.id and victim.id in str(caught.value)
        with pytest.raises(QuarantinedError):
            s.history(victim.id)
        assert s.quarantined() == [victim.id]
        (notice,) = [n for n in s.notices() if n.event == "memory_quarantined"]
        assert notice.detail["memory_ids"] == [victim.id]
    # ... and in the audit chain, once per session that found it, with no content.
    entries = [e for e in store.audit("work") if e.event == "memory_quarantined"]
    assert entries and {e.detail["memory_id"] for e in entries} == {victim.id}
    exports = [e for e in store.audit("work") if e.event == "export"]
    assert exports[-1].detail["quarantined"] == [victim.id]
    assert store.verify_audit().ok
    # It can be forgotten; then the persona is whole again.
    with store.enter(floor="office") as s:
        s.forget(victim.id)
        assert s.quarantined() == []
        assert s.count() == 2 and len(s.export()) == 2
        with pytest.raises(severance.MemoryNotFoundError):
            s.get(victim.id)


def test_a_vector_sealed_for_another_version_is_quarantined(
    work: tuple[severance.Store, list[severance.Memory]], store_location: str
) -> None:
    store, (victim, lobby, _) = work
    persona_id = store.persona("work").id
    with raw_rows(store_location, persona_id) as rows:
        old = rows.get(victim.id)
        assert old is not None
        # A new version whose vector is still sealed for the old one (finding 4's outcome).
        with store.enter(floor="office") as s:
            s.update(victim.id, tags=["vault", "moved"])
        new = rows.get(victim.id)
        assert new is not None
        rows.update_vectors({victim.id: (new.version, old.vector)})
    with store.enter(floor="office") as s:
        assert victim.id not in [r.memory.id for r in s.recall("vault")]
        assert s.quarantined() == [victim.id]
        assert [r.memory.id for r in s.recall("lobby", k=1)] == [lobby.id]


@pytest.mark.anyio
async def test_http_and_cli_readers_survive_a_quarantined_row(
    work: tuple[severance.Store, list[severance.Memory]], store_location: str
) -> None:
    store, (victim, lobby, parking) = work
    tamper(store_location, store.persona("work").id, victim.id, parking.id)
    token = Passes(store).issue("office").token
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(store, rate=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        listed = await c.get("/v1/memories", headers=headers)
        assert listed.status_code == 200
        assert {m["id"] for m in listed.json()["items"]} == {lobby.id, parking.id}
        recalled = await c.post("/v1/recall", json={"query": "vault"}, headers=headers)
        assert recalled.status_code == 200
        assert victim.id not in json.dumps(recalled.json())
        got = await c.get(f"/v1/memories/{victim.id}", headers=headers)
        assert got.status_code == 409 and got.json()["code"] == "quarantined"
        assert victim.id in got.json()["detail"]
        gone = await c.delete(f"/v1/memories/{victim.id}", headers=headers)
        assert gone.status_code == 204


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
