"""A persona's extractor settings as the store keeps them: sealed with the persona's own data
key in a store setting, so only that persona's session can read them (see
:mod:`severance.extract`), and blanked when the persona is erased."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backends.base import PersonaRow
from .errors import InvalidInputError
from .extract import ExtractorSettings, meta_key, parse_spec, seal_settings
from .records import AuthenticatedBackend
from .seal import Sealer

__all__ = ["erase_extractor", "set_extractor"]


def set_extractor(
    records: AuthenticatedBackend,
    audit: Callable[..., object],
    row: PersonaRow,
    data_key: Callable[[], bytes],
    store_id: str,
    spec: str,
    *,
    api_key_env: str | None,
    api_key: str | None,
) -> dict[str, Any] | None:
    """See :meth:`severance.store.Store.set_extractor`; ``data_key`` unlocks the persona
    (asked only once the spec is known to be good)."""
    parsed = parse_spec(spec)
    settings = (
        None
        if parsed is None
        else ExtractorSettings.build(parsed, api_key_env=api_key_env, api_key=api_key)
    )
    if settings is None and (api_key_env is not None or api_key is not None):
        raise InvalidInputError("an API key goes with an extractor, not with 'none'")
    value = seal_settings(settings, Sealer(data_key()), store_id, row.id)
    with records.transaction():
        records.set_meta(meta_key(row.id), value)
        audit(
            "extractor_set",
            row.id,
            row.name,
            extractor="none" if parsed is None else parsed.protocol,
        )
    return None if settings is None else settings.describe()


def erase_extractor(records: AuthenticatedBackend, persona_id: str) -> None:
    """Blank a persona's sealed extractor settings (its key is being destroyed too)."""
    if records.get_meta().get(meta_key(persona_id)):
        records.set_meta(meta_key(persona_id), "")
