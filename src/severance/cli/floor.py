"""``severance floor add|list|remove|test``."""

from __future__ import annotations

import click

from .common import context_from, context_options, json_option, open_store, print_json


@click.group()
def floor() -> None:
    """Manage floors (the rules that decide which persona wakes)."""


@floor.command("add")
@click.argument("name")
@click.option("--persona", required=True, help="The persona this floor wakes.")
@click.option("--client", "clients", multiple=True, help="Client-name glob (repeatable).")
@click.option("--path", "paths", multiple=True, help="Workspace-path glob (repeatable).")
@click.option("--host", "hosts", multiple=True, help="Host-name glob (repeatable).")
@click.option("--hours", multiple=True, help="Weekly window, e.g. 'mon-fri 09:00-17:30'.")
@click.option("--tz", "timezone", help="Time zone of --hours (IANA name, default UTC).")
@click.option("--default", "is_default", is_flag=True, help="Wake this floor when none matches.")
@json_option
def add(
    name: str,
    persona: str,
    clients: tuple[str, ...],
    paths: tuple[str, ...],
    hosts: tuple[str, ...],
    hours: tuple[str, ...],
    timezone: str | None,
    is_default: bool,
    as_json: bool,
) -> None:
    """Add floor NAME after the existing ones (first match wins)."""
    with open_store() as store:
        f = store.add_floor(
            name,
            persona,
            clients=clients,
            paths=paths,
            hosts=hosts,
            hours=hours,
            timezone=timezone,
            default=is_default,
        )
    if as_json:
        print_json(f.to_dict())
    else:
        click.echo(f"Added floor {f.name} -> persona {f.persona}.")


@floor.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List floors in the order they are tried."""
    with open_store() as store:
        floors = store.floors()
    if as_json:
        print_json([f.to_dict() for f in floors])
        return
    if not floors:
        click.echo("No floors yet: `severance floor add office --persona work --path '~/work/**'`.")
    for i, f in enumerate(floors, start=1):
        conds = [f"client={c}" for c in f.clients] + [f"path={p}" for p in f.paths]
        conds += [f"host={h}" for h in f.hosts] + [f"hours={h}" for h in f.hours]
        if f.hours:
            conds.append(f"tz={f.timezone or 'UTC'}")
        if f.default:
            conds.append("default")
        click.echo(f"{i}. {f.name} -> {f.persona}  {' '.join(conds) or '(by name only)'}")


@floor.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove floor NAME."""
    with open_store() as store:
        store.remove_floor(name)
    click.echo(f"Removed floor {name}.")


@floor.command("test")
@context_options
@json_option
def test(
    floor_name: str | None, client: str | None, path: str | None, host: str | None, as_json: bool
) -> None:
    """Show which floor and persona would wake for a context, and why."""
    with open_store() as store:
        match = store.resolve(context_from(floor_name, client, path, host))
    if as_json:
        print_json(match.to_dict())
        return
    click.echo(f"floor {match.floor.name} wakes persona {match.persona}")
    for reason in match.reasons:
        click.echo(f"  because {reason}")


def register(cli: click.Group) -> None:
    cli.add_command(floor)
