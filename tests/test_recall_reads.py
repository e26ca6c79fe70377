"""What a recall reads after the search (issue 11): only the payloads of the hits it returns,
each opened with every check of a ``get`` — on both back-ends.

A hit whose row fails authentication when it is fetched (tampered with in place, after the
index was loaded) is quarantined and reported; a hit whose row another process deleted (its
tombstone dropped by that process's snapshot) is a ghost: both leave the index, and the next
best memories take their places. Superseded memories take no places unless asked for.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

import severance
from severance import Session, Store
from severance.backends import open_backend
from severance.backends.base import PayloadRow
from severance.codec import MemoryCodec
from severance.errors import IntegrityError
from severance.seal import aad

REPO = Path(__file__).resolve().parent.parent


def ids(results: list[severance.Recall]) -> list[str]:
    return [r.memory.id for r in results]


def overwrite_payload(location: str, persona_id: str, victim: str, donor: str) -> None:
    """Put ``donor``'s sealed payload into ``victim``'s row in place, seq and version kept:
    what anyone with write access to the database can do, and what no sync notices."""
    if location.startswith("postgresql"):
        import psycopg

        parts = urlsplit(location)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "store"]
        with psycopg.connect(urlunsplit(parts._replace(query=urlencode(query)))) as conn:
            conn.execute(
                "UPDATE severance.memories SET payload = (SELECT payload FROM severance.memories"
                " WHERE persona_id = %(p)s AND memory_id = %(d)s)"
                " WHERE persona_id = %(p)s AND memory_id = %(v)s",
                {"p": persona_id, "d": donor, "v": victim},
            )
        return
    with sqlite3.connect(Path(location) / "store.db") as db:
        db.execute(
            "UPDATE memories SET payload = (SELECT payload FROM memories"
            " WHERE persona_id = ? AND id = ?) WHERE persona_id = ? AND id = ?",
            (persona_id, donor, persona_id, victim),
        )


def in_another_process(location: str, code: str) -> None:
    """Run ``code`` (with ``store`` open at ``location``) in a fresh Python process."""
    program = textwrap.dedent(
        f"""
        import severance
        with severance.Store.open({location!r}) as store:
        """
    ) + textwrap.indent(textwrap.dedent(code), "    ")
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def herons(store: Store) -> Iterator[tuple[Session, list[severance.Memory]]]:
    """A session whose index is loaded, holding eight heron memories and two others."""
    with store.enter(floor="office") as s:
        made = [s.remember(f"The grey heron number {i} fished by the lake") for i in range(8)]
        made += [s.remember("Lunch is at noon"), s.remember("The printer is on floor 2")]
        assert len(s.recall("grey heron lake", k=3)) == 3  # the index is loaded
        yield s, made


def test_a_row_tampered_after_the_index_loaded_is_quarantined_by_the_recall(
    herons: tuple[Session, list[severance.Memory]], store_location: str
) -> None:
    s, made = herons
    before = ids(s.recall("grey heron lake", k=3))
    victim = before[0]
    overwrite_payload(store_location, s.persona_id, victim, made[-1].id)
    after = s.recall("grey heron lake", k=3)
    # The victim takes no place: three live memories, the next best after the others.
    assert victim not in ids(after) and len(after) == 3
    assert ids(after)[:2] == before[1:]
    assert s.quarantined() == [victim]
    notice = [n for n in s.notices() if n.event == "memory_quarantined"]
    assert notice and notice[0].detail["memory_ids"] == [victim]
    reported = [e for e in s.audit() if e.event == "memory_quarantined"]
    assert [e.detail["memory_id"] for e in reported] == [victim]
    # Out of the index: the next recall does not meet it again (and reports nothing twice).
    index = s.search_index
    assert index is not None and victim not in index.slot_of
    assert ids(s.recall("grey heron lake", k=3)) == ids(after)
    assert len([e for e in s.audit() if e.event == "memory_quarantined"]) == 1
    with pytest.raises(severance.QuarantinedError):
        s.get(victim)


def test_a_row_deleted_by_another_process_is_a_ghost_removed_from_the_index(
    herons: tuple[Session, list[severance.Memory]], store_location: str
) -> None:
    s, _ = herons
    before = ids(s.recall("grey heron lake", k=3))
    gone = before[0]
    # Another process forgets it and snapshots, dropping the tombstone our sync would read.
    in_another_process(
        store_location,
        f"""
        with store.enter(floor="office") as theirs:
            theirs.forget({gone!r})
            theirs.recall("heron")
            theirs.checkpoint()
        """,
    )
    index = s.search_index
    assert index is not None and gone in index.slot_of  # our index still holds it
    after = s.recall("grey heron lake", k=3)
    assert gone not in ids(after) and len(after) == 3
    assert ids(after)[:2] == before[1:]
    assert gone not in index.slot_of
    assert s.quarantined() == []  # a ghost is not a quarantined row


def test_every_hit_gone_with_the_persona_erased_by_another_process(
    herons: tuple[Session, list[severance.Memory]], store_location: str
) -> None:
    s, _ = herons
    in_another_process(store_location, 'store.clean_slate("work", confirm="work")')
    with pytest.raises(severance.SeveranceError):
        s.recall("grey heron lake", k=3)


def test_superseded_memories_take_no_places_unless_asked_for(store: Store) -> None:
    with store.enter(floor="office") as s:
        old = {
            s.remember(
                f"The heron colony nests on island {i}",
                metadata={"valid_until": "2024-01-01T00:00:00+00:00"},
            ).id
            for i in range(12)
        }
        current = {s.remember(f"The heron colony moved to marsh {i}").id for i in range(3)}
        got = s.recall("heron colony nests island", k=3)
        # The superseded ones rank first, so the search widens until three current ones.
        assert set(ids(got)) == current
        assert all(r.memory.valid_until is None for r in got)
        both = s.recall("heron colony nests island", k=15, include_superseded=True)
        assert set(ids(both)) == old | current


def test_a_filtered_page_reads_payloads_and_skips_a_quarantined_row(
    herons: tuple[Session, list[severance.Memory]], store_location: str
) -> None:
    s, made = herons
    tagged = [s.remember(f"Heron ring {i}", tags=["ringed"]) for i in range(4)]
    overwrite_payload(store_location, s.persona_id, tagged[1].id, made[0].id)
    page = s.memories(tags=["ringed"], newest_first=False)
    assert [m.id for m in page.items] == [tagged[0].id, tagged[2].id, tagged[3].id]
    assert [m.text for m in page.items] == ["Heron ring 0", "Heron ring 2", "Heron ring 3"]
    assert s.quarantined() == [tagged[1].id]


def test_get_payloads_is_get_many_without_the_vectors(store: Store, store_location: str) -> None:
    with store.enter(floor="office") as s:
        made = s.remember_many([f"memory {i}" for i in range(1_203)])
        persona_id = s.persona_id
    with store.enter(floor="house") as h:
        elsewhere, home_id = h.remember("another persona's memory"), h.persona_id
    backend = open_backend(store_location)
    try:
        rows = backend.rows(persona_id)
        # Duplicates, unknown ids and another persona's id; more ids than one SQL list holds.
        wanted = [m.id for m in made] + [made[0].id, "no-such-memory", elsewhere.id]
        full, narrow = rows.get_many(wanted), rows.get_payloads(wanted)
        assert set(narrow) == set(full) == {m.id for m in made}
        for memory_id, row in full.items():
            assert narrow[memory_id] == PayloadRow(
                row.id,
                row.seq,
                row.version,
                row.learned_at,
                row.occurred_at,
                row.updated_at,
                row.payload,
            )
        assert rows.get_payloads([]) == {}
        assert set(backend.rows(home_id).get_payloads(wanted)) == {elsewhere.id}
    finally:
        backend.close()


@pytest.mark.parametrize(
    "body", [b"\xff\xfe not UTF-8", b"{not json", b"[1, 2]", b'{"text": 7}', b'{"text": "t"}']
)
def test_a_payload_that_authenticates_but_is_malformed_is_an_integrity_error(body: bytes) -> None:
    codec = MemoryCodec(os.urandom(32), "store", "persona", 4)
    sealed = codec.sealer.seal(body, aad("store", "persona", "m1", "payload", "1"))
    row = PayloadRow("m1", 1, 1, 0.0, 0.0, 0.0, sealed)
    with pytest.raises(IntegrityError, match="malformed payload"):
        codec.memory(row)


def test_a_loaded_index_is_checked_where_the_hits_are_fetched(
    herons: tuple[Session, list[severance.Memory]], store_location: str, store: Store
) -> None:
    s, _ = herons
    before = ids(s.recall("grey heron lake", k=3))
    # Another persona writes (the store's high water moves, this index is not behind in
    # substance): the same results.
    with store.enter(floor="house") as h:
        h.remember("The grey heron lake house")
    assert ids(s.recall("grey heron lake", k=3)) == before
    # Another process writes a better match into this persona after our index loaded: the
    # recall that fetches its hits finds the index behind, catches up and searches again.
    in_another_process(
        store_location,
        """
        with store.enter(floor="office") as theirs:
            theirs.remember("grey heron lake grey heron lake")
        """,
    )
    after = s.recall("grey heron lake", k=3)
    assert after[0].memory.text == "grey heron lake grey heron lake"
    assert ids(after)[1:] == before[:2]
    # And forgetting it elsewhere takes it out again.
    in_another_process(
        store_location,
        f"""
        with store.enter(floor="office") as theirs:
            theirs.forget({after[0].memory.id!r})
        """,
    )
    assert ids(s.recall("grey heron lake", k=3)) == before


def test_payloads_and_high_water_read_together(store: Store, store_location: str) -> None:
    with store.enter(floor="office") as s:
        made = s.remember_many([f"memory {i}" for i in range(30)])
        persona_id = s.persona_id
    with store.enter(floor="house") as h:
        elsewhere = h.remember("another persona's memory")
    backend = open_backend(store_location)
    try:
        rows = backend.rows(persona_id)
        wanted = [m.id for m in made] + ["no-such-memory", elsewhere.id]
        found, high = rows.payloads_and_high_water(wanted)
        assert found == rows.get_payloads(wanted) and set(found) == {m.id for m in made}
        assert high == rows.high_water() >= max(r.seq for r in found.values())
        assert rows.payloads_and_high_water([]) == ({}, high)
    finally:
        backend.close()
