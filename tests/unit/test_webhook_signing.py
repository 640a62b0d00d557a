"""Standard Webhooks signing: the published vector, and the reference library agrees with us both ways."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from herald.channels.base import SignatureError
from herald.channels.webhook import decode_secret, sign_standard_webhook, verify_standard_webhook

# WIRE-FORMATS.md §6 (the reference libraries' test_sign_function vector).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
AT_VECTOR = dt.datetime.fromtimestamp(TIMESTAMP, dt.UTC)


def _headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def _now_ts() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


def test_spec_vector() -> None:
    assert len(decode_secret(SECRET)) == 24
    assert sign_standard_webhook(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) == EXPECTED


def test_reference_library_signs_the_same() -> None:
    ts = dt.datetime.fromtimestamp(TIMESTAMP, dt.UTC)
    assert Webhook(SECRET).sign(MSG_ID, ts, PAYLOAD.decode()) == EXPECTED


def test_we_verify_the_vector_at_its_own_time() -> None:
    assert verify_standard_webhook(SECRET, _headers(MSG_ID, TIMESTAMP, EXPECTED), PAYLOAD, AT_VECTOR) == MSG_ID


def test_reference_library_accepts_what_we_sign() -> None:
    ts = _now_ts()
    body = json.dumps({"event": "message.delivered", "name": "Zoë"}).encode()
    headers = _headers("msg_abc", ts, sign_standard_webhook(SECRET, "msg_abc", ts, body))
    assert Webhook(SECRET).verify(body, headers) == {"event": "message.delivered", "name": "Zoë"}


def test_reference_library_rejects_a_tampered_body() -> None:
    ts = _now_ts()
    headers = _headers("msg_abc", ts, sign_standard_webhook(SECRET, "msg_abc", ts, b'{"amount": 1}'))
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b'{"amount": 9}', headers)


def test_reference_library_rejects_a_tampered_timestamp() -> None:
    ts = _now_ts()
    signature = sign_standard_webhook(SECRET, "msg_abc", ts, b"{}")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b"{}", _headers("msg_abc", ts - 1, signature))


def test_reference_library_rejects_an_old_timestamp_even_if_signed() -> None:
    ts = _now_ts() - 301
    headers = _headers("msg_abc", ts, sign_standard_webhook(SECRET, "msg_abc", ts, b"{}"))
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b"{}", headers)


def test_we_accept_what_the_reference_library_signs() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    signature = Webhook(SECRET).sign("msg_x", now, '{"a":1}')
    headers = {
        "Webhook-Id": "msg_x",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": signature,
    }
    assert verify_standard_webhook(SECRET, headers, b'{"a":1}', now) == "msg_x"


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamp_outside_tolerance_is_refused(skew: int) -> None:
    now = AT_VECTOR + dt.timedelta(seconds=skew)
    with pytest.raises(SignatureError):
        verify_standard_webhook(SECRET, _headers(MSG_ID, TIMESTAMP, EXPECTED), PAYLOAD, now)


@pytest.mark.parametrize("skew", [-300, 300])
def test_timestamp_at_the_tolerance_edge_is_accepted(skew: int) -> None:
    now = AT_VECTOR + dt.timedelta(seconds=skew)
    assert verify_standard_webhook(SECRET, _headers(MSG_ID, TIMESTAMP, EXPECTED), PAYLOAD, now) == MSG_ID


def test_tampered_body_id_or_timestamp_is_refused() -> None:
    for msg_id, ts, body in [
        (MSG_ID, TIMESTAMP, b'{"test": 2432232315}'),
        ("msg_other", TIMESTAMP, PAYLOAD),
        (MSG_ID, TIMESTAMP + 1, PAYLOAD),
    ]:
        with pytest.raises(SignatureError):
            verify_standard_webhook(SECRET, _headers(msg_id, ts, EXPECTED), body, AT_VECTOR)


def test_rotation_any_v1_entry_may_match_and_unknown_versions_are_skipped() -> None:
    other = "whsec_" + "A" * 32
    header = f"v1a,c29tZXRoaW5n {sign_standard_webhook(other, MSG_ID, TIMESTAMP, PAYLOAD)} {EXPECTED}"
    assert verify_standard_webhook(SECRET, _headers(MSG_ID, TIMESTAMP, header), PAYLOAD, AT_VECTOR) == MSG_ID


def test_missing_headers_are_refused() -> None:
    with pytest.raises(SignatureError):
        verify_standard_webhook(SECRET, {"webhook-id": MSG_ID}, PAYLOAD, AT_VECTOR)


def test_unpadded_secret_decodes_like_padded() -> None:
    padded = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LQ=="
    assert decode_secret(padded) == decode_secret(padded.rstrip("="))
