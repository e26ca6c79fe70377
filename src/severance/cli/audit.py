"""``severance audit show|verify`` and ``severance doctor``."""

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
@click.option(
    "--repair", is_flag=True, help="Also say, for each problem, what can be done (as `doctor`)."
)
@json_option
def verify(repair: bool, as_json: bool) -> None:
    """Check the chain, and the store against its anchor (rollback, deleted memories); exit 1
    naming the first bad entry and every missing one."""
    with open_store() as store:
        result = store.verify_audit()
        diagnosis = store.diagnose() if repair else None
    if as_json:
        print_json(diagnosis.to_dict() if diagnosis is not None else result.to_dict())
    elif result.ok:
        click.echo(f"audit chain intact: {result.entries} entries")
    else:
        click.echo(f"audit chain BROKEN at entry {result.first_bad_seq}: {result.reason}", err=True)
        for item in result.missing[:20]:
            click.echo(f"  missing {item}", err=True)
    if diagnosis is not None and not as_json:
        _print_diagnosis(diagnosis.lines())
    if not result.ok or (diagnosis is not None and not diagnosis.ok):
        sys.exit(1)


def _print_diagnosis(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"  {line}", err=True)


@click.command()
@click.option(
    "--accept",
    is_flag=True,
    help="Take the store as it is now as the state to check against from here on.",
)
@json_option
def doctor(accept: bool, as_json: bool) -> None:
    """Check the store's trust: forged passes, floors, personas or settings; rollback or
    deleted memories; the audit chain. Says what can be done about each problem."""
    with open_store() as store:
        diagnosis = store.diagnose()
        if accept:
            store.accept_current_state()
    if as_json:
        print_json({**diagnosis.to_dict(), "accepted": accept})
    elif diagnosis.ok:
        click.echo("no problems found")
    else:
        click.echo(f"{len(diagnosis.lines())} problem(s) found:", err=True)
        _print_diagnosis(diagnosis.lines())
        if accept:
            click.echo("the current state is now the one checked against", err=True)
    if not diagnosis.ok and not accept:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(audit)
    cli.add_command(doctor)
