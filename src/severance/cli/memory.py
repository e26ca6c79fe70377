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

from ..drafts import read_turns, to_draft
from ..errors import InvalidInputError, InvalidTurnsError
from ..model import Memory
from ..search import SearchMode
from ..session import Session
from .common import (
    Wake,
    context_from,
    json_option,
    open_store,
    print_json,
    session_options,
    settings,
)
from .files import private_file


@contextmanager
def awake(wake: Wake) -> Iterator[Session]:
    secret = settings().secret()
    with open_store() as store:
        if wake.override is not None:
            session = store.resume_override(wake.override, secret=secret)
        else:
            context = context_from(wake.floor_name, wake.client, wake.path, wake.host)
            session = store.enter(context, secret=secret)
        with session:
            yield session


def _show(memory: Memory) -> None:
    tags = f"  #{' #'.join(memory.tags)}" if memory.tags else ""
    click.echo(f"{memory.id}  [{memory.kind}]  {memory.occurred_at:%Y-%m-%d %H:%M}{tags}")
    click.echo(f"  {memory.text}")


def _load_records(file: Path) -> list[Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidTurnsError(f"cannot read {str(file)!r}: {e}") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            data = json.loads(text)
            return list(data)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise InvalidTurnsError(
            f"{file.name}: not valid JSON or JSON Lines ({e.msg}, line {e.lineno})"
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
@click.option("--kind", default="note", show_default=True, help="fact, episode, preference, note…")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--meta", help="Metadata as a JSON object.")
@click.option("--occurred", help="When it happened (ISO-8601; default now).")
@click.option("--source", help="Where this memory came from.")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON or JSONL file of conversation turns (speaker, text, timestamp, session).",
)
@json_option
def remember(
    wake: Wake,
    text: str | None,
    kind: str,
    tags: tuple[str, ...],
    meta: str | None,
    occurred: str | None,
    source: str | None,
    file: Path | None,
    as_json: bool,
) -> None:
    """Remember TEXT (or every turn of --file) in the persona that wakes here."""
    if (text is None) == (file is None):
        raise InvalidInputError("give either TEXT or --file")
    if file is not None:
        drafts = read_turns(_load_records(file))
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
        if as_json:
            print_json(
                {"persona": persona, "remembered": len(memories), "ids": [m.id for m in memories]}
            )
        else:
            click.echo(f"Remembered {len(memories)} turns in persona {persona}.")
        return
    assert text is not None
    # Validate before waking anyone, so a bad call leaves not even an enter/exit in the audit.
    draft = to_draft(
        {
            "text": text,
            "kind": kind,
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
    if as_json:
        print_json(memory.to_dict())
    else:
        click.echo(f"Updated {memory.id} (version {memory.version}).")


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
    click.echo(f"Forgot {memory_id}.")


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


@click.command("import")
@session_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_(
    wake: Wake,
    file: Path,
) -> None:
    """Import memories from a JSON Lines export (text, kind, tags, metadata, occurred_at)."""
    records = _load_records(file)
    items = []
    for n, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise InvalidInputError(f"record {n}: expected a JSON object")
        try:
            items.append(
                to_draft(
                    {
                        key: record[key]
                        for key in ("text", "kind", "tags", "metadata", "occurred_at", "source")
                        if key in record
                    }
                )
            )
        except InvalidInputError as e:
            raise InvalidInputError(f"record {n}: {e}") from None
    with awake(wake) as s:
        memories_ = s.remember_many(items)
        persona = s.persona
    click.echo(f"Imported {len(memories_)} memories into {persona}.")


def register(cli: click.Group) -> None:
    for command in (remember, recall, get, update, forget, history, memories, export, import_):
        cli.add_command(command)
