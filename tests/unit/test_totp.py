"""TOTP against RFC 6238 / RFC 4226 vectors and oathtool; replay and drift rules of matching_step."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess

import pyotp
import pytest

from herald.auth import totp

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()  # GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ

# RFC 6238 Appendix B, SHA1 rows (8 digits, T0 = 0, X = 30 s).
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]

# RFC 4226 Appendix D: HOTP for counters 0..9 (6 digits).
RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]


def at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def oathtool(secret: str, seconds: int) -> str:
    out = subprocess.run(
        ["oathtool", "--totp", "-b", secret, "-N", f"@{seconds}"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_rfc_secret_is_the_documented_base32() -> None:
    assert RFC_SECRET == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


@pytest.mark.parametrize(("seconds", "expected"), RFC6238_SHA1)
def test_rfc6238_appendix_b_sha1_vectors(seconds: int, expected: str) -> None:
    assert totp.code_at(RFC_SECRET, seconds, digits=8) == expected
    assert totp.code_at(RFC_SECRET, at(seconds), digits=8) == expected


def test_rfc4226_hotp_vectors_through_pyotp_and_our_steps() -> None:
    hotp = pyotp.HOTP(RFC_SECRET)
    assert [hotp.at(counter) for counter in range(10)] == RFC4226
    # A TOTP step is an HOTP counter: the code at step n is HOTP(n).
    assert [totp.code_at(RFC_SECRET, counter * totp.STEP_SECONDS) for counter in range(10)] == RFC4226


@pytest.mark.parametrize("seconds", [0, 59, 1111111109, 1234567890, 1_800_000_015, 2000000000])
def test_codes_match_oathtool(seconds: int) -> None:
    secret = totp.new_secret()
    assert totp.code_at(secret, seconds) == oathtool(secret, seconds)
    assert totp.code_at(RFC_SECRET, seconds) == oathtool(RFC_SECRET, seconds)


def test_new_secret_is_160_random_bits_in_unpadded_base32() -> None:
    secrets_seen = {totp.new_secret() for _ in range(50)}
    assert len(secrets_seen) == 50
    for secret in secrets_seen:
        assert len(secret) == 32 and "=" not in secret
        assert len(base64.b32decode(secret)) == 20


def test_provisioning_uri_is_what_authenticator_apps_parse() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "ops+1@example.com")
    assert uri.startswith("otpauth://totp/Herald:ops%2B1@example.com?")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret and parsed.issuer == "Herald" and parsed.name == "ops+1@example.com"
    assert parsed.digits == 6 and parsed.interval == 30


NOW = 1_800_000_015  # inside step 60_000_000
STEP = NOW // 30


def test_current_code_matches_its_step() -> None:
    code = totp.code_at(RFC_SECRET, NOW)
    assert totp.matching_step(RFC_SECRET, code, at(NOW), last_step=None) == STEP
    assert totp.matching_step(RFC_SECRET, f"{code[:3]} {code[3:]}", at(NOW), last_step=None) == STEP


def test_replayed_step_is_refused() -> None:
    code = totp.code_at(RFC_SECRET, NOW)
    assert totp.matching_step(RFC_SECRET, code, at(NOW), last_step=STEP) is None
    assert totp.matching_step(RFC_SECRET, code, at(NOW + 10), last_step=STEP) is None


def test_older_code_after_a_newer_one_is_refused() -> None:
    previous = totp.code_at(RFC_SECRET, NOW - 30)
    assert totp.matching_step(RFC_SECRET, previous, at(NOW), last_step=None) == STEP - 1
    assert totp.matching_step(RFC_SECRET, previous, at(NOW), last_step=STEP) is None


@pytest.mark.parametrize("offset", [-1, 1])
def test_one_step_of_drift_is_accepted(offset: int) -> None:
    code = totp.code_at(RFC_SECRET, NOW + offset * 30)
    assert totp.matching_step(RFC_SECRET, code, at(NOW), last_step=STEP - 5) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2, 3])
def test_two_steps_of_drift_are_refused(offset: int) -> None:
    code = totp.code_at(RFC_SECRET, NOW + offset * 30)
    assert code != totp.code_at(RFC_SECRET, NOW)  # guard: the codes really differ
    assert totp.matching_step(RFC_SECRET, code, at(NOW), last_step=None) is None


@pytest.mark.parametrize("junk", ["", "12345", "1234567", "abcdef", "12345x"])
def test_malformed_codes_never_match(junk: str) -> None:
    assert totp.matching_step(RFC_SECRET, junk, at(NOW), last_step=None) is None
