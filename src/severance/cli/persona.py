"""``severance persona add|list``."""

from __future__ import annotations

import click

from .common import json_option, open_store, print_json


@click.group()
def persona() -> None:
    """Manage personas (isolated memory compartments)."""


@persona.command("add")
@click.argument("name")
@json_option
def add(name: str, as_json: bool) -> None:
    """Create persona NAME with its own data key."""
    with open_store() as store:
        info = store.add_persona(name)
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


def register(cli: click.Group) -> None:
    cli.add_command(persona)
