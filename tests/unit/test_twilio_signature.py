"""X-Twilio-Signature against the worked vectors in WIRE-FORMATS.md §2 and twilio-python's own validator."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from herald.channels.twilio_signature import (
    body_sha256_matches,
    compute_signature,
    is_valid_signature,
    signing_string,
)

HUB_TOKEN = "0123456789abcdef0123456789abcdef"
HUB_URL = "https://hub.example.com/twilio/status?msg=42"
HUB_PARAMS = {
    "AccountSid": "AC00000000000000000000000000000001",
    "ApiVersion": "2010-04-01",
    "From": "+15005550006",
    "MessageSid": "SM" + "a" * 32,
    "MessageStatus": "delivered",
    "SmsSid": "SM" + "a" * 32,
    "SmsStatus": "delivered",
    "To": "+15558675310",
}

LIB_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
LIB_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_signing_string_is_url_then_sorted_name_value_pairs() -> None:
    expected = (
        HUB_URL
        + "AccountSidAC00000000000000000000000000000001ApiVersion2010-04-01From+15005550006"
        + "MessageSid" + "SM" + "a" * 32 + "MessageStatusdelivered"
        + "SmsSid" + "SM" + "a" * 32 + "SmsStatusdeliveredTo+15558675310"
    )  # fmt: skip
    assert signing_string(HUB_URL, HUB_PARAMS) == expected


def test_wire_formats_worked_example() -> None:
    assert compute_signature(HUB_URL, HUB_PARAMS, HUB_TOKEN) == "B+7iNauOcXepvlEsWj6bmJz7/tg="
    with_port = "https://hub.example.com:443/twilio/status?msg=42"
    assert compute_signature(with_port, HUB_PARAMS, HUB_TOKEN) == "Ku0gqDIkc7lb7PRSRHWQHXODrMs="


@pytest.mark.parametrize("url", [HUB_URL, "https://hub.example.com:443/twilio/status?msg=42"])
@pytest.mark.parametrize("signature", ["B+7iNauOcXepvlEsWj6bmJz7/tg=", "Ku0gqDIkc7lb7PRSRHWQHXODrMs="])
def test_either_url_form_accepts_either_signature(url: str, signature: str) -> None:
    assert is_valid_signature(url, HUB_PARAMS, signature, HUB_TOKEN)


def test_twilio_python_vectors() -> None:
    assert compute_signature(LIB_URL, LIB_PARAMS, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert compute_signature(with_port, LIB_PARAMS, "12345") == "kvajT1Ptam85bY51eRf/AJRuM3w="
    assert is_valid_signature(LIB_URL, LIB_PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=", "12345")


def test_reliability_doc_vector() -> None:
    params = LIB_PARAMS | {"Caller": "+12349013030", "From": "+12349013030"}
    assert compute_signature(LIB_URL, params, "12345") == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_json_body_is_covered_by_body_sha256_and_the_url_alone() -> None:
    body = b'{"property": "value", "boolean": true}'
    digest = hashlib.sha256(body).hexdigest()
    assert digest == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    url = f"{LIB_URL}&bodySHA256={digest}"
    assert body_sha256_matches(url, body) is True
    assert body_sha256_matches(url, body + b" ") is False
    assert body_sha256_matches(LIB_URL, body) is None
    assert compute_signature(url, {}, "12345") == "a9nBmqA0ju/hNViExpshrM61xv4="


def test_tampering_is_detected() -> None:
    good = compute_signature(HUB_URL, HUB_PARAMS, HUB_TOKEN)
    assert not is_valid_signature(HUB_URL, HUB_PARAMS | {"MessageStatus": "failed"}, good, HUB_TOKEN)
    assert not is_valid_signature(HUB_URL + "3", HUB_PARAMS, good, HUB_TOKEN)
    assert not is_valid_signature(HUB_URL, HUB_PARAMS, good, HUB_TOKEN + "x")
    assert not is_valid_signature(HUB_URL, HUB_PARAMS, "", HUB_TOKEN)


def test_repeated_params_are_sorted_and_deduplicated_like_twilio() -> None:
    pairs = [("MediaUrl", "b"), ("MediaUrl", "a"), ("MediaUrl", "b"), ("Body", "x")]
    assert signing_string("u", pairs) == "uBodyxMediaUrlaMediaUrlb"
    assert signing_string("u", {"MediaUrl": ["b", "a", "b"], "Body": "x"}) == "uBodyxMediaUrlaMediaUrlb"


names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=8)
values = st.text(max_size=12)


@given(
    path=st.text(alphabet="abcdefgh/?=&", max_size=20),
    port=st.sampled_from(["", ":443", ":8443"]),
    params=st.dictionaries(names, values, max_size=6),
    token=st.text(min_size=1, max_size=20),
)
def test_agrees_with_the_official_validator(path: str, port: str, params: dict[str, str], token: str) -> None:
    url = f"https://hub.example.com{port}/{path}"
    official = RequestValidator(token)
    assert compute_signature(url, params, token) == official.compute_signature(url, params)
    for signed_as in (url, "https://hub.example.com/x", "https://hub.example.com:443/" + path):
        signature = official.compute_signature(signed_as, params)
        assert is_valid_signature(url, params, signature, token) == official.validate(url, params, signature)
