"""RFC 6238 TOTP (SHA1, 6 digits, 30 s): secrets, otpauth URIs and one-use-per-step verification."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import secrets
from urllib.parse import quote

import pyotp

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1  # RFC 6238 §5.2: allow at most one step of network delay either way
ISSUER = "Herald"


def new_secret() -> str:
    """160 random bits (RFC 4226 §4's recommended length) as unpadded base32."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def step_at(at: dt.datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def code_at(secret: str, at: dt.datetime | int, *, digits: int = DIGITS) -> str:
    """The code for the step containing `at` (a datetime or unix seconds)."""
    moment = at if isinstance(at, int) else int(at.timestamp())
    return str(pyotp.TOTP(secret, digits=digits, interval=STEP_SECONDS).at(moment))


def provisioning_uri(secret: str, account: str, issuer: str = ISSUER) -> str:
    """`otpauth://totp/Issuer:account?secret=…&issuer=Issuer`; SHA1/6/30 are the defaults every app uses."""
    label = quote(f"{issuer}:{account}", safe=":@")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}"


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code if not ch.isspace() and ch != "-")


def matching_step(secret: str, code: str, at: dt.datetime, *, last_step: int | None) -> int | None:
    """The step (within ±1 of now) whose code matches, provided it is newer than `last_step`.

    Refusing any step <= the last accepted one blocks replay of a code and use of an older code
    after a newer one (RFC 6238 §5.2). The caller must store the returned step atomically.
    """
    code = normalise_code(code)
    if len(code) != DIGITS or not code.isdigit():
        return None
    now_step = step_at(at)
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(code_at(secret, step * STEP_SECONDS), code):
            return step
    return None
