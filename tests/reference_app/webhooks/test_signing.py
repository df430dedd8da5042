import base64
import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reference_app.webhooks.signing import InvalidSecret, decode_secret, sign, signature_headers

# The known-answer vector of the Standard Webhooks specification's test suite.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NEW_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_sign_matches_the_specification_vector():
    key = decode_secret(SPEC_SECRET)
    assert sign(key, msg_id=SPEC_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY) == SPEC_SIGNATURE


def test_signature_headers_carry_id_timestamp_and_signature():
    headers = signature_headers(
        [SecretStr(SPEC_SECRET)], msg_id=SPEC_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY
    )
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }


def test_rotation_signs_with_every_key_and_each_receiver_verifies():
    now = int(datetime.now(UTC).timestamp())
    body = json.dumps({"type": "task.succeeded"}).encode()
    headers = signature_headers(
        [SecretStr(SPEC_SECRET), SecretStr(NEW_SECRET)], msg_id="msg_1", timestamp=now, body=body
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    # The reference implementation accepts it with the old key and with the new key.
    assert Webhook(SPEC_SECRET).verify(body, headers) == {"type": "task.succeeded"}
    assert Webhook(NEW_SECRET).verify(body, headers) == {"type": "task.succeeded"}


def test_reference_implementation_rejects_a_tampered_body():
    now = int(datetime.now(UTC).timestamp())
    headers = signature_headers([SecretStr(SPEC_SECRET)], msg_id="msg_1", timestamp=now, body=b"{}")
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(b'{"a": 1}', headers)


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
    ],
)
def test_malformed_secrets_are_refused(secret):
    with pytest.raises(InvalidSecret):
        decode_secret(secret)
