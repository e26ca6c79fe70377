"""The ``severance`` command line: one module per command group, all over the public API.

Every error is a :class:`SeveranceError` mapped to one line on stderr and the exit code its
class carries (:attr:`SeveranceError.exit_code`) — never a traceback.
"""

from __future__ import annotations

import sys

import click

from ..errors import (
    AlreadyExistsError,
    EmbedderError,
    ExtractorError,
    IntegrityError,
    InvalidInputError,
    NoFloorError,
    NotFoundError,
    SessionClosedError,
    SeveranceError,
    StorageError,
    StoreError,
    UnlockError,
)
from . import (
    audit,
    console,
    crossings,
    demo,
    floor,
    imports,
    mcp,
    memory,
    passes,
    persona,
    pg,
    serve,
    store,
)
from .common import cli
from .extractor import register as register_extractor  # adds `persona set`

__all__ = ["EXIT_CODES", "cli", "exit_code", "main"]

#: Exit codes by error family, the most specific first: a view of the codes the classes carry
#: (:attr:`SeveranceError.exit_code`, the one source), kept for callers of the former table.
EXIT_CODES: tuple[tuple[type[SeveranceError], int], ...] = tuple(
    (family, family.exit_code)
    for family in (
        InvalidInputError,
        NotFoundError,
        AlreadyExistsError,
        NoFloorError,
        UnlockError,
        IntegrityError,
        EmbedderError,
        StoreError,
        SessionClosedError,
        StorageError,
        ExtractorError,
        SeveranceError,
    )
)


def exit_code(error: SeveranceError) -> int:
    """The ``severance`` command's exit status for ``error`` (its class's ``exit_code``)."""
    return error.exit_code


for module in (
    store,
    persona,
    floor,
    memory,
    imports,
    crossings,
    audit,
    passes,
    pg,
    serve,
    console,
    mcp,
    demo,
):
    module.register(cli)
register_extractor(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``severance`` command."""
    try:
        cli.main(args=argv, prog_name="severance", standalone_mode=False)
    except SeveranceError as e:
        click.echo(f"severance: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("severance: aborted", err=True)
        sys.exit(130)
    except click.UsageError as e:
        # One line, like every other error; the usage text is one --help away.
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        click.echo(f"severance: error: {e.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"severance: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("severance: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
