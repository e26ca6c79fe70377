"""``severance audit show|verify`` and ``severance doctor``."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta

import click

from ..errors import InvalidInputError
from .common import json_option, open_store, print_json


@click.group()
def audit() -> None:
    """Read and verify the audit chain."""


def _moment(text: str | None, option: str) -> datetime | None:
    """ISO-8601 (naive means UTC) or a span back from now: 30m, 12h, 7d."""
    if text is None:
        return None
    value = text.strip()
    m = re.fullmatch(r"(\d+)\s*([mhdw])", value)
    if m:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m[2]]
        return datetime.now(UTC) - timedelta(**{unit: int(m[1])})
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"invalid {option} {text!r}: use ISO-8601 (2026-05-01T09:00) or 30m, 12h, 7d"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@audit.command("show")
@click.option("--persona", help="Only entries about this persona.")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="Only these events (repeatable), e.g. enter, routed, override, reintegrated_into.",
)
@click.option("--since", help="Only entries at or after: ISO-8601, or 30m / 12h / 7d ago.")
@click.option("--until", help="Only entries before: ISO-8601, or 30m / 12h / 7d ago.")
@json_option
def show(
    persona: str | None,
    events: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Print the audit log (events, clients and workspaces, counts; never memory content)."""
    start, end = _moment(since, "--since"), _moment(until, "--until")
    if start is not None and end is not None and start >= end:
        raise InvalidInputError("--since must be before --until")
    with open_store() as store:
        entries = store.audit(persona)
    wanted = {e.strip() for e in events}
    entries = [
        e
        for e in entries
        if (not wanted or e.event in wanted)
        and (start is None or e.at >= start)
        and (end is None or e.at < end)
    ]
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    for e in entries:
        who = f" {e.persona}" if e.persona else ""
        detail = " ".join(f"{k}={_shown(v)}" for k, v in sorted(e.detail.items()) if v is not None)
        click.echo(f"{e.seq:>6}  {e.at:%Y-%m-%d %H:%M:%S}  {e.event}{who}  {detail}".rstrip())


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


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
