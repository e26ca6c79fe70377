"""One extraction run: plan every operation with the persona's extractor, then apply them.

Two phases, so that a failure changes nothing. **Plan**: each conversation is cut into batches
of ``spec.batch`` turns; for each batch the persona's own recall finds the most relevant
current memories, the extractor gets them with the turns, and its answer is validated (one
retry on an invalid answer). Facts proposed by earlier batches of the same conversation are
shown to later batches under provisional ids (``new-1``…), so a conversation that says "I live
in Paris" and later "I moved to Berlin" is resolved within the run. Conversations are planned
concurrently, at most ``spec.concurrency`` calls in flight; batches of one conversation run in
order. **Apply**: only when every call succeeded are memories written — episodes (if asked),
new facts, new versions, supersessions — each carrying provenance to its turns, all in *one*
transaction (:attr:`Writer.transaction`, which holds the persona's write lock) with the run's
audit entry: a failure or a crash part-way leaves none of them, never some. Under that lock,
before the first write, every memory a change names is checked to be still as the extractor
was shown it (else :class:`~severance.errors.ExtractionConflictError`, nothing written).

Nothing here reads storage or keys: the session hands in its recall (``context``) and its
write calls (:class:`Writer`), and only ever its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..chat import Conversation
from ..errors import (
    ExtractionConflictError,
    ExtractorError,
    ExtractorOutputError,
    MemoryNotFoundError,
)
from ..model import Memory, MemoryDraft, Recall
from ..validate import MAX_K, MAX_QUERY_CHARS
from .client import ChatClient, Reply
from .operations import ANSWER_SCHEMA, Operation, parse_answer
from .prompt import Shown, Turn, build_messages, retry_message
from .supersession import mark_superseded

__all__ = ["Cost", "Extraction", "Writer", "extract", "relevant_memories"]

Context = Callable[[Sequence[str], int], Sequence[Memory]]
Progress = Callable[[int, int], None]


@dataclass
class Cost:
    """What a run cost: calls made (retries included) and tokens, when the server said."""

    calls: int = 0
    retries: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, reply: Reply | None, *, retry: bool = False) -> None:
        with self._lock:
            self.calls += 1
            self.retries += int(retry)
            if reply is not None and reply.prompt_tokens is not None:
                self.prompt_tokens = (self.prompt_tokens or 0) + reply.prompt_tokens
            if reply is not None and reply.completion_tokens is not None:
                self.completion_tokens = (self.completion_tokens or 0) + reply.completion_tokens

    def to_dict(self) -> dict[str, int | None]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass(frozen=True)
class Extraction:
    """What a run wrote. ``memories`` is every fact it added or changed, in that order."""

    added: tuple[Memory, ...]
    updated: tuple[Memory, ...]
    superseded: tuple[Memory, ...]
    episodes: tuple[Memory, ...]
    cost: Cost

    @property
    def memories(self) -> list[Memory]:
        return [*self.added, *self.updated, *self.superseded]

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [m.id for m in self.added],
            "updated": [m.id for m in self.updated],
            "superseded": [m.id for m in self.superseded],
            "episodes": [m.id for m in self.episodes],
            "cost": self.cost.to_dict(),
        }


@dataclass(frozen=True)
class Writer:
    """The session's write calls an extraction uses (all bound to the one awake persona)."""

    get: Callable[[str], Memory]
    add: Callable[[Sequence[MemoryDraft], Sequence[Mapping[str, Any]]], list[Memory]]
    #: (memory id, new text or None, new metadata or None, provenance entry) -> new version
    revise: Callable[[str, str | None, Mapping[str, Any] | None, Mapping[str, Any]], Memory]
    episodes: Callable[[Sequence[MemoryDraft]], list[Memory]]
    #: One transaction holding the persona's write lock, around every write of the run; it is
    #: handed the texts about to be written, to embed them before it takes the lock.
    transaction: Callable[[Sequence[str]], AbstractContextManager[None]]
    #: Called inside that transaction once everything is written (the run's audit entry).
    done: Callable[[Extraction], object]


@dataclass
class _Fact:
    """A fact to add, proposed in this run under a provisional id."""

    key: str
    text: str
    kind: str
    turns: list[int]
    occurred_at: datetime
    valid_until: datetime | None = None
    superseded_by: str | None = None


@dataclass(frozen=True)
class _Change:
    op: Literal["update", "supersede"]
    memory_id: str
    text: str | None
    turns: tuple[int, ...]
    at: datetime
    by: str | None


@dataclass
class _Plan:
    conversation: Conversation
    turns: list[Turn]
    facts: list[_Fact] = field(default_factory=list)
    changes: list[_Change] = field(default_factory=list)
    #: The version of each stored memory as the extractor was shown it.
    versions: dict[str, int] = field(default_factory=dict)


def extract(
    conversations: Sequence[Conversation],
    client: ChatClient,
    context: Context,
    writer: Writer,
    *,
    keep_turns: bool = False,
    progress: Progress | None = None,
) -> Extraction:
    """Plan every conversation with ``client`` (nothing written if any call fails), then apply."""
    spec = client.settings.spec
    cost = Cost()
    plans = [_Plan(c, _turns(c)) for c in conversations]
    total = sum(-(-len(p.turns) // spec.batch) for p in plans)
    done = [0]
    lock = threading.Lock()

    def step() -> None:
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], total)

    def plan_one(plan: _Plan) -> None:
        for start in range(0, len(plan.turns), spec.batch):
            _plan_batch(plan, plan.turns[start : start + spec.batch], client, context, cost)
            step()

    workers = max(1, min(spec.concurrency, len(plans)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="extract") as pool:
        futures = [pool.submit(plan_one, p) for p in plans]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Stop sending the rest: the run fails as a whole and writes nothing.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return _apply(plans, writer, client.settings.spec.to_text(), keep_turns, cost)


def relevant_memories(
    recall: Callable[..., Sequence[Recall]], texts: Sequence[str], limit: int
) -> list[Memory]:
    """The ``limit`` current memories (episodes aside) most relevant to any of ``texts``,
    found with ``recall`` — the awake session's own, so only its persona is ever searched."""
    best: dict[str, tuple[float, Memory]] = {}
    for text in texts:
        query = " ".join(text.split())[:MAX_QUERY_CHARS]
        if not query:
            continue
        # Episodes are the raw turns, not facts to revise: ask deeper, then leave them out.
        for hit in recall(query, k=min(MAX_K, 3 * limit)):
            memory = hit.memory
            if memory.kind == "episode":
                continue
            if memory.id not in best or best[memory.id][0] < hit.score:
                best[memory.id] = (hit.score, memory)
    ranked = sorted(best.values(), key=lambda pair: -pair[0])
    return [memory for _, memory in ranked[:limit]]


def _turns(conversation: Conversation) -> list[Turn]:
    turns = []
    for i, draft in enumerate(conversation.drafts):
        number = draft.metadata.get("turn", i)
        speaker = draft.metadata.get("speaker", "user")
        assert draft.occurred_at is not None  # read_conversation always sets one
        speaker = speaker if isinstance(speaker, str) else "user"
        # Episode texts lead with "speaker: " (severance.chat); the prompt names it apart.
        text = draft.text.removeprefix(f"{speaker}: ")
        turns.append(
            Turn(
                number=number if isinstance(number, int) else i,
                speaker=speaker,
                at=draft.occurred_at,
                text=text,
            )
        )
    return turns


def _plan_batch(
    plan: _Plan, turns: list[Turn], client: ChatClient, context: Context, cost: Cost
) -> None:
    limit = client.settings.spec.context
    existing = list(context([t.text for t in turns], limit)) if limit else []
    for m in existing:
        plan.versions.setdefault(m.id, m.version)
    # Show memories as this run has left them so far: revised text, superseded ones not at all.
    revised: dict[str, str | None] = {}
    for change in plan.changes:
        revised[change.memory_id] = change.text if change.op == "update" else None
    shown = [
        Shown(m.id, revised.get(m.id, m.text) or "")
        for m in existing
        if m.id not in revised or revised[m.id] is not None
    ]
    shown += [Shown(f.key, f.text) for f in plan.facts if f.valid_until is None]
    numbers = {t.number: t for t in turns}
    messages = build_messages(turns, shown)
    ids = {s.id for s in shown}
    reply: Reply | None = None
    try:
        reply = _call(client, messages, cost)
        operations = parse_answer(reply.content, ids, numbers)
    except ExtractorOutputError as first:
        retry = messages + retry_message(reply.content if reply else "", str(first))
        reply = _call(client, retry, cost, retry=True)
        operations = parse_answer(reply.content, ids, numbers)
    _record(plan, operations, numbers)


def _call(
    client: ChatClient, messages: list[dict[str, str]], cost: Cost, *, retry: bool = False
) -> Reply:
    """One call, counted whether or not it succeeds (a failed call may still be billed)."""
    try:
        reply = client.complete(messages, ANSWER_SCHEMA)
    except ExtractorError:
        cost.count(None, retry=retry)
        raise
    cost.count(reply, retry=retry)
    return reply


def _record(plan: _Plan, operations: list[Operation], numbers: Mapping[int, Turn]) -> None:
    by_key = {f.key: f for f in plan.facts}
    keys: dict[int, str] = {}
    for position, op in enumerate(operations):
        if op.op == "add":
            key = f"new-{len(plan.facts) + 1}"
            assert op.text is not None
            fact = _Fact(key, op.text, op.kind, list(op.turns), _latest(op.turns, numbers))
            plan.facts.append(fact)
            by_key[key] = fact
            keys[position] = key
    for op in operations:
        if op.op == "add":
            continue
        assert op.memory_id is not None
        at = _latest(op.turns, numbers)
        by = keys.get(op.by) if op.by is not None else None
        target = by_key.get(op.memory_id)
        if target is not None:  # a fact proposed earlier in this run
            if op.op == "update":
                assert op.text is not None
                target.text = op.text
                target.turns += [t for t in op.turns if t not in target.turns]
            else:
                target.valid_until, target.superseded_by = at, by
            continue
        plan.changes.append(_Change(op.op, op.memory_id, op.text, op.turns, at, by))  # type: ignore[arg-type]


def _latest(turns: Sequence[int], numbers: Mapping[int, Turn]) -> datetime:
    return max(numbers[t].at for t in turns)


def _apply(
    plans: list[_Plan], writer: Writer, extractor: str, keep_turns: bool, cost: Cost
) -> Extraction:
    # A first look before embedding anything, so a run already stale fails at once.
    _check_unchanged(plans, writer)
    texts = [f.text for p in plans for f in p.facts]
    texts += [c.text for p in plans for c in p.changes if c.text is not None]
    if keep_turns:
        texts += [d.text for p in plans for d in p.conversation.drafts]
    with writer.transaction(texts):
        # Again holding the lock, where nothing can change before the commit.
        _check_unchanged(plans, writer)
        result = _write(plans, writer, extractor, keep_turns, cost)
        writer.done(result)
    return result


def _check_unchanged(plans: list[_Plan], writer: Writer) -> None:
    """Every memory a change names must still be there, as the extractor saw it: a decision
    made on words another writer has since changed (or forgotten) would overwrite that change
    without anyone having read it."""
    for plan in plans:
        for change in plan.changes:
            try:
                current = writer.get(change.memory_id)
            except MemoryNotFoundError:
                raise _conflict(change.memory_id) from None
            if current.version != plan.versions.get(change.memory_id, current.version):
                raise _conflict(change.memory_id)


def _conflict(memory_id: str) -> ExtractionConflictError:
    return ExtractionConflictError(
        f"memory {memory_id!r} was changed or forgotten by another writer while the extractor"
        " was reading it; nothing was written: run the extraction again",
        memory_id=memory_id,
    )


def _write(
    plans: list[_Plan], writer: Writer, extractor: str, keep_turns: bool, cost: Cost
) -> Extraction:
    added: list[Memory] = []
    updated: list[Memory] = []
    superseded: list[Memory] = []
    episodes: list[Memory] = []
    for plan in plans:
        session = plan.conversation.session
        turn_ids: dict[int, str] = {}
        if keep_turns:
            stored = writer.episodes(plan.conversation.drafts)
            episodes += stored
            turn_ids = {t.number: m.id for t, m in zip(plan.turns, stored, strict=True)}

        def origin(
            turns: Sequence[int], session: str = session, ids: dict[int, str] = turn_ids
        ) -> dict[str, Any]:
            entry: dict[str, Any] = {
                "via": "extraction",
                "extractor": extractor,
                "session": session,
                "turns": sorted(turns),
            }
            if ids:
                entry["episodes"] = [ids[t] for t in sorted(turns) if t in ids]
            return entry

        drafts = [
            MemoryDraft(
                text=f.text,
                kind=f.kind,
                metadata={"session": session},
                occurred_at=f.occurred_at,
                source="extraction",
            )
            for f in plan.facts
        ]
        new = writer.add(drafts, [origin(f.turns) for f in plan.facts]) if drafts else []
        real = {f.key: m.id for f, m in zip(plan.facts, new, strict=True)}
        for fact, memory in zip(plan.facts, new, strict=True):
            if fact.valid_until is not None:
                by = real.get(fact.superseded_by) if fact.superseded_by else None
                memory = writer.revise(
                    memory.id,
                    None,
                    mark_superseded(memory.metadata, fact.valid_until, by),
                    origin(fact.turns),
                )
                superseded.append(memory)
            else:
                added.append(memory)
        for change in plan.changes:
            if change.op == "update":
                updated.append(
                    writer.revise(change.memory_id, change.text, None, origin(change.turns))
                )
            else:
                old = writer.get(change.memory_id)
                by = real.get(change.by) if change.by else None
                superseded.append(
                    writer.revise(
                        change.memory_id,
                        None,
                        mark_superseded(old.metadata, change.at, by),
                        origin(change.turns),
                    )
                )
    return Extraction(tuple(added), tuple(updated), tuple(superseded), tuple(episodes), cost)
