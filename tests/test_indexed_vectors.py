"""The ``indexed`` vector mode (PostgreSQL + pgvector): plain vectors searched in the database.

The mode is chosen per persona; everything else (text, metadata, history) stays sealed, and
the persona's isolation holds: the database's nearest-neighbour search only ever sees the awake
persona's vectors (row-level security plus a per-persona partial HNSW index).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import severance
from severance.errors import InvalidInputError

WORK = [
    "The Q3 launch moved to October 12",
    "The staging database password rotates every Monday",
    "Standup is at 9:30 in room 4B",
    "The Acme contract renewal is due on March 1",
]
HOME = ["Sarah's birthday is June 3", "Dentist appointment on Tuesday at 4 pm"]


@pytest.fixture
def pg_store(postgres_store_url: str) -> Iterator[severance.Store]:
    store = severance.Store.init(postgres_store_url)
    store.add_persona("work", vectors="indexed")
    store.add_persona("home")
    store.add_floor("office", persona="work")
    store.add_floor("house", persona="home")
    yield store
    store.close()


def test_the_mode_is_per_persona(pg_store: severance.Store) -> None:
    modes = {p.name: p.vectors for p in pg_store.personas()}
    assert modes == {"work": "indexed", "home": "sealed"}
    entries = [e for e in pg_store.audit("work") if e.event == "persona_added"]
    assert entries[0].detail["vectors"] == "indexed"


def test_recall_uses_the_database_index_and_finds_the_right_memory(
    pg_store: severance.Store,
) -> None:
    with pg_store.enter(floor="office") as s:
        ids = {m.text: m.id for m in s.remember_many(WORK)}
        top = s.recall("when is the product launch?", k=2, mode="dense")
        assert top[0].memory.id == ids[WORK[0]]
        assert top[0].dense_rank == 1 and top[0].dense_score is not None
        hybrid = s.recall("staging password", k=1)
        assert hybrid[0].memory.text == WORK[1]


def test_updates_and_forgets_reach_the_database_index(pg_store: severance.Store) -> None:
    with pg_store.enter(floor="office") as s:
        made = s.remember_many(WORK)
        s.update(made[2].id, "Standup moved to the rooftop garden")
        s.forget(made[3].id)
        top = s.recall("rooftop garden meeting", k=1, mode="dense")
        assert top[0].memory.id == made[2].id
        texts = [r.memory.text for r in s.recall("contract renewal", k=4, mode="dense")]
        assert WORK[3] not in texts


def test_the_database_never_returns_another_personas_vectors(pg_store: severance.Store) -> None:
    pg_store.add_persona("side", vectors="indexed")
    pg_store.add_floor("studio", persona="side")
    with pg_store.enter(floor="studio") as side:
        side.remember_many(HOME)
    with pg_store.enter(floor="office") as s:
        s.remember_many(WORK)
        rows = s._vector_rows
        assert rows is not None
        vector = pg_store.embedder.embed(["Sarah's birthday"])[0]
        found = {memory_id for memory_id, _ in rows.nearest(vector, 50)}
        assert found == {m.id for m in s.export()}
        assert all(HOME[0] not in r.memory.text for r in s.recall("Sarah's birthday", k=10))


def test_text_stays_sealed_even_when_vectors_are_indexed(
    pg_store: severance.Store, postgres_store_url: str
) -> None:
    canary = "zebra-canary-7731 in the indexed persona"
    with pg_store.enter(floor="office") as s:
        s.remember(canary)
    dsn = (
        postgres_store_url.split("?")[0]
        + "?"
        + "&".join(
            p for p in postgres_store_url.split("?")[1].split("&") if not p.startswith("store=")
        )
    )
    with psycopg.connect(dsn) as conn:
        payloads = conn.execute("SELECT payload FROM severance.memories").fetchall()
        vectors = conn.execute("SELECT count(*) FROM severance.memory_vectors").fetchone()
    assert all(b"zebra-canary-7731" not in bytes(p[0]) for p in payloads)
    assert vectors is not None and vectors[0] >= 1  # the plain vectors are there, by choice


def test_sqlite_refuses_the_indexed_mode(tmp_path: Path) -> None:
    store = severance.Store.init(tmp_path / "store")
    try:
        with pytest.raises(InvalidInputError):
            store.add_persona("work", vectors="indexed")
        assert store.personas() == []
        with pytest.raises(InvalidInputError):
            store.add_persona("work", vectors="plain")  # type: ignore[arg-type]
    finally:
        store.close()
