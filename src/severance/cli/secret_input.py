"""Where the CLI gets a persona's own secret: a key file, the environment, or a prompt.

Shared by the commands that create, seal, unseal, open or configure a sealed persona
(``persona add --sealed``, ``persona seal|unseal``, ``reintegrate``, ``override``,
``persona set``), so each asks the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..keys import Secret
from .common import ENV_PERSONA_PASSPHRASE, settings

__all__ = ["persona_secret", "secret_option"]

F = TypeVar("F", bound=Callable[..., Any])


def secret_option(name: str, help_text: str) -> Callable[[F], F]:
    """A ``--…-file`` option naming a persona's key file."""
    return click.option(name, type=click.Path(dir_okay=False), help=help_text)


def persona_secret(key_file: str | None, ask: bool, prompt: str) -> Secret | None:
    """A secret from a key file, $SEVERANCE_PERSONA_PASSPHRASE, or a prompt."""
    if key_file:
        return Secret(key_file=key_file)
    if os.environ.get(ENV_PERSONA_PASSPHRASE):
        return Secret(passphrase=os.environ[ENV_PERSONA_PASSPHRASE])
    if ask:
        return Secret(passphrase=click.prompt(prompt, hide_input=True, confirmation_prompt=True))
    return settings().secret()
