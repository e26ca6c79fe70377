"""``severance floor add|list|move|remove|test|strict|clients|families``."""

from __future__ import annotations

import click

from .. import clients as client_table
from ..errors import NoFloorError
from ..floors import Context, FloorMatch, describe_client
from ..workspace import resolve_path
from .common import context_from, context_options, json_option, open_store, print_json


@click.group()
def floor() -> None:
    """Manage floors (the rules that decide which persona wakes)."""


def _warn(text: str) -> None:
    click.echo(f"severance: warning: {text}", err=True)


def _warn_shadows(shadows: list[dict[str, str]], name: str) -> None:
    for shadow in shadows:
        if name in (shadow["floor"], shadow["by"]):
            _warn(shadow["message"])


@floor.command("add")
@click.argument("name")
@click.option("--persona", required=True, help="The persona this floor wakes.")
@click.option(
    "--client",
    "clients",
    multiple=True,
    help="Client family (cursor, claude-code, terminal, …; see `floor families`) or a glob on"
    " the name as sent; '!PATTERN' excludes (repeatable).",
)
@click.option("--path", "paths", multiple=True, help="Workspace-path glob (repeatable).")
@click.option("--host", "hosts", multiple=True, help="Host-name glob (repeatable).")
@click.option("--hours", multiple=True, help="Weekly window, e.g. 'mon-fri 09:00-17:30'.")
@click.option("--tz", "timezone", help="Time zone of --hours (IANA name, default UTC).")
@click.option("--default", "is_default", is_flag=True, help="Wake this floor when none matches.")
@click.option("--before", metavar="FLOOR", help="Try this floor just before FLOOR.")
@click.option("--after", metavar="FLOOR", help="Try this floor just after FLOOR.")
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
    before: str | None,
    after: str | None,
    as_json: bool,
) -> None:
    """Add floor NAME after the existing ones, or --before/--after one (first match wins)."""
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
            before=before,
            after=after,
        )
        position = [x.name for x in store.floors()].index(f.name) + 1
        shadows = [s.to_dict() for s in store.shadowed_floors()]
    unknown = [c for c in f.clients if not client_table.is_known(c)]
    if as_json:
        print_json({**f.to_dict(), "position": position, "warnings": shadows, "unknown": unknown})
        return
    click.echo(f"Added floor {f.name} -> persona {f.persona} at position {position}.")
    for c in unknown:
        _warn(
            f"client {c!r} is neither a known client family nor a name a known client sends;"
            " it will match only a client that sends exactly that (see `severance floor families`)"
        )
    if not f.has_conditions and not f.default:
        _warn(
            f"floor {f.name!r} has no conditions: it wakes only by name (--floor {f.name},"
            " a pass, serve --floor); give --client, --path, --host or --hours to route to it"
        )
    _warn_shadows(shadows, f.name)


def _shown(text: str) -> str:
    # Client names come from clients; one with control characters could rewrite the terminal.
    return text if text.isprintable() else repr(text)


@floor.command("move")
@click.argument("name")
@click.option("--before", metavar="FLOOR", help="Move it just before FLOOR.")
@click.option("--after", metavar="FLOOR", help="Move it just after FLOOR.")
def move(name: str, before: str | None, after: str | None) -> None:
    """Move floor NAME in the order floors are tried (it keeps its passes)."""
    with open_store() as store:
        position = store.move_floor(name, before=before, after=after)
        shadows = [s.to_dict() for s in store.shadowed_floors()]
    click.echo(f"Moved floor {name} to position {position}.")
    _warn_shadows(shadows, name)


@floor.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List floors in the order they are tried."""
    with open_store() as store:
        floors = store.floors()
        shadowed = {s.floor: s for s in store.shadowed_floors()}
        strict = store.strict
    if as_json:
        print_json(
            [
                {
                    **f.to_dict(),
                    "position": i,
                    "shadowed_by": getattr(shadowed.get(f.name), "by", None),
                }
                for i, f in enumerate(floors, start=1)
            ]
        )
        return
    if not floors:
        click.echo("No floors yet: `severance floor add office --persona work --path '~/work/**'`.")
    for i, f in enumerate(floors, start=1):
        conds = [f"client={c}" for c in f.clients] + [f"path={p}" for p in f.paths]
        conds += [f"host={h}" for h in f.hosts] + [f"hours={h}" for h in f.hours]
        if f.hours:
            conds.append(f"tz={f.timezone or 'UTC'}")
        if f.default:
            conds.append("default (not used: strict)" if strict else "default")
        line = f"{i}. {f.name} -> {f.persona}  {' '.join(conds) or '(by name only)'}"
        if f.name in shadowed:
            line += f"  [never matches: shadowed by {shadowed[f.name].by}]"
        click.echo(line)
    if strict:
        click.echo("Strict: a context no floor matches is refused.")


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
    floor_name: str | None,
    client: str | None,
    path: str | None,
    host: str | None,
    strict: bool,
    as_json: bool,
) -> None:
    """Show which floor and persona would wake for a context, and why each floor did or did
    not match."""
    context = context_from(floor_name, client, path, host, strict)
    with open_store() as store:
        checks = store.explain(context)
        try:
            match: FloorMatch | None = store.resolve(context)
            refusal: NoFloorError | None = None
        except NoFloorError as e:
            # Nothing would wake: that is when the per-floor reasons matter most, so show
            # them, then the refusal (and exit non-zero, as the real command would).
            match, refusal = None, e
    ctx = Context.from_mapping(context)
    resolved = [resolve_path(p) for p in ctx.paths]
    if as_json and ctx.floor is not None and match is not None:
        print_json(match.to_dict())
        return
    if as_json:
        print_json(
            {
                **(match.to_dict() if match else {"floor": None, "persona": None, "reasons": []}),
                "refused": str(refusal) if refusal else None,
                "client": ctx.client,
                "client_family": ctx.client_family,
                "paths": list(ctx.paths),
                "resolved_paths": resolved,
                "floors": [c.to_dict() for c in checks],
            }
        )
        if refusal is not None:
            raise refusal
        return
    if ctx.floor is None:
        click.echo(f"client {describe_client(ctx.client)}")
        for given, real in zip(ctx.paths, resolved, strict=True):
            click.echo(f"path   {given}" + (f" -> {real}" if real != given else ""))
        click.echo(f"host   {ctx.host}")
    if match is not None:
        click.echo(f"floor {match.floor.name} wakes persona {match.persona}")
        for reason in match.reasons:
            click.echo(f"  because {reason}")
    else:
        click.echo("no floor wakes for this context")
    if ctx.floor is None:
        click.echo("Every floor, in order:")
        for i, check in enumerate(checks, start=1):
            verdict = "matches" if check.matched else "no match"
            click.echo(f"  {i}. {check.floor.name} ({check.floor.persona}): {verdict}")
            for reason in check.reasons:
                click.echo(f"       {reason}")
    if refusal is not None:
        raise refusal


@floor.command("strict")
@click.argument("mode", type=click.Choice(["on", "off", "status"]), default="status")
def strict_(mode: str) -> None:
    """Refuse (on) or send to the default floor (off) a context no floor matches."""
    with open_store() as store:
        if mode != "status":
            store.set_strict(mode == "on")
        on = store.strict
    click.echo(
        "Strict routing is on: a context no floor matches is refused."
        if on
        else "Strict routing is off: a context no floor matches wakes the default floor."
    )


@floor.command("clients")
@json_option
def clients_(as_json: bool) -> None:
    """List the clients seen (from the audit log) and the floor each woke."""
    with open_store() as store:
        seen = store.clients_seen()
    if as_json:
        print_json(seen)
        return
    if not seen:
        click.echo("No client has woken a persona yet.")
    for item in seen:
        family = item["family"] or "unknown family"
        floors = ", ".join(f"{f} -> {p}" for f, p in item["floors"].items()) or "-"
        family = _shown(family)
        click.echo(
            f"{_shown(item['client'] or '(no name)')}  [{family}]  {item['count']}x,"
            f" last {item['last_seen'][:19]}  floors: {floors}"
        )


@floor.command("families")
@json_option
def families(as_json: bool) -> None:
    """The client families a floor's --client may name, and what each client sends."""
    if as_json:
        print_json(
            [
                {"family": f.name, "title": f.title, "sends": list(f.sends)}
                for f in client_table.FAMILIES
            ]
        )
        return
    for f in client_table.FAMILIES:
        click.echo(f"{f.name:<15} {f.title}: {', '.join(f.sends)}")


def register(cli: click.Group) -> None:
    cli.add_command(floor)
