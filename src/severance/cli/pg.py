"""``severance pg provision``: one PostgreSQL login and one store per person.

Run by the schema's owner (an administrator's login), never by the application: it creates a
login role in ``severance_tenant`` and the store row that role owns. Row-level security then
shows that login its own store only — whatever it sets with ``SET``, whatever SQL it runs.
"""

from __future__ import annotations

import os

import click

from ..backends.postgres import PostgresBackend, map_postgres_errors
from ..backends.postgres_migrations import provision_sql
from ..errors import InvalidInputError
from .common import settings


@click.group()
def pg() -> None:
    """PostgreSQL hosting: a login of its own for each person's store."""


@pg.command("provision")
@click.argument("role")
@click.option("--store", "store_name", required=True, help="Name of the store to create.")
@click.option(
    "--admin-url",
    help="URL of the schema owner's login (default: --store location or $SEVERANCE_STORE).",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="Environment variable holding the new login's password.",
)
@click.option("--execute", is_flag=True, help="Run the statements (default: only print them).")
def provision(
    role: str, store_name: str, admin_url: str | None, password_env: str | None, execute: bool
) -> None:
    """Create login ROLE and the store it alone can see; print (or --execute) the SQL."""
    if not role or len(role) > 63 or not role.isprintable():
        raise InvalidInputError("a role name is 1 to 63 printable characters")
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise InvalidInputError(f"${password_env} is not set")
    statements = provision_sql(role, store_name, password)
    if not execute:
        shown = provision_sql(role, store_name, "***" if password is not None else None)
        for statement in shown:
            click.echo(statement.as_string(None) + ";")
        return
    url = admin_url or settings().store_location
    if "://" not in url:
        raise InvalidInputError("--admin-url must be a postgresql:// URL")
    backend = PostgresBackend(url)
    try:
        backend.migrate()  # the schema, its roles and policies must exist first
        with map_postgres_errors():
            import psycopg

            with psycopg.connect(backend.conninfo) as conn, conn.transaction():
                for statement in statements:
                    conn.execute(statement)
    finally:
        backend.close()
    click.echo(f"login {role!r} owns store {store_name!r}; connect as it with ?store={store_name}")


def register(cli: click.Group) -> None:
    cli.add_command(pg)
