"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature`` is ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
Secrets are ``whsec_`` + base64 of the key bytes. During a key rotation the
message is signed with every configured key, space-separated, so receivers
holding either key accept it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from pydantic import SecretStr

from reference_app.core.whsec import SECRET_PREFIX, InvalidSecret, decode_secret

__all__ = ["SECRET_PREFIX", "InvalidSecret", "decode_secret", "sign", "signature_headers"]


def sign(key: bytes, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body``."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secrets: Sequence[SecretStr], *, msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every key in ``secrets``."""
    signatures = (
        sign(decode_secret(s.get_secret_value()), msg_id=msg_id, timestamp=timestamp, body=body)
        for s in secrets
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
