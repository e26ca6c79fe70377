"""``severance pass issue|list|revoke``: bearer tokens for the servers, one floor each."""

from __future__ import annotations

import click

from ..passes import Passes, parse_duration
from .common import json_option, open_store, print_json


@click.group("pass")
def pass_() -> None:
    """Manage passes: tokens for the HTTP API (and MCP over HTTP), each good for one floor."""


@pass_.command("issue")
@click.option(
    "--floor", "floor_name", required=True, metavar="NAME", help="The one floor this pass enters."
)
@click.option("--expires", metavar="DURATION", help="Lifetime, e.g. 30d, 12h, 2w (default: none).")
@click.option("--read-only", is_flag=True, help="Allow reading only (recall, get, list…).")
@click.option("--label", help="A note to tell passes apart in `pass list`.")
@json_option
def issue(
    floor_name: str, expires: str | None, read_only: bool, label: str | None, as_json: bool
) -> None:
    """Issue a pass for a floor. The token is printed once and never stored."""
    lifetime = parse_duration(expires) if expires is not None else None
    with open_store() as store:
        issued = Passes(store).issue(
            floor_name, expires_in=lifetime, read_only=read_only, label=label
        )
    if as_json:
        print_json({"token": issued.token, "pass": issued.info.to_dict()})
        return
    info = issued.info
    until = f"until {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else "no expiry"
    mode = "read-only" if info.read_only else "read-write"
    # Only the token goes to stdout, so `TOKEN=$(severance pass issue …)` works.
    click.echo(
        f"Issued pass {info.id} for floor {info.floor} (persona {info.persona}), {mode},"
        f" {until}. Keep the token now; it cannot be shown again:",
        err=True,
    )
    click.echo(issued.token)


@pass_.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List passes (never their tokens)."""
    with open_store() as store:
        passes = Passes(store).list()
    if as_json:
        print_json([p.to_dict() for p in passes])
        return
    if not passes:
        click.echo("No passes yet: `severance pass issue --floor NAME`.")
    for p in passes:
        until = f"expires {p.expires_at:%Y-%m-%d %H:%M}" if p.expires_at else "no expiry"
        flags = "read-only" if p.read_only else "read-write"
        label = f"  {p.label}" if p.label else ""
        click.echo(f"{p.id}  {p.floor} -> {p.persona}  {p.status}  {flags}  {until}{label}")


@pass_.command("revoke")
@click.argument("pass_id")
def revoke(pass_id: str) -> None:
    """Revoke pass PASS_ID; it stops working at once, even in a running server."""
    with open_store() as store:
        info = Passes(store).revoke(pass_id)
    click.echo(f"Revoked pass {info.id} (floor {info.floor}).")


def register(cli: click.Group) -> None:
    cli.add_command(pass_)
