"""Memory commands: remember, recall, get, update, forget, history, memories, export, import.

Each wakes the persona the context selects (``--floor``, ``--client``, ``--path``,
``--host``; by default the current directory and host) and works only in it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import click

from ..chat import read_conversation
from ..drafts import to_draft
from ..errors import InvalidInputError, InvalidTurnsError
from ..model import Memory
from ..search import SearchMode
from ..session import Session
from .common import (
    Wake,
    json_option,
    open_store,
    print_json,
    session_options,
    settings,
    wake_session,
)
from .files import private_file


@contextmanager
def awake(wake: Wake) -> Iterator[Session]:
    secret = settings().secret()
    with open_store() as store:
        session = wake_session(store, wake, secret)
        with session:
            yield session


def _show(memory: Memory) -> None:
    tags = f"  #{' #'.join(memory.tags)}" if memory.tags else ""
    click.echo(f"{memory.id}  [{memory.kind}]  {memory.occurred_at:%Y-%m-%d %H:%M}{tags}")
    click.echo(f"  {memory.text}")


def _load_records(file: Path) -> list[Any]:
    """The records of a JSON array, JSON Lines or a chat body ``{"messages": [...]}``.

    ``-`` reads standard input.
    """
    try:
        if str(file) == "-":
            text = sys.stdin.buffer.read().decode("utf-8")
        else:
            text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidTurnsError(f"cannot read {str(file)!r}: {e}") from None
    name = "standard input" if str(file) == "-" else file.name
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        return whole
    if isinstance(whole, dict):
        if isinstance(whole.get("messages"), list):
            return list(whole["messages"])
        if len(text.strip().splitlines()) > 1:
            raise InvalidTurnsError(
                f"{name}: one JSON object over several lines; expected a list of turns, "
                'JSON Lines or {"messages": [...]}'
            )
        return [whole]
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise InvalidTurnsError(
            f"{name}: not valid JSON or JSON Lines ({e.msg}, line {e.lineno})"
        ) from None


def _metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        raise InvalidInputError("--meta must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidInputError("--meta must be a JSON object")
    return data


@click.command()
@session_options
@click.argument("text", required=False)
@click.option("--kind", help="fact, episode, preference, note… (default note; --file: episode)")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable; with --file, every turn's).")
@click.option("--meta", help="Metadata as a JSON object (with --file, added to every turn's).")
@click.option(
    "--occurred",
    help="When it happened (ISO-8601; default now). With --file: the time of turns before "
    "the first timestamp.",
)
@click.option("--source", help="Where this memory came from (with --file, every turn's).")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help='A conversation: a JSON array, JSON Lines or {"messages": [...]} of chat messages '
    "(role, content) or turns (speaker, text, timestamp, session); - reads standard input.",
)
@click.option("--session", "session_id", help="With --file: the conversation's session id.")
@click.option(
    "--infer",
    is_flag=True,
    help="With --file: let the persona's extractor turn the turns into facts (docs/extraction.md).",
)
@click.option("--keep-turns", is_flag=True, help="With --infer: keep the turns as episodes too.")
@json_option
def remember(
    wake: Wake,
    text: str | None,
    kind: str | None,
    tags: tuple[str, ...],
    meta: str | None,
    occurred: str | None,
    source: str | None,
    file: Path | None,
    session_id: str | None,
    infer: bool,
    keep_turns: bool,
    as_json: bool,
) -> None:
    """Remember TEXT (- reads it from standard input) or every turn of --file, in the persona
    that wakes here. Remembering what the persona already holds returns the existing memory."""
    if (text is None) == (file is None):
        raise InvalidInputError("give either TEXT or --file")
    if (infer and file is None) or (keep_turns and not infer):
        raise InvalidInputError("--infer goes with --file, and --keep-turns with --infer")
    if file is not None:
        conversation = read_conversation(
            _load_records(file),
            session=session_id,
            at=occurred,
            tags=tags,
            metadata=_metadata(meta),
            source=source,
            kind=kind or "episode",
        )
        drafts = conversation.drafts
        if infer:
            from .extractor import remember_inferred

            with awake(wake) as s:
                remember_inferred(s, conversation, keep_turns, as_json)
            return
        with awake(wake) as s:
            # click's progressbar overloads do not type a length-only bar.
            progressbar: Any = click.progressbar
            with progressbar(length=len(drafts), label="Remembering turns", file=sys.stderr) as bar:
                done = [0]

                def progress(n: int, _total: int) -> None:
                    bar.update(n - done[0])
                    done[0] = n

                memories = s.remember_many(drafts, progress=progress)
            persona = s.persona
        known = sum(1 for m in memories if m.duplicate)
        if as_json:
            print_json(
                {
                    "persona": persona,
                    "session": conversation.session,
                    "remembered": len(memories) - known,
                    "already_known": known,
                    "skipped": conversation.skipped,
                    "ids": [m.id for m in memories],
                }
            )
        else:
            tail = f" ({known} already known)" if known else ""
            skipped = (
                f"; {conversation.skipped} messages without text skipped"
                if conversation.skipped
                else ""
            )
            click.echo(
                f"Remembered {len(memories) - known} turns in persona {persona}{tail}{skipped}."
            )
        return
    if session_id is not None:
        raise InvalidInputError("--session goes with --file")
    assert text is not None
    if text == "-":
        try:
            text = sys.stdin.buffer.read().decode("utf-8").rstrip("\n")
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"standard input is not UTF-8: {e}") from None
    # Validate before waking anyone, so a bad call leaves not even an enter/exit in the audit.
    draft = to_draft(
        {
            "text": text,
            "kind": kind or "note",
            "tags": tags,
            "metadata": _metadata(meta),
            "occurred_at": occurred,
            "source": source,
        }
    )
    with awake(wake) as s:
        memory = s.remember_many([draft])[0]
        persona = s.persona
    if as_json:
        print_json({"persona": persona, "memory": memory.to_dict()})
    elif memory.duplicate:
        click.echo(f"Already remembered in {persona}: {memory.id}")
    else:
        click.echo(f"Remembered in {persona}: {memory.id}")


@click.command()
@session_options
@click.argument("query")
@click.option("-k", "k", default=10, show_default=True, help="How many results.")
@click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only memories with this tag (repeatable).")
@click.option("--since", help="Occurred at or after (ISO-8601).")
@click.option("--until", help="Occurred before (ISO-8601).")
@click.option(
    "--min-similarity",
    type=float,
    help="Drop results with no shared keyword and a lower cosine similarity (e.g. 0.4).",
)
@click.option(
    "--mode", type=click.Choice(["hybrid", "dense", "keyword"]), default="hybrid", show_default=True
)
@click.option("--include-superseded", is_flag=True, help="Also memories no longer true (history).")
@json_option
def recall(
    wake: Wake,
    query: str,
    k: int,
    kinds: tuple[str, ...],
    tags: tuple[str, ...],
    since: str | None,
    until: str | None,
    mode: str,
    min_similarity: float | None,
    include_superseded: bool,
    as_json: bool,
) -> None:
    """Recall what the awake persona knows about QUERY."""
    with awake(wake) as s:
        results = s.recall(
            query,
            k,
            kind=list(kinds) or None,
            tags=list(tags) or None,
            since=since,
            until=until,
            mode=cast(SearchMode, mode),
            min_similarity=min_similarity,
            include_superseded=include_superseded,
        )
        persona = s.persona
    if as_json:
        print_json({"persona": persona, "results": [r.to_dict() for r in results]})
        return
    if not results:
        click.echo(f"{persona} remembers nothing about that.")
    for r in results:
        ranks = f"dense #{r.dense_rank or '-'}, keyword #{r.keyword_rank or '-'}"
        click.echo(f"{r.score:.4f}  {r.memory.text}")
        click.echo(f"        {r.memory.id}  [{r.memory.kind}]  {ranks}")
        if r.memory.valid_until is not None:
            by = f" by {r.memory.superseded_by}" if r.memory.superseded_by else ""
            click.echo(f"        superseded {r.memory.valid_until:%Y-%m-%d %H:%M}{by}")


@click.command()
@session_options
@click.argument("memory_id")
@json_option
def get(
    wake: Wake,
    memory_id: str,
    as_json: bool,
) -> None:
    """Show one memory."""
    with awake(wake) as s:
        memory = s.get(memory_id)
    if as_json:
        print_json(memory.to_dict())
    else:
        _show(memory)


@click.command()
@session_options
@click.argument("memory_id")
@click.argument("text", required=False)
@click.option("--kind")
@click.option("--tag", "tags", multiple=True, help="Replace the tags (repeatable).")
@click.option("--meta", help="Replace the metadata (JSON object).")
@click.option("--occurred", help="When it happened (ISO-8601).")
@json_option
def update(
    wake: Wake,
    memory_id: str,
    text: str | None,
    kind: str | None,
    tags: tuple[str, ...],
    meta: str | None,
    occurred: str | None,
    as_json: bool,
) -> None:
    """Change a memory; the previous version is kept in its history."""
    with awake(wake) as s:
        memory = s.update(
            memory_id,
            text,
            kind=kind,
            tags=list(tags) if tags else None,
            metadata=_metadata(meta),
            occurred_at=occurred,
        )
        persona = s.persona
    if as_json:
        print_json({**memory.to_dict(), "persona": persona})
    else:
        click.echo(f"Updated {memory.id} in {persona} (version {memory.version}).")


@click.command()
@session_options
@click.argument("memory_id")
def forget(
    wake: Wake,
    memory_id: str,
) -> None:
    """Delete a memory for good, history included."""
    with awake(wake) as s:
        s.forget(memory_id)
        persona = s.persona
    click.echo(f"Forgot {memory_id} in {persona}.")


@click.command()
@session_options
@click.argument("memory_id")
@json_option
def history(
    wake: Wake,
    memory_id: str,
    as_json: bool,
) -> None:
    """Every version of a memory, oldest first."""
    with awake(wake) as s:
        versions = s.history(memory_id)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    for v in versions:
        click.echo(f"v{v.version}  {v.updated_at:%Y-%m-%d %H:%M}  {v.text}")


@click.command()
@session_options
@click.option("--limit", default=20, show_default=True)
@click.option("--offset", default=0, show_default=True)
@click.option("--oldest-first", is_flag=True)
@json_option
def memories(
    wake: Wake,
    limit: int,
    offset: int,
    oldest_first: bool,
    as_json: bool,
) -> None:
    """List the awake persona's memories, a page at a time."""
    with awake(wake) as s:
        page = s.memories(limit=limit, offset=offset, newest_first=not oldest_first)
        persona = s.persona
    if as_json:
        print_json(
            {
                "persona": persona,
                "total": page.total,
                "next_offset": page.next_offset,
                "items": [m.to_dict() for m in page.items],
            }
        )
        return
    click.echo(f"{persona}: {page.total} memories")
    for m in page.items:
        _show(m)
    if page.next_offset is not None:
        click.echo(f"(more: --offset {page.next_offset})")


@click.command()
@session_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of standard output.",
)
def export(
    wake: Wake,
    output: Path | None,
) -> None:
    """Export the awake persona's memories as JSON Lines (plaintext: keep it safe).

    A file is written readable by you only (mode 0600), whole or not at all."""
    if output is None:
        with awake(wake) as s:
            lines = [json.dumps(m.to_dict(), ensure_ascii=False) for m in s.export()]
        click.echo("".join(line + "\n" for line in lines), nl=False)
        return
    with private_file(output) as out, awake(wake) as s:
        memories = s.export()
        for m in memories:
            out.write(json.dumps(m.to_dict(), ensure_ascii=False) + "\n")
    click.echo(f"Exported {len(memories)} memories to {output}.", err=True)


def register(cli: click.Group) -> None:
    for command in (remember, recall, get, update, forget, history, memories, export):
        cli.add_command(command)
