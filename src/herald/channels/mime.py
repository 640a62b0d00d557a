"""Build the wire bytes of one outbound e-mail (headers, multipart/alternative, QP bodies), cheaply."""

from __future__ import annotations

import binascii
import datetime as dt
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr

from herald.channels.base import EmailContent, MessageRejected, RenderedMessage

# Hand-built rather than email.message: STACK.md §5 measures MIME building as the CPU cost of sending;
# on this box EmailMessage builds ~900 msgs/s, compat32 MIMEMultipart ~2,600/s, this module ~20,000/s.
# tests/unit/test_mime.py parses every shape back with the stdlib parser to keep it honest.

ONE_CLICK = "List-Unsubscribe=One-Click"
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_URI = re.compile(r"(?:https?|mailto):[^\s<>,]+", re.IGNORECASE)
_BRACKETED = re.compile(r"<([^<>]*)>")
# Headers this module writes itself; the planner may not override them through EmailContent.headers.
_OWNED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "return-path",
        "sender",
        "x-herald-reference",
    }
)
_MAX_NAME = 256  # formataddr emits one unfolded encoded-word, so the name bounds the line length
_LONG_LINE = 900  # RFC 5322 caps a line at 998 octets; fold (by encoding) well before that


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An address split into display name and ASCII addr-spec (IDN domains already in punycode)."""

    name: str
    address: str

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def header(self) -> str:
        """The header form: plain ASCII, the display name RFC 2047-encoded when it is not ASCII."""
        return formataddr((self.name, self.address), charset="utf-8") if self.name else self.address


@dataclass(frozen=True, slots=True)
class BuiltEmail:
    """A message ready for the wire: envelope addresses and CRLF-terminated bytes."""

    envelope_from: str
    envelope_to: str
    message_id: str  # "<reference@sender-domain>", so our reference travels on the wire
    data: bytes


def _rejected(message: str, code: str) -> MessageRejected:
    return MessageRejected(message, code=code)


def _check_line(value: str, what: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise _rejected(f"{what} contains a line break", "header_injection")
    return value


def _ascii_domain(domain: str) -> str:
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _rejected(f"invalid domain {domain!r}", "invalid_address") from exc
    if not _DOMAIN.fullmatch(ascii_domain) or ("." not in ascii_domain and ascii_domain != "localhost"):
        raise _rejected(f"invalid domain {domain!r}", "invalid_address")
    return ascii_domain.lower()


def parse_mailbox(value: str) -> Mailbox:
    """Accept `addr@domain` or `Display Name <addr@domain>`; refuse what we could not send unchanged."""
    value = _check_line(value, "address").strip()
    name, address = "", value
    if value.endswith(">") and "<" in value:
        name, _, address = value[:-1].rpartition("<")
        name = name.strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"')
        if len(name) > _MAX_NAME:
            raise _rejected(f"display name too long in {value[:40]!r}…", "invalid_address")
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        raise _rejected(f"invalid e-mail address {value!r}", "invalid_address")
    if not _LOCAL.fullmatch(local):
        # A non-ASCII or quoted local part needs SMTPUTF8 / quoting support we do not offer.
        raise _rejected(f"unsupported local part in {value!r}", "invalid_address")
    return Mailbox(name=name, address=f"{local}@{_ascii_domain(domain)}")


def _needs_encoding(value: str) -> bool:
    # "=?" would be read as an encoded-word by clients, so it is encoded too.
    return not value.isascii() or "=?" in value or len(value) > _LONG_LINE


def encode_header(name: str, value: str) -> str:
    """Return `Name: value` with RFC 2047 encoded-words when the value is not plain short ASCII."""
    _check_line(value, name)
    if _needs_encoding(value):
        value = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {value}"


def _list_unsubscribe(value: str) -> tuple[str, bool]:
    """Normalise to `<uri>, <uri>`; also say whether an https URI (RFC 8058 one-click) is present."""
    uris = _BRACKETED.findall(value) if "<" in value else re.split(r"[\s,]+", value.strip())
    uris = [uri.strip() for uri in uris if uri.strip()]
    if not uris or not all(_URI.fullmatch(uri) for uri in uris):
        raise _rejected(f"invalid List-Unsubscribe value {value!r}", "invalid_header")
    has_https = any(uri.lower().startswith("https:") for uri in uris)
    return ", ".join(f"<{uri}>" for uri in uris), has_https


def _extra_headers(headers: Mapping[str, str]) -> Iterator[str]:
    has_https = False
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _OWNED:
            raise _rejected(f"header {name!r} cannot be set by content", "invalid_header")
        lower = name.lower()
        if lower == "list-unsubscribe":
            value, has_https = _list_unsubscribe(_check_line(value, name))
        elif lower == "list-unsubscribe-post" and value != ONE_CLICK:
            raise _rejected(f"List-Unsubscribe-Post must be exactly {ONE_CLICK!r}", "invalid_header")
        elif lower == "reply-to":
            yield f"{name}: {parse_mailbox(value).header()}"
            continue
        yield encode_header(name, value)
    if any(n.lower() == "list-unsubscribe-post" for n in headers) and not has_https:
        # RFC 8058 §3.1: one-click needs an HTTPS URI in List-Unsubscribe.
        raise _rejected("List-Unsubscribe-Post without an https List-Unsubscribe URI", "invalid_header")


def _qp(text: str) -> bytes:
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(normalised.encode("utf-8"), istext=True)
    return encoded.replace(b"\n", b"\r\n")


def _part_headers(subtype: str) -> bytes:
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n').encode(
        "ascii"
    )


def _body(content: EmailContent) -> tuple[str, bytes]:
    """Return the top-level Content-* header lines and the body bytes."""
    if content.html is None:
        head = 'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable'
        return head, _qp(content.text) + b"\r\n"
    # "=_" can never occur in quoted-printable output ("=" is always "=3D"), so no body can hold it.
    boundary = "=_h" + secrets.token_hex(12)
    delimiter = f"--{boundary}\r\n".encode("ascii")
    body = b"".join(
        (
            delimiter,
            _part_headers("plain"),
            b"\r\n",
            _qp(content.text),
            b"\r\n",
            delimiter,
            _part_headers("html"),
            b"\r\n",
            _qp(content.html),
            b"\r\n",
            f"--{boundary}--\r\n".encode("ascii"),
        )
    )
    return f'Content-Type: multipart/alternative; boundary="{boundary}"', body


def message_id(reference: str, domain: str) -> str:
    if not _LOCAL.fullmatch(reference):
        raise _rejected(f"reference {reference!r} cannot form a Message-ID", "invalid_reference")
    return f"<{reference}@{domain}>"


def build_email(message: RenderedMessage, *, default_sender: str, now: dt.datetime) -> BuiltEmail:
    """Render one RenderedMessage (channel email) into wire bytes; refuse unsendable input."""
    content = message.email
    if content is None:
        raise _rejected("an e-mail message needs EmailContent", "missing_content")
    sender = parse_mailbox(message.sender or default_sender)
    recipient = parse_mailbox(message.to)
    msg_id = message_id(message.reference, sender.domain)
    content_head, body = _body(content)
    lines = [
        f"From: {sender.header()}",
        f"To: {recipient.header()}",
        encode_header("Subject", content.subject),
        f"Date: {format_datetime(now)}",
        f"Message-ID: {msg_id}",
        "MIME-Version: 1.0",
        f"X-Herald-Reference: {message.reference}",
        *_extra_headers(content.headers),
        content_head,
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return BuiltEmail(envelope_from=sender.address, envelope_to=recipient.address, message_id=msg_id, data=head + body)
