"""A persona's extractor settings at rest: one store meta entry, sealed with the persona's key.

The entry ``extractor:<persona id>`` holds the settings (spec, key variable name or key) as
JSON sealed with the persona's *data* key, the store and persona ids bound in as associated
data. So the database never holds them in plaintext, a copy under another persona's entry does
not open, a sealed persona's settings open only with that persona's own secret, and a clean
slate — which destroys the key and blanks the entry — leaves nothing readable.
"""

from __future__ import annotations

import base64
import binascii

from ..errors import IntegrityError
from ..seal import Sealer, aad
from .spec import ExtractorSettings

__all__ = ["meta_key", "open_settings", "seal_settings"]


def meta_key(persona_id: str) -> str:
    return f"extractor:{persona_id}"


def _aad(store_id: str, persona_id: str) -> bytes:
    return aad(store_id, persona_id, "extractor", "settings")


def seal_settings(
    settings: ExtractorSettings | None, sealer: Sealer, store_id: str, persona_id: str
) -> str:
    """The meta value for ``settings`` (``""`` for no extractor)."""
    if settings is None:
        return ""
    blob = sealer.seal(settings.to_json(), _aad(store_id, persona_id))
    return base64.b64encode(blob).decode("ascii")


def open_settings(
    value: str | None, sealer: Sealer, store_id: str, persona_id: str
) -> ExtractorSettings | None:
    """The settings a meta value holds (None when unset); IntegrityError if tampered with."""
    if not value:
        return None
    try:
        blob = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError("the persona's extractor settings are damaged") from None
    return ExtractorSettings.from_json(sealer.open(blob, _aad(store_id, persona_id)))
