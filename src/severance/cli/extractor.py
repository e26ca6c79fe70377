"""``severance persona set NAME --extractor SPEC`` and the output of ``remember --infer``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import click

from ..chat import Conversation
from ..errors import InvalidInputError, NoExtractorError
from ..extract import Extraction
from ..importers import Routed
from ..model import new_id
from ..session import Session
from .common import json_option, open_store, print_json
from .persona import persona
from .secret_input import persona_secret


@persona.command("set")
@click.argument("name")
@click.option(
    "--extractor",
    "spec",
    required=True,
    help="openai:URL#model=NAME, ollama:URL#model=NAME or none (see docs/extraction.md).",
)
@click.option("--api-key-env", help="Read the endpoint's API key from this variable at each call.")
@click.option(
    "--api-key-stdin",
    is_flag=True,
    help="Read the API key from standard input and keep it in the persona's sealed settings.",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False),
    help="For a sealed persona: its key file (else --persona-key-file or its passphrase "
    "in $SEVERANCE_PERSONA_PASSPHRASE).",
)
@json_option
def set_(
    name: str,
    spec: str,
    api_key_env: str | None,
    api_key_stdin: bool,
    secret_file: str | None,
    as_json: bool,
) -> None:
    """Give persona NAME its own fact extractor (an LLM endpoint), or remove it with none."""
    api_key = None
    if api_key_stdin:
        api_key = sys.stdin.readline().strip()
        if not api_key:
            raise InvalidInputError("--api-key-stdin read no key from standard input")
    with open_store() as store:
        sealed = store.persona(name).sealed
        secret = persona_secret(secret_file, ask=False, prompt="") if sealed else None
        shown = store.set_extractor(
            name, spec, api_key_env=api_key_env, api_key=api_key, secret=secret
        )
    if as_json:
        print_json({"persona": name, **(shown or {"extractor": "none", "api_key": None})})
    elif shown is None:
        click.echo(f"Persona {name} has no extractor: writes stay LLM-free.")
    else:
        key = f" (API key: {shown['api_key']})" if shown["api_key"] else ""
        click.echo(f"Persona {name} extracts facts with {shown['extractor']}{key}.")


def remember_inferred(
    session: Session, conversation: Conversation, keep_turns: bool, as_json: bool
) -> None:
    """Run ``remember --file --infer`` in an awake session and report it."""
    result = _extract_with_bar(session, [conversation], keep_turns)
    if as_json:
        print_json(
            {"persona": session.persona, "session": conversation.session, **result.to_dict()}
        )
        return
    click.echo(_summary(session.persona, result))


def import_inferred(
    plan: Sequence[Routed],
    wake_persona: Callable[[str], AbstractContextManager[Session]],
    as_json: bool,
    *,
    importer: str = "import",
) -> None:
    """Run ``import --infer``: each persona's conversations through its own extractor, the
    turns kept as episodes too (so a rerun finds them), with a progress bar per persona.
    Each persona's share is audited as an ``import`` (as without ``--infer``) besides the
    ``extraction`` entry."""
    by_persona: dict[str, list[Conversation]] = {}
    for routed in plan:
        drafts = routed.item.drafts
        first = drafts[0].metadata.get("session") if drafts else None
        session_id = first if isinstance(first, str) else routed.item.ref or new_id("s_")
        by_persona.setdefault(routed.persona, []).append(Conversation(drafts, session_id))
    reports: list[tuple[str, Extraction]] = []
    with ExitStack() as awake:
        sessions = {name: awake.enter_context(wake_persona(name)) for name in by_persona}
        # Every persona must have its extractor before any of them writes.
        for name, session in sessions.items():
            if session.extractor() is None:
                raise NoExtractorError(
                    f"persona {name!r} has no extractor: set one with "
                    f"`severance persona set {name} --extractor SPEC`, or import without --infer"
                )
        for name, conversations in by_persona.items():
            result = _extract_with_bar(sessions[name], conversations, True)
            known = sum(1 for m in result.episodes if m.duplicate)
            sessions[name].log_import(
                importer,
                items=len(conversations),
                remembered=len(result.episodes) - known,
                already_known=known,
            )
            reports.append((name, result))
    if as_json:
        print_json([{"persona": p, **r.to_dict()} for p, r in reports])
        return
    for name, result in reports:
        click.echo(_summary(name, result))


def _extract_with_bar(
    session: Session, conversations: list[Conversation], keep_turns: bool
) -> Extraction:
    settings = session.extractor()
    if settings is None:
        return session.extract(conversations)  # raises NoExtractorError, with its hint
    calls = sum(-(-len(c.drafts) // settings.spec.batch) for c in conversations)
    label = f"Extracting facts in {session.persona}"
    # click's progressbar overloads do not type a length-only bar.
    progressbar: Any = click.progressbar
    with progressbar(length=max(1, calls), label=label, file=sys.stderr) as bar:
        done = [0]

        def progress(n: int, _total: int) -> None:
            bar.update(n - done[0])
            done[0] = n

        return session.extract(
            conversations, keep_turns=keep_turns, progress=progress, settings=settings
        )


def _summary(persona: str, result: Extraction) -> str:
    cost = result.cost
    calls = f"{cost.calls} call{'s' if cost.calls != 1 else ''}"
    if cost.prompt_tokens is not None or cost.completion_tokens is not None:
        calls += f", {cost.prompt_tokens or 0} prompt + {cost.completion_tokens or 0} answer tokens"
    turns = f"; {len(result.episodes)} turns kept" if result.episodes else ""
    return (
        f"Persona {persona}: {len(result.added)} facts added, {len(result.updated)} updated, "
        f"{len(result.superseded)} superseded{turns} ({calls})."
    )


def register(cli: click.Group) -> None:
    """Nothing to add at the top level: ``set`` hangs under ``persona``."""
