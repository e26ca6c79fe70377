"""Crossings as a Hypothesis state machine, with a second ``Store`` in another *process*.

Random remember / update / forget steps interleave with reintegrate (copy and move, all or a
tag selection), override, clean slate, re-embed and key rotation, while a child process (its
own ``Store`` on the same location) writes into a persona during some of the crossings
(bounded: a few writes per step). A model predicts what every persona holds; after every step:

* nothing is lost and nothing resurrected: each persona holds exactly the model's texts;
* no crossing changes a text: a copy holds its origin's text, a merge keeps the target's;
  only identical normalised text (for a move, with the same kind and metadata) merges;
* a persona erased by a clean slate is unreadable from its old session, and the next persona
  of that name starts empty;
* every stored memory reads back identically through Python, the CLI's ``--json`` output, the
  HTTP API and export (checked at the end of each example, and after every concurrent step
  through Python and export).

Every draw is shaped only by the rules, never by what the model holds (memories are picked
by a drawn number, in the model's order): a race may make a replay go differently, and then
Hypothesis reports the failure as flaky, but it never finds the steps themselves changed.
"""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import textwrap
from collections import Counter
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from starlette.testclient import TestClient

import severance
from severance import PersonaErasedError, Store
from severance.cli import main as cli_main
from severance.crossings import Selection, normalise_text
from severance.http import create_app
from severance.passes import Passes

ROLES = ("a", "b", "c")
WORDS = ["invoice", "dentist", "launch", "garden"]
KINDS = ["note", "fact"]
roles = st.sampled_from(ROLES)
#: Small pools, so identical texts (in another case too) and number-only variants both occur.
texts = st.builds(
    lambda w, n, upper: f"{w} {n} is due" if not upper else f"{w.upper()} {n} IS DUE",
    st.sampled_from(WORDS),
    st.sampled_from([4411, 4412]),
    st.booleans(),
)
CHILD_WRITES = 6

CHILD = textwrap.dedent(
    """
    import sys
    import severance
    from severance import SeveranceError

    store = severance.Store.open(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        floor, n, prefix = line.split()
        try:
            with store.enter(floor=floor) as s:
                for i in range(int(n)):
                    m = s.remember(f"{prefix} child note {i}", tags=["child"])
                    print("ack", m.id, m.text.replace(" ", "_"), flush=True)
        except SeveranceError as e:
            print("stop", type(e).__name__, flush=True)
        print("done", flush=True)
    store.close()
    """
)


@dataclass(frozen=True)
class Entry:
    text: str
    kind: str
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    version: int


def merge_key(e: Entry | severance.Memory, mode: str) -> tuple[str, ...]:
    key = (normalise_text(e.text),)
    if mode == "move":
        key += (e.kind, json.dumps(e.metadata, sort_keys=True))
    return key


def entry_of(m: severance.Memory) -> Entry:
    return Entry(m.text, m.kind, m.tags, m.metadata, m.version)


class CrossingMachine(RuleBasedStateMachine):
    location: str = ""
    examples = itertools.count()
    children: ClassVar[list[subprocess.Popen[str]]] = []

    def __init__(self) -> None:
        super().__init__()
        n = next(self.examples)
        self.serial = itertools.count()
        self.generation = {role: 0 for role in ROLES}
        self.n = n
        self.store = Store.open(self.location)
        for role in ROLES:
            self.store.add_persona(self.name(role))
            self.store.add_floor(self.floor(role), persona=self.name(role))
        self.model: dict[str, dict[str, Entry]] = {role: {} for role in ROLES}
        self.child = subprocess.Popen(
            [sys.executable, "-c", CHILD, self.location],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        type(self).children.append(self.child)
        assert self.child.stdout is not None
        first = self.child.stdout.readline()
        assert first == "ready\n", (first, self.child.stderr and self.child.stderr.read())

    def teardown(self) -> None:
        try:
            self.check_every_interface()
            assert self.store.verify_audit().ok
        finally:
            assert self.child.stdin is not None and self.child.stdout is not None
            self.child.stdin.close()
            self.child.wait(timeout=60)
            self.child.stdout.close()
            if self.child.stderr is not None:
                self.child.stderr.close()
            self.store.close()

    # -- helpers ------------------------------------------------------------------------------
    def name(self, role: str) -> str:
        return f"{role}-{self.n}-{self.generation[role]}"

    def floor(self, role: str) -> str:
        return f"f{role}-{self.n}-{self.generation[role]}"

    def read(self, role: str) -> dict[str, severance.Memory]:
        with self.store.enter(floor=self.floor(role)) as s:
            exported = {m.id: m for m in s.export()}
            page = s.memories(limit=1000)
            assert {m.id for m in page.items} == set(exported)
            assert s.quarantined() == []
        return exported

    def assert_model(self, role: str) -> None:
        held = self.read(role)
        assert {i: entry_of(m) for i, m in held.items()} == self.model[role]

    def start_child(self, role: str) -> str:
        prefix = f"w{next(self.serial)}"
        assert self.child.stdin is not None
        self.child.stdin.write(f"{self.floor(role)} {CHILD_WRITES} {prefix}\n")
        self.child.stdin.flush()
        return prefix

    def child_acks(self) -> tuple[dict[str, str], str | None]:
        assert self.child.stdout is not None
        acks: dict[str, str] = {}
        stopped = None
        for line in self.child.stdout:
            if line.startswith("ack "):
                _, memory_id, text = line.split()
                acks[memory_id] = text.replace("_", " ")
            elif line.startswith("stop "):
                stopped = line.split()[1]
            elif line == "done\n":
                return acks, stopped
        raise AssertionError("the child process ended")

    def check_every_interface(self) -> None:
        """Python, CLI --json, HTTP and export read every stored memory identically."""
        app = create_app(self.store, rate=None)
        client = TestClient(app)
        passes = Passes(self.store)
        for role in ROLES:
            held = {i: m.to_dict() for i, m in self.read(role).items()}
            buffer = io.StringIO()
            with redirect_stdout(buffer):
                try:
                    cli_main(
                        [
                            *("--store", self.location, "memories"),
                            *("--floor", self.floor(role), "--limit", "1000", "--json"),
                        ]
                    )
                except SystemExit as e:
                    assert e.code in (0, None)
            listed = json.loads(buffer.getvalue())
            items = listed["items"] if isinstance(listed, dict) else listed
            assert {m["id"]: m for m in items} == held
            token = passes.issue(self.floor(role)).token
            r = client.get("/v1/memories?limit=1000", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            over_http = {m["id"]: m for m in r.json()["items"]}
            assert set(over_http) == set(held)
            for memory_id, m in over_http.items():
                assert (m["text"], m["tags"], m["version"]) == (
                    held[memory_id]["text"],
                    held[memory_id]["tags"],
                    held[memory_id]["version"],
                )

    # -- plain writes -------------------------------------------------------------------------
    @rule(role=roles, text=texts, kind=st.sampled_from(KINDS), tag=st.sampled_from(["x", "y"]))
    def remember(self, role: str, text: str, kind: str, tag: str) -> None:
        with self.store.enter(floor=self.floor(role)) as s:
            m = s.remember(text, kind=kind, tags=[tag], metadata={"k": kind})
        self.model[role][m.id] = entry_of(m)

    def pick(self, role: str, nth: int) -> str | None:
        """The ``nth`` memory of ``role`` (wrapping), in the order the model holds them, or
        None if it holds none. Drawn as plain numbers, never from the model: what the model
        holds after a step with the child process depends on how the race went, and draws
        shaped by it would not replay (Hypothesis: FlakyStrategyDefinition)."""
        held = list(self.model[role])
        return held[nth % len(held)] if held else None

    @rule(role=roles, nth=st.integers(0, 999), text=texts)
    def update(self, role: str, nth: int, text: str) -> None:
        memory_id = self.pick(role, nth)
        if memory_id is None:
            return
        with self.store.enter(floor=self.floor(role)) as s:
            m = s.update(memory_id, text)
        self.model[role][memory_id] = entry_of(m)

    @rule(role=roles, nth=st.integers(0, 999))
    def forget(self, role: str, nth: int) -> None:
        memory_id = self.pick(role, nth)
        if memory_id is None:
            return
        with self.store.enter(floor=self.floor(role)) as s:
            s.forget(memory_id)
        del self.model[role][memory_id]

    # -- crossings ----------------------------------------------------------------------------
    @rule(
        source=roles,
        into=roles,
        mode=st.sampled_from(["copy", "move"]),
        tag=st.sampled_from([None, "x"]),
    )
    def reintegrate(self, source: str, into: str, mode: str, tag: str | None) -> None:
        if source == into:
            return
        selection = Selection(tags=(tag,) if tag else None)
        chosen = {i: e for i, e in self.model[source].items() if tag is None or tag in e.tags}
        before = dict(self.model[into])
        report = self.store.reintegrate(
            self.name(source),
            self.name(into),
            select=selection,
            mode=mode,  # type: ignore[arg-type]
        )
        # Predict: merge only into an identical (normalised) text, else copy once.
        targets = {merge_key(e, mode): i for i, e in before.items()}
        carriers: dict[tuple[str, ...], Entry] = {}
        merged_into: Counter[str] = Counter()
        for e in chosen.values():
            key = merge_key(e, mode)
            if key in targets:
                merged_into[targets[key]] += 1
            elif key not in carriers:
                carriers[key] = e
        assert report.selected == len(chosen)
        assert report.copied == len(carriers)
        assert report.merged == len(chosen) - len(carriers)
        after = {i: entry_of(m) for i, m in self.read(into).items()}
        new = {i: e for i, e in after.items() if i not in before}
        # No text changed by a crossing: copies carry their origin's text, kind, metadata.
        assert sorted((e.text, e.kind) for e in new.values()) == sorted(
            (e.text, e.kind) for e in carriers.values()
        )
        bumps = 0
        for i, e in before.items():
            assert after[i].text == e.text  # merges keep the target's text
            bumps += after[i].version - e.version
            if after[i].version > e.version:  # merged: only with an identical text
                assert any(merge_key(c, mode) == merge_key(e, mode) for c in chosen.values())
        assert bumps == sum(merged_into.values())
        self.model[into] = after
        if mode == "move":
            for i in chosen:
                del self.model[source][i]
        self.assert_model(source)

    @rule(role=roles)
    def override(self, role: str) -> None:
        with self.store.override(self.name(role), reason="checking", minutes=1) as s:
            assert s.count() == len(self.model[role])

    @rule(role=roles)
    def reembed(self, role: str) -> None:
        assert self.store.reembed(self.name(role)) == len(self.model[role])
        self.assert_model(role)

    @rule()
    def rotate_key(self) -> None:
        self.store.rotate_key()

    @rule(role=roles)
    def clean_slate(self, role: str) -> None:
        old = self.store.enter(floor=self.floor(role))
        assert self.store.clean_slate(self.name(role), confirm=self.name(role)) == len(
            self.model[role]
        )
        with pytest.raises(PersonaErasedError):
            old.count()
        self.generation[role] += 1
        self.store.add_persona(self.name(role))
        self.store.add_floor(self.floor(role), persona=self.name(role))
        self.model[role] = {}

    # -- a crossing while another process writes ---------------------------------------------
    @rule(
        writer=roles,
        source=roles,
        into=roles,
        crossing=st.sampled_from(["copy", "move", "reembed", "rotate"]),
    )
    def crossing_while_another_process_writes(
        self, writer: str, source: str, into: str, crossing: str
    ) -> None:
        if source == into:
            return
        keys_before = {
            r: Counter(normalise_text(e.text) for e in self.model[r].values()) for r in ROLES
        }
        self.start_child(writer)
        if crossing in ("copy", "move"):
            self.store.reintegrate(self.name(source), self.name(into), mode=crossing)  # type: ignore[arg-type]
        elif crossing == "reembed":
            self.store.reembed(self.name(source))
        else:
            self.store.rotate_key()
        acks, stopped = self.child_acks()
        assert stopped is None and len(acks) == CHILD_WRITES
        held = {r: self.read(r) for r in ROLES}
        # Every acknowledged write is held exactly once: by its persona, or by the target of
        # a move that took it along.
        for memory_id, text in acks.items():
            places = [
                r
                for r in ROLES
                for m in held[r].values()
                if m.id == memory_id
                or (m.text == text and any(o.get("memory_id") == memory_id for o in m.provenance))
            ]
            assert len(places) == 1, (text, places)
        # Nothing else appeared or vanished: the texts are the ones held before and the child's
        # (with copies of them, after a copy).
        everything_before = sum(keys_before.values(), Counter())
        everything_after = Counter(normalise_text(m.text) for r in ROLES for m in held[r].values())
        child = Counter(normalise_text(t) for t in acks.values())
        if crossing in ("copy", "move"):
            # A copy adds copies; a move may merge identical texts: the set is what survives.
            assert set(everything_after) == set(everything_before + child)
        else:
            assert everything_after == everything_before + child
        for r in ROLES:
            self.model[r] = {i: entry_of(m) for i, m in held[r].items()}

    @invariant()
    def no_other_persona_is_readable(self) -> None:
        names = {p.name for p in self.store.personas()}
        assert {self.name(r) for r in ROLES} <= names


def test_crossings_keep_every_promise(store_location: str, backend_name: str) -> None:
    Store.init(store_location).close()
    CrossingMachine.location = store_location
    try:
        run_state_machine_as_test(
            CrossingMachine,
            settings=settings(
                max_examples=6 if backend_name == "sqlite" else 3,
                stateful_step_count=14,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        for child in CrossingMachine.children:
            if child.poll() is None:
                child.kill()
                child.wait()
            for pipe in (child.stdin, child.stdout, child.stderr):
                if pipe is not None and not pipe.closed:
                    pipe.close()
        CrossingMachine.children.clear()
