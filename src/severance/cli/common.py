"""Shared CLI plumbing: the root group, finding and unlocking the store, context options."""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from ..clients import CLI_CLIENT
from ..errors import MissingKeyError
from ..keys import ENV_PASSPHRASE, Secret
from ..notice_text import describe as describe_notice
from ..session import Session
from ..store import Store
from ..workspace import logical_cwd

ENV_STORE = "SEVERANCE_STORE"
F = TypeVar("F", bound=Callable[..., Any])


ENV_PERSONA_PASSPHRASE = "SEVERANCE_PERSONA_PASSPHRASE"
ENV_EMBEDDER = "SEVERANCE_EMBEDDER"
ENV_PERSONA_KEY_FILE = "SEVERANCE_PERSONA_KEY_FILE"


class Settings:
    def __init__(
        self,
        store: str | None,
        key_file: str | None,
        persona_key_file: str | None,
        embedder: str | None = None,
    ) -> None:
        self.embedder = embedder or os.environ.get(ENV_EMBEDDER)
        self.store_location = (
            store or os.environ.get(ENV_STORE) or str(Path("~/.severance").expanduser())
        )
        self.key_file = key_file
        self.persona_key_file = persona_key_file or os.environ.get(ENV_PERSONA_KEY_FILE)

    def secret(self) -> Secret | None:
        """A sealed persona's secret, if one was given (option or environment)."""
        if self.persona_key_file:
            return Secret(key_file=self.persona_key_file)
        if os.environ.get(ENV_PERSONA_PASSPHRASE):
            return Secret(passphrase=os.environ[ENV_PERSONA_PASSPHRASE])
        return None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--store",
    metavar="PATH_OR_URL",
    help=f"The store (default: ${ENV_STORE}, else ~/.severance).",
)
@click.option("--key-file", type=click.Path(dir_okay=False), help="Unlock with this key file.")
@click.option(
    "--persona-key-file",
    type=click.Path(dir_okay=False),
    help=f"A sealed persona's key file (or ${ENV_PERSONA_KEY_FILE}; a passphrase comes from "
    f"${ENV_PERSONA_PASSPHRASE}).",
)
@click.option(
    "--embedder",
    metavar="SPEC",
    help=f"Embedder for this run (default: the store's; or ${ENV_EMBEDDER}).",
)
@click.version_option(package_name="severance")
@click.pass_context
def cli(
    ctx: click.Context,
    store: str | None,
    key_file: str | None,
    persona_key_file: str | None,
    embedder: str | None,
) -> None:
    """Severance: memory for AI assistants, with work and home kept apart."""
    ctx.obj = Settings(store, key_file, persona_key_file, embedder)


def settings() -> Settings:
    obj = click.get_current_context().find_object(Settings)
    assert obj is not None
    return obj


@contextmanager
def open_store() -> Iterator[Store]:
    """Open the configured store, asking for a passphrase on a terminal if it needs one."""
    s = settings()
    try:
        store = Store.open(s.store_location, key_file=s.key_file, embedder=s.embedder)
    except MissingKeyError:
        if not sys.stdin.isatty() or os.environ.get(ENV_PASSPHRASE):
            raise
        passphrase = click.prompt("Passphrase", hide_input=True)
        store = Store.open(s.store_location, passphrase=passphrase, embedder=s.embedder)
    if store.rollback_problems:
        click.echo(
            f"severance: warning: this store lacks {len(store.rollback_problems)} thing(s) it"
            " had before (rollback or deletion); run `severance doctor`",
            err=True,
        )
    try:
        yield store
    finally:
        store.close()


def context_options(f: F) -> F:
    """--floor/--client/--path/--host/--strict: what decides which persona wakes."""
    f = click.option(
        "--strict",
        is_flag=True,
        help="Refuse, rather than use the default floor, when no floor matches.",
    )(f)
    f = click.option("--host", help="Host name (default: this machine's).")(f)
    f = click.option("--path", "path", help="Workspace path (default: the current directory).")(f)
    f = click.option(
        "--client",
        help=f"Client name or family, e.g. claude-code (default: {CLI_CLIENT}, the terminal).",
    )(f)
    f = click.option("--floor", "floor_name", help="Enter this floor by name.")(f)
    return f


@dataclass(frozen=True)
class Wake:
    """Which persona a memory command wakes: a context, or a running override."""

    floor_name: str | None
    client: str | None
    path: str | None
    host: str | None
    override: str | None
    strict: bool = False

    def context(self) -> dict[str, Any]:
        return context_from(self.floor_name, self.client, self.path, self.host, self.strict)


_WAKE_KEYS = ("floor_name", "client", "path", "host", "override", "strict")


def session_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The context options plus --override, handed to the command as one ``wake`` argument."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wake = Wake(*(kwargs.pop(k) for k in _WAKE_KEYS))
        return f(*args, wake=wake, **kwargs)

    wrapped = click.option(
        "--override",
        "override",
        metavar="PERSONA",
        help="Use the running override of PERSONA (see `severance override`).",
    )(wrapper)
    return context_options(wrapped)


def context_from(
    floor_name: str | None,
    client: str | None,
    path: str | None,
    host: str | None,
    strict: bool = False,
) -> dict[str, Any]:
    """The context a CLI command wakes with: the terminal (client ``severance-cli``) in the
    current directory on this host, unless the options say otherwise."""
    if floor_name:
        return {"floor": floor_name}
    return {
        "client": client or CLI_CLIENT,
        "path": path or logical_cwd(),
        "host": host or socket.gethostname(),
        "strict": strict,
    }


def wake_session(store: Store, wake: Wake, secret: Secret | None) -> Session:
    """Wake the persona a command asked for and tell the user, on stderr, what happened to it
    while it slept (overrides, reintegrations): the CLI's share of every persona's notices."""
    if wake.override is not None:
        session = store.resume_override(wake.override, secret=secret)
    else:
        session = store.enter(wake.context(), secret=secret)
    for notice in session.notices():
        click.echo(f"severance: notice: {describe_notice(session.persona, notice)}", err=True)
    return session


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
