"""The eight vectors, run against one adapter: plant, probe as scope A, count what leaks.

Order matters, because some probes write: first the files at rest (while running, after
close, then reopened), while every victim memory is as planted; then the reads (search,
listing, the forgotten filter), then direct access by id (get and history on every victim
memory; update on half of them, delete on the other half), then the existence oracles (on
the victims still there), then the servers, and last the deletion residue (each victim
scope erased through its own handle, every byte scanned while the system runs and after it
is closed).

Before any probe, a self-check: the caller's handle must find and list the caller's *own*
memories, so a zero below is never an adapter that simply returns nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.isolation.base import Adapter, Call, clock
from bench.isolation.plants import (
    ATTACKER,
    VICTIMS,
    FileHit,
    Plant,
    canaries_in,
    file_stats,
    scan_files,
)
from bench.isolation.tally import Tally, timing_oracle

__all__ = ["SelfCheckFailed", "run_probes"]

Log = Callable[[str], None]
MARKER = "overwritten-by-the-work-handle"


class SelfCheckFailed(RuntimeError):
    """The caller's handle cannot see its own memories: the adapter is broken."""


def _self_check(adapter: Adapter, own: Sequence[Plant]) -> dict[str, Any]:
    keys = {p.key for p in own}
    probe = own[0]
    found = set()
    for c in adapter.search(ATTACKER, probe.canary):
        found |= canaries_in(c.outcome.text, keys)
    listed = set()
    for c in adapter.listing(ATTACKER):
        listed |= canaries_in(c.outcome.text, keys)
    if probe.key not in found or listed != keys:
        raise SelfCheckFailed(
            f"{adapter.label}: scope {ATTACKER!r} found {len(found)} of its own memory by "
            f"canary and listed {len(listed)}/{len(keys)} of its own memories"
        )
    return {"own_found_by_canary": probe.key in found, "own_listed": len(listed)}


def _views(adapter: Adapter, victims: Sequence[Plant]) -> dict[str, str | None]:
    return {p.key: adapter.victim_view(p.scope, p) for p in victims}


def _changed(before: Mapping[str, str | None], after: Mapping[str, str | None]) -> set[str]:
    return {k for k in before if before[k] is not None and after.get(k) != before[k]}


def _search(adapter: Adapter, tally: Tally, victims: Sequence[Plant]) -> None:
    topics_done: set[str] = set()
    for v in victims:
        queries = [v.canary, v.tag, v.metadata["ref"]]
        if v.topic not in topics_done:
            topics_done.add(v.topic)
            queries.append(v.topic)
        for q in queries:
            for c in adapter.search(ATTACKER, q):
                tally.read("search", c.call, c.outcome)
        for c in adapter.filtered_search(ATTACKER, v):
            tally.read("search", c.call, c.outcome)


def _listing(adapter: Adapter, tally: Tally, own: int) -> None:
    for c in adapter.listing(ATTACKER):
        tally.read("listing", c.call, c.outcome)
    for call, reported in adapter.counts(ATTACKER):
        tally.counted("listing", call, reported, own)


def _forgotten(adapter: Adapter, tally: Tally) -> None:
    calls = adapter.forgotten()
    if isinstance(calls, str):
        tally.na("forgotten", calls)
        return
    for c in calls:
        tally.read("forgotten", c.call, c.outcome)


def _ids(adapter: Adapter, tally: Tally, victims: Sequence[Plant]) -> None:
    before = _views(adapter, victims)
    writes: dict[str, str] = {}
    available: set[str] = set()
    for i, v in enumerate(victims):
        ident = adapter.ids[v.key]
        reads: list[Call | None] = [adapter.get(ATTACKER, ident), adapter.history(ATTACKER, ident)]
        for c in reads:
            if c is not None:
                available.add(c.call.split("(")[0])
                tally.read("ids", c.call, c.outcome)
        w = (
            adapter.update(ATTACKER, ident, f"{MARKER} {v.topic}")
            if i % 2 == 0
            else adapter.delete(ATTACKER, ident)
        )
        if w is not None:
            available.add(w.call.split("(")[0])
            tally.read("ids", w.call, w.outcome)
            writes[v.key] = w.call
    if not available:
        tally.na("ids", "the system has no operation taking an id")
        return
    after = _views(adapter, victims)
    for key in sorted(_changed(before, after)):
        state = "gone" if after[key] is None else f"now reads {after[key]!r}"
        call = writes.get(key, "(an id call above)")
        tally.changed("ids", call, {key}, f"victim's memory {state}")


def _oracles(adapter: Adapter, tally: Tally, victims: Sequence[Plant], reps: int) -> None:
    present = [v for v in victims if adapter.victim_view(v.scope, v) is not None]
    if not present:
        tally.note("oracles", "no victim memory left to probe (all deleted by vector 2)")
        return
    # Timing first: it only reads.
    target = present[0]
    timed_v = adapter.timed_get(ATTACKER, adapter.ids[target.key])
    timed_a = adapter.timed_get(ATTACKER, adapter.absent_id())
    if timed_v is not None and timed_a is not None:
        for _ in range(min(20, reps)):  # warm both paths
            clock(timed_v)
            clock(timed_a)
        tv: list[float] = []
        ta: list[float] = []
        rng = random.Random(14)
        for _ in range(reps):
            # Interleaved, in random order within a pair, so drift hits both alike.
            if rng.random() < 0.5:
                tv.append(clock(timed_v))
                ta.append(clock(timed_a))
            else:
                ta.append(clock(timed_a))
                tv.append(clock(timed_v))
        result = timing_oracle(tv, ta)
        tally.timing(adapter.timed_label(), [target], result)
    ops: list[tuple[str, Callable[[str], Call | None]]] = [
        ("get", lambda i: adapter.get(ATTACKER, i)),
        ("history", lambda i: adapter.history(ATTACKER, i)),
        ("update", lambda i: adapter.update(ATTACKER, i, f"{MARKER} oracle")),
        ("delete", lambda i: adapter.delete(ATTACKER, i)),
    ]
    for _name, op in ops:
        for v in present:
            ident, absent = adapter.ids[v.key], adapter.absent_id()
            theirs, nobodys = op(ident), op(absent)
            if theirs is None or nobodys is None:
                break
            tally.oracle(
                f"{theirs.call}  vs  {nobodys.call}",
                v,
                theirs.outcome,
                nobodys.outcome,
                ids=[ident, absent],
            )


def _servers(adapter: Adapter, tally: Tally, victims: Sequence[Plant]) -> None:
    present = [v for v in victims if adapter.victim_view(v.scope, v) is not None]
    before = _views(adapter, present)
    why = adapter.servers(ATTACKER, present, tally)
    if why is not None:
        tally.na("servers", why)
        return
    after = _views(adapter, present)
    for key in sorted(_changed(before, after)):
        tally.changed("servers", "(a server call above)", {key}, f"victim now {after[key]!r}")


def _relative(hit: FileHit, roots: Sequence[Path]) -> FileHit:
    """The hit with its path shown from its root's name (temporary directories vary)."""
    path = Path(hit.path)
    for root in roots:
        if path == root or root in path.parents:
            return FileHit(str(Path(root.name) / path.relative_to(root)), hit.keys)
    return hit


def _scan(
    adapter: Adapter, tally: Tally, vector: str, phase: str, victims: Sequence[Plant]
) -> None:
    roots = adapter.files()
    files, size = file_stats(roots)
    hits = [_relative(h, roots) for h in scan_files(roots, [v.key for v in victims])]
    tally.files(vector, f"scan {phase}", hits)
    tally.note(vector, f"{phase}: scanned {files} files, {size:,} bytes")


def run_probes(
    adapter: Adapter,
    plants: Mapping[str, Sequence[Plant]],
    *,
    timing_reps: int = 200,
    log: Log = print,
) -> tuple[Tally, dict[str, Any]]:
    """Run every vector on ``adapter`` (planting first); the tally and the self-check."""
    victims = [p for s in VICTIMS for p in plants[s]]
    own = list(plants[ATTACKER])
    tally = Tally(victims)
    adapter.plant(plants)
    check = _self_check(adapter, own)
    log(f"   {adapter.label}: planted {sum(len(v) for v in plants.values())}; self-check ok")
    # At rest first, while every victim memory is still as planted.
    _scan(adapter, tally, "at_rest", "while running", victims)
    adapter.close()
    _scan(adapter, tally, "at_rest", "after close", victims)
    adapter.reopen()
    _search(adapter, tally, victims)
    _listing(adapter, tally, len(own))
    _forgotten(adapter, tally)
    _ids(adapter, tally, victims)
    _oracles(adapter, tally, victims, timing_reps)
    _servers(adapter, tally, victims)
    log(f"   {adapter.label}: API probes done; erasing the victim scopes")
    erase_calls: list[str] = []
    for scope in VICTIMS:
        erase_calls += adapter.erase(scope, plants[scope])
    tally.note("residue", "erased with: " + "; ".join(erase_calls))
    _scan(adapter, tally, "residue", "after erasing, while running", victims)
    adapter.close()
    _scan(adapter, tally, "residue", "after erasing, after close", victims)
    return tally, check
