"""``severance init``: create a store and its master key."""

from __future__ import annotations

import os

import click

from ..keys import ENV_PASSPHRASE
from ..store import Store
from .common import json_option, print_json, settings


@click.command()
@click.argument("location", required=False)
@click.option(
    "--passphrase",
    "use_passphrase",
    is_flag=True,
    help=f"Lock the store with a passphrase (prompted, or ${ENV_PASSPHRASE}).",
)
@click.option(
    "--key-file",
    "key_file",
    type=click.Path(dir_okay=False),
    help="Write the new master key to this file (must be outside the store).",
)
@click.option("--embedder", help="Embedder spec (default: the bundled MiniLM model).")
@json_option
def init(
    location: str | None,
    use_passphrase: bool,
    key_file: str | None,
    embedder: str | None,
    as_json: bool,
) -> None:
    """Create a store at LOCATION (default: --store, $SEVERANCE_STORE or ~/.severance)."""
    target = location or settings().store_location
    passphrase = None
    if use_passphrase:
        passphrase = os.environ.get(ENV_PASSPHRASE) or click.prompt(
            "New passphrase", hide_input=True, confirmation_prompt=True
        )
    store = Store.init(target, passphrase=passphrase, key_file=key_file, embedder=embedder)
    try:
        facts = store.info()
        info = {name: facts[name] for name in ("store", "store_id", "key_mode", "key_file")}
        shared = store.shares_login()
    finally:
        store.close()
    if shared:
        click.echo(
            "severance: warning: this database login can reach every store in the database;"
            " it protects nothing between stores (fine for one person). To host several"
            " people, give each a login: `severance pg provision`.",
            err=True,
        )
    if as_json:
        print_json(info)
        return
    click.echo(f"Created store {info['store']}")
    if info["key_file"]:
        click.echo(f"Master key written to {info['key_file']} (mode 0600).")
        click.echo(
            "Back it up somewhere else than the store: without it the store cannot be opened."
        )
    else:
        click.echo("The store is locked with your passphrase.")


def register(cli: click.Group) -> None:
    cli.add_command(init)
