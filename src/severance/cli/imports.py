"""``severance import [FORMAT] SOURCE``: bring memories from exports, sorted into personas.

Formats: ``chatgpt`` and ``claude`` (their data-export ZIPs or ``conversations.json``),
``mem0`` (saved ``get_all`` output), ``mcp-memory`` (the reference MCP memory server's
``memory.jsonl``), ``markdown`` (a folder of notes) and ``jsonl`` (Severance's own export, the
default when only SOURCE is given). Everything is read and validated before any persona wakes.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .. import importers
from ..errors import InvalidExportError, InvalidInputError, PersonaNotFoundError
from ..importers import Item, Routed
from ..importers.base import MAX_FILE_BYTES
from ..session import Session
from ..store import Store
from .common import (
    Wake,
    json_option,
    open_store,
    print_json,
    session_options,
    settings,
)


@click.command("import")
@session_options
@click.argument("format_or_source", metavar="[FORMAT] SOURCE")
@click.argument(
    "source", required=False, type=click.Path(exists=True, allow_dash=True, path_type=Path)
)
@click.option(
    "--route",
    "routes",
    multiple=True,
    metavar="RULE",
    help="'title~REGEX -> PERSONA' or 'project~REGEX -> PERSONA' (repeatable; first match "
    "wins; case-insensitive).",
)
@click.option(
    "--default",
    "default",
    metavar="PERSONA",
    help="Where items no rule matches go (default: the persona the context wakes).",
)
@click.option("--dry-run", is_flag=True, help="Show which item goes where; write nothing.")
@click.option(
    "--infer",
    is_flag=True,
    help="Also extract facts with each persona's own extractor (docs/extraction.md).",
)
@json_option
def import_(
    wake: Wake,
    format_or_source: str,
    source: Path | None,
    routes: tuple[str, ...],
    default: str | None,
    dry_run: bool,
    infer: bool,
    as_json: bool,
) -> None:
    """Import memories from SOURCE, read as FORMAT: chatgpt, claude, mem0, mcp-memory,
    markdown or jsonl (the default: a Severance export).

    Each conversation (entity, note, memory) goes to the persona of the first --route that
    matches it, else to --default. Running an import again adds nothing it already added, so
    an interrupted import is finished by running it again. SOURCE '-' reads standard input
    (any format but markdown).
    """
    if source is None:
        format_name, source = "jsonl", Path(format_or_source)
        if format_or_source != "-" and not source.exists():
            raise InvalidInputError(f"no such file: {format_or_source}")
    else:
        format_name = format_or_source
    if format_name not in importers.FORMATS:
        raise InvalidInputError(
            f"unknown format {format_name!r}: use one of {', '.join(importers.FORMATS)}"
        )
    rules = [importers.parse_route(r) for r in routes]
    items = _read(format_name, source)
    if not items:
        raise InvalidInputError(f"{source.name} holds nothing to import")
    secret = settings().secret()
    with open_store() as store:
        here = _context_persona(store, wake)
        known = {p.name for p in store.personas()}
        # Every persona named is checked, used or not: a typo in a rule that happens to match
        # nothing today would silently send tomorrow's matches to the default.
        named = [*(r.persona for r in rules), *([default] if default else [])]
        for persona in dict.fromkeys(named):
            if persona not in known:
                raise PersonaNotFoundError(f"no persona named {persona!r}")
        plan = importers.route(items, rules, default or here)
        if dry_run:
            _show_plan(plan, as_json)
            return
        total = sum(len(r.item.drafts) for r in plan)

        @contextmanager
        def wake_persona(persona: str) -> Iterator[Session]:
            if persona == here:
                session = (
                    store.resume_override(wake.override, secret=secret)
                    if wake.override is not None
                    else store.enter(wake.context(), secret=secret)
                )
            else:
                session = store.enter(floor=_floor_of(store, persona), secret=secret)
            with session:
                yield session

        if infer:
            from .extractor import import_inferred

            import_inferred(plan, wake_persona, as_json, importer=format_name)
            return
        # click's progressbar overloads do not type a length-only bar.
        progressbar: Any = click.progressbar
        with progressbar(length=total, label="Importing", file=sys.stderr) as bar:
            seen = [0]

            def progress(n: int) -> None:
                bar.update(n - seen[0])
                seen[0] = n

            outcomes = importers.run(plan, wake_persona, importer=format_name, progress=progress)
    if as_json:
        print_json(
            {
                "format": format_name,
                "personas": [
                    {
                        "persona": o.persona,
                        "items": o.items,
                        "remembered": o.remembered,
                        "already_known": o.already_known,
                    }
                    for o in outcomes
                ],
            }
        )
        return
    for o in outcomes:
        tail = f" ({o.already_known} already there)" if o.already_known else ""
        click.echo(f"Imported {o.remembered} memories into {o.persona}{tail}.")


def _read(format_name: str, source: Path) -> list[Item]:
    """The items of ``source``; ``-`` is standard input, read whole (within the file limit)."""
    if str(source) != "-":
        return importers.read(format_name, source)
    if format_name == "markdown":
        raise InvalidInputError("markdown reads a folder or a file, not standard input")
    raw = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidExportError(
            f"standard input holds over {MAX_FILE_BYTES:,} bytes; an import reads at most that"
        )
    # The importers read files (a ZIP needs seeking): hand them a private copy named
    # "stdin", so their messages say where the bad record came from.
    with tempfile.TemporaryDirectory(prefix="severance-import-") as folder:
        copy = Path(folder) / "stdin"
        copy.write_bytes(raw)
        return importers.read(format_name, copy)


def _context_persona(store: Store, wake: Wake) -> str:
    if wake.override is not None:
        return wake.override
    return store.resolve(wake.context()).persona


def _floor_of(store: Store, persona: str) -> str:
    floors = [f for f in store.floors() if f.persona == persona]
    if not floors:
        raise PersonaNotFoundError(
            f"persona {persona!r} has no floor to enter by; add one with `severance floor add`"
        )
    return floors[0].name


def _show_plan(plan: list[Routed], as_json: bool) -> None:
    if as_json:
        print_json(
            [
                {
                    "title": r.item.title,
                    "project": r.item.project,
                    "turns": len(r.item.drafts),
                    "persona": r.persona,
                    "rule": r.rule,
                }
                for r in plan
            ]
        )
        return
    width = max(len("persona"), *(len(r.persona) for r in plan))
    click.echo(f"{'persona':<{width}}  {'turns':>6}  title")
    for r in plan:
        project = f"  [{r.item.project}]" if r.item.project else ""
        click.echo(f"{r.persona:<{width}}  {len(r.item.drafts):>6}  {r.item.title}{project}")
    counts: dict[str, int] = {}
    for r in plan:
        counts[r.persona] = counts.get(r.persona, 0) + len(r.item.drafts)
    summary = ", ".join(f"{n} to {p}" for p, n in counts.items())
    click.echo(f"Dry run: {len(plan)} items, {summary}; nothing written.")


def register(cli: click.Group) -> None:
    cli.add_command(import_)
