"""Turning form fields into the API's values: secrets, lists, times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ..errors import InvalidInputError
from ..keys import Secret
from .plumbing import Posted

__all__ = ["day_bound", "secret_from", "split_commas", "split_list"]


def secret_from(form: Posted, prefix: str = "") -> Secret | None:
    """A sealed persona's secret: a passphrase, or the path of its key file on this machine."""
    passphrase = form.raw(f"{prefix}passphrase")
    key_file = form.get(f"{prefix}key_file")
    if passphrase and key_file:
        raise InvalidInputError("give the persona's passphrase or its key file, not both")
    if key_file:
        return Secret(key_file=key_file)
    if passphrase:
        return Secret(passphrase=passphrase)
    return None


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b c"`` → ``("a", "b", "c")``: names typed into one field (kinds, clients, hosts)."""
    return tuple(part for part in text.replace(",", " ").split() if part)


def split_commas(text: str) -> tuple[str, ...]:
    """``"project alpha, q3"`` → ``("project alpha", "q3")``: tags and path patterns, which
    may hold spaces, typed into one field (separated by commas or new lines)."""
    return tuple(p.strip() for p in text.replace("\n", ",").split(",") if p.strip())


def day_bound(text: str, *, end: bool, what: str) -> datetime | None:
    """A date field (``YYYY-MM-DD``) or an ISO time; an ``until`` date includes its whole day."""
    text = text.strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(f"invalid {what} {text!r}: use YYYY-MM-DD") from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if not end:
        return start
    try:
        return start + timedelta(days=1, microseconds=-1)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)
