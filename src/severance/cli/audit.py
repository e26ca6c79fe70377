"""``severance audit show|verify``."""

from __future__ import annotations

import sys

import click

from .common import json_option, open_store, print_json


@click.group()
def audit() -> None:
    """Read and verify the audit chain."""


@audit.command("show")
@click.option("--persona", help="Only entries about this persona.")
@json_option
def show(persona: str | None, as_json: bool) -> None:
    """Print the audit log (events and counts, never memory content)."""
    with open_store() as store:
        entries = store.audit(persona)
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    for e in entries:
        who = f" {e.persona}" if e.persona else ""
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.detail.items()))
        click.echo(f"{e.seq:>6}  {e.at:%Y-%m-%d %H:%M:%S}  {e.event}{who}  {detail}".rstrip())


@audit.command("verify")
@json_option
def verify(as_json: bool) -> None:
    """Check the chain; exit 1 naming the first bad entry if it was tampered with."""
    with open_store() as store:
        result = store.verify_audit()
    if as_json:
        print_json(result.to_dict())
    elif result.ok:
        click.echo(f"audit chain intact: {result.entries} entries")
    else:
        click.echo(f"audit chain BROKEN at entry {result.first_bad_seq}: {result.reason}", err=True)
    if not result.ok:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(audit)
