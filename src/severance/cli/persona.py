"""``severance persona add|list``."""

from __future__ import annotations

import click

from .common import json_option, open_store, print_json, settings
from .secret_input import persona_secret


@click.group()
def persona() -> None:
    """Manage personas (isolated memory compartments)."""


@persona.command("add")
@click.argument("name")
@click.option("--sealed", is_flag=True, help="Seal it with its own secret (see `persona seal`).")
@click.option(
    "--vectors",
    type=click.Choice(["sealed", "indexed"]),
    default="sealed",
    show_default=True,
    help="indexed: plain vectors searched by pgvector (PostgreSQL only; visible to its admins).",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False),
    help="With --sealed: the key file (created if it does not exist).",
)
@json_option
def add(name: str, sealed: bool, vectors: str, secret_file: str | None, as_json: bool) -> None:
    """Create persona NAME with its own data key."""
    secret = (
        persona_secret(secret_file, ask=True, prompt=f"Passphrase for {name}") if sealed else None
    )
    with open_store() as store:
        info = store.add_persona(
            name, sealed_with=secret, vectors="indexed" if vectors == "indexed" else "sealed"
        )
    if as_json:
        print_json(info.to_dict())
    else:
        click.echo(f"Added persona {info.name}.")


@persona.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the personas of the store."""
    with open_store() as store:
        personas = store.personas()
    if as_json:
        print_json([p.to_dict() for p in personas])
        return
    if not personas:
        click.echo("No personas yet: `severance persona add work`.")
    for p in personas:
        sealed = "  (sealed)" if p.sealed else ""
        click.echo(f"{p.name}{sealed}  created {p.created_at:%Y-%m-%d %H:%M}  {p.embedder}")


@persona.command("reembed")
@click.argument("name")
def reembed(name: str) -> None:
    """Re-embed every memory of persona NAME with the embedder in use (see --embedder)."""
    with open_store() as store:
        count = store.reembed(name, secret=settings().secret())
        model = store.embedder.name
    click.echo(f"Re-embedded {count} memories of {name} with {model}.")


def register(cli: click.Group) -> None:
    cli.add_command(persona)
