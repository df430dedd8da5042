"""The format of a Standard Webhooks secret: ``whsec_`` + base64 of the key bytes.

In ``core`` because the settings check a configured secret at startup; the
signing itself is ``webhooks.signing``.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["SECRET_PREFIX", "InvalidSecret", "decode_secret"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret


class InvalidSecret(ValueError):
    """A webhook secret that is not ``whsec_`` + base64 of at least 16 bytes."""


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_...`` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise InvalidSecret("a webhook secret is whsec_ followed by base64") from None
    if len(key) < 16:
        raise InvalidSecret("a webhook secret needs at least 16 bytes of key")
    return key
