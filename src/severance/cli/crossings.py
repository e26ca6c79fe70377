"""The crossings: ``reintegrate``, ``override``, ``clean-slate``, ``keys rotate``,
``persona seal|unseal``. Each is explicit, asks for consent where it cannot be undone, and is
recorded in the audit chain."""

from __future__ import annotations

import os
from typing import Literal

import click

from ..crossings import Selection
from ..errors import InvalidInputError
from ..keys import ENV_PASSPHRASE, Secret
from ..store import MAX_OVERRIDE_MINUTES
from .common import ENV_PERSONA_PASSPHRASE, json_option, open_store, print_json, settings
from .persona import persona
from .secret_input import persona_secret, secret_option


@persona.command("seal")
@click.argument("name")
@secret_option("--secret-file", "Seal with this key file (created if it does not exist).")
def seal(name: str, secret_file: str | None) -> None:
    """Wrap persona NAME's key with its own secret: your master key will no longer open it."""
    secret = persona_secret(secret_file, ask=True, prompt=f"Passphrase for {name}")
    assert secret is not None
    with open_store() as store:
        store.seal_persona(name, secret)
    click.echo(f"Sealed persona {name}: only its own secret opens it now.")


@persona.command("unseal")
@click.argument("name")
@secret_option("--secret-file", "The persona's key file.")
def unseal(name: str, secret_file: str | None) -> None:
    """Wrap persona NAME's key with the master key again (needs its secret)."""
    secret = persona_secret(secret_file, ask=False, prompt="")
    if secret is None:
        secret = Secret(passphrase=click.prompt(f"Passphrase for {name}", hide_input=True))
    with open_store() as store:
        store.unseal_persona(name, secret)
    click.echo(f"Unsealed persona {name}.")


@click.command()
@click.argument("source")
@click.option("--into", required=True, help="The persona that receives the memories.")
@click.option("--query", help="Only the best matches of this query.")
@click.option("--limit", default=50, show_default=True, help="With --query: at most this many.")
@click.option("--tag", "tags", multiple=True, help="Only memories with this tag (repeatable).")
@click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable).")
@click.option("--since", help="Only memories that occurred at or after (ISO-8601).")
@click.option("--until", help="Only memories that occurred before (ISO-8601).")
@click.option("--move", is_flag=True, help="Remove them from SOURCE (default: copy).")
@click.option("--dry-run", is_flag=True, help="Show what would cross; change nothing.")
@click.option(
    "--merge-similar",
    is_flag=True,
    help="Also merge near-duplicates (by default only identical texts merge).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@secret_option(
    "--source-secret-file",
    f"SOURCE's key file, if it is sealed (else --persona-key-file or ${ENV_PERSONA_PASSPHRASE}).",
)
@secret_option(
    "--into-secret-file",
    f"The target's key file, if it is sealed (else --persona-key-file or"
    f" ${ENV_PERSONA_PASSPHRASE}).",
)
@json_option
def reintegrate(
    source: str,
    into: str,
    query: str | None,
    limit: int,
    tags: tuple[str, ...],
    kinds: tuple[str, ...],
    since: str | None,
    until: str | None,
    move: bool,
    dry_run: bool,
    merge_similar: bool,
    yes: bool,
    source_secret_file: str | None,
    into_secret_file: str | None,
    as_json: bool,
) -> None:
    """Copy (or --move) memories of persona SOURCE into another persona."""
    selection = Selection(
        query=query, limit=limit, kinds=kinds or None, tags=tags or None, since=since, until=until
    )
    # An end given no key file of its own falls back to the persona secret of the options or
    # environment (--persona-key-file, $SEVERANCE_PERSONA_PASSPHRASE): without that, a persona
    # sealed with a passphrase could never cross. An unsealed persona ignores the secret.
    fallback = settings().secret()
    src_secret = Secret(key_file=source_secret_file) if source_secret_file else fallback
    dst_secret = Secret(key_file=into_secret_file) if into_secret_file else fallback
    mode: Literal["copy", "move"] = "move" if move else "copy"
    with open_store() as store:
        preview = store.reintegrate(
            source,
            into,
            select=selection,
            mode=mode,
            dry_run=True,
            merge_similar=merge_similar,
            source_secret=src_secret,
            into_secret=dst_secret,
        )
        if dry_run:
            if as_json:
                print_json(preview.to_dict(with_memories=True))
                return
            click.echo(
                f"Would {mode} {preview.selected} memories from {source} into {into}"
                f" ({preview.copied} new, {preview.merged} merged as identical):"
            )
            for m in preview.memories:
                click.echo(f"  {m.id}  {m.text}")
            apart = [x for x in preview.similar if not x.merged]
            if apart:
                click.echo(f"Similar, kept apart ({len(apart)}; --merge-similar would merge them):")
                for x in apart:
                    where = into if x.in_target else source
                    click.echo(f"  {x.memory_id}  ~ {x.similar_to} in {where} ({x.similarity:.3f})")
            return
        if not yes and not as_json:
            click.confirm(
                f"{mode.capitalize()} {preview.selected} memories from {source} into {into}?",
                abort=True,
            )
        report = store.reintegrate(
            source,
            into,
            select=selection,
            mode=mode,
            merge_similar=merge_similar,
            source_secret=src_secret,
            into_secret=dst_secret,
        )
    if as_json:
        print_json(report.to_dict())
    else:
        click.echo(
            f"Reintegrated {report.selected} memories from {source} into {into}:"
            f" {report.copied} copied, {report.merged} merged"
            + (f", {report.removed_from_source} removed from {source}." if move else ".")
        )


@click.command()
@click.argument("name")
@click.option("--reason", required=True, help="Why the persona must wake outside its floor.")
@click.option(
    "--minutes",
    type=int,
    required=True,
    help=f"How long the override lasts (at most {MAX_OVERRIDE_MINUTES}).",
)
@secret_option("--secret-file", "The persona's key file, if it is sealed.")
@json_option
def override(name: str, reason: str, minutes: int, secret_file: str | None, as_json: bool) -> None:
    """Wake persona NAME outside its floor for a while (the overtime contingency).

    Until it expires, memory commands given `--override NAME` work in that persona.
    """
    secret = Secret(key_file=secret_file) if secret_file else settings().secret()
    with (
        open_store() as store,
        store.override(name, reason=reason, minutes=minutes, secret=secret) as session,
    ):
        expires = session.expires_at
    assert expires is not None
    if as_json:
        print_json({"persona": name, "expires_at": expires.isoformat(), "reason": reason})
    else:
        click.echo(
            f"Override of {name} granted until {expires:%Y-%m-%d %H:%M:%S %Z}."
            f" Use `--override {name}` with memory commands; {name} will be told."
        )


@click.command("clean-slate")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask to type the name (for scripts).")
def clean_slate(name: str, yes: bool) -> None:
    """Erase persona NAME for good: its key is destroyed and its memories deleted."""
    confirm = name
    if not yes:
        click.echo(
            f"This destroys persona {name}'s key and every memory it holds. It cannot be undone."
        )
        confirm = click.prompt(f"Type {name} to confirm", default="", show_default=False)
        if confirm != name:
            raise InvalidInputError("the name did not match; nothing was erased")
    with open_store() as store:
        erased = store.clean_slate(name, confirm=confirm)
    click.echo(f"Erased persona {name}: {erased} memories, its key and its index are gone.")


@click.group()
def keys() -> None:
    """Manage the store's master key."""


@keys.command("rotate")
@click.option(
    "--passphrase",
    "use_passphrase",
    is_flag=True,
    help=f"Lock with a new passphrase (prompted, or ${ENV_PASSPHRASE}_NEW).",
)
@click.option(
    "--key-file",
    "key_file",
    type=click.Path(dir_okay=False),
    help="Write the new key here (default: replace the store's key file).",
)
def rotate(use_passphrase: bool, key_file: str | None) -> None:
    """Re-wrap every persona's key under a new master key; the old one stops working."""
    passphrase = None
    if use_passphrase:
        passphrase = os.environ.get(f"{ENV_PASSPHRASE}_NEW") or click.prompt(
            "New passphrase", hide_input=True, confirmation_prompt=True
        )
    with open_store() as store:
        path = store.rotate_key(passphrase=passphrase, key_file=key_file)
    click.echo("Rotated the master key." + (f" New key file: {path}" if path else ""))


def register(cli: click.Group) -> None:
    for command in (reintegrate, override, clean_slate, keys):
        cli.add_command(command)
