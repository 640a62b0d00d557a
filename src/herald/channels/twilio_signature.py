"""X-Twilio-Signature: one implementation shared by the Twilio adapter and the provider simulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, urlparse, urlsplit

SIGNATURE_HEADER = "X-Twilio-Signature"

# Form parameters as received: a mapping (one or many values per name) or the raw pairs, repeats kept.
Params = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]


def _grouped(params: Params) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    pairs: Iterable[tuple[str, str | Sequence[str]]] = params.items() if isinstance(params, Mapping) else params
    for name, value in pairs:
        values = [value] if isinstance(value, str) else list(value)
        grouped.setdefault(name, set()).update(values)
    return grouped


def signing_string(url: str, params: Params) -> str:
    """The URL followed by each name+value, names and values sorted by code point, duplicates dropped."""
    grouped = _grouped(params)
    parts = [url]
    for name in sorted(grouped):
        parts.extend(name + value for value in sorted(grouped[name]))
    return "".join(parts)


def compute_signature(url: str, params: Params, auth_token: str) -> str:
    """base64(HMAC-SHA1(auth_token, signing_string)), exactly as Twilio computes it (WIRE-FORMATS §2)."""
    digest = hmac.new(auth_token.encode("utf-8"), signing_string(url, params).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def _without_port(url: str) -> str:
    # Re-serialised through urlparse like twilio-python's remove_port, so both agree on odd URLs.
    parts = urlparse(url)
    if parts.port is None:
        return parts.geturl()
    host = parts.hostname or ""
    userinfo = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{userinfo}@{host}" if userinfo else host).geturl()


def _with_port(url: str) -> str:
    parts = urlparse(url)
    if parts.port is not None:
        return parts.geturl()
    port = 443 if parts.scheme == "https" else 80
    return parts._replace(netloc=f"{parts.netloc}:{port}").geturl()


def body_sha256_matches(url: str, body: bytes) -> bool | None:
    """For JSON webhooks: None if the URL has no bodySHA256, else whether it matches the raw body."""
    declared = [value for name, value in parse_qsl(urlsplit(url).query) if name == "bodySHA256"]
    if not declared:
        return None
    return hmac.compare_digest(hashlib.sha256(body).hexdigest(), declared[0])


def is_valid_signature(url: str, params: Params, signature: str, auth_token: str) -> bool:
    """Accept the signature for the URL with or without its default port, as Twilio's validator does."""
    given = signature.encode("utf-8")
    valid = False
    # Evaluate both forms every time so the time taken does not reveal which one matched.
    for form in (_without_port(url), _with_port(url)):
        expected = compute_signature(form, params, auth_token).encode("utf-8")
        valid = hmac.compare_digest(expected, given) or valid
    return valid
