"""``severance demo``."""

from __future__ import annotations

import sys

import click

from .. import demo as story


@click.command()
def demo() -> None:
    """Watch a work persona and a home persona remember different things and never leak."""
    if not story.run(click.echo):
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(demo)
