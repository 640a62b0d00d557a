"""The hand-built MIME messages parse back, with the stdlib parser, into exactly what was asked for."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage

import pytest

from herald.channels.base import Channel, EmailContent, MessageRejected, RenderedMessage
from herald.channels.mime import ONE_CLICK, build_email, parse_mailbox

NOW = dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.UTC)


def _message(
    *,
    to: str = "zoe@example.org",
    sender: str | None = "Shop <shop@example.com>",
    subject: str = "Your order",
    text: str = "Hello",
    html: str | None = None,
    headers: dict[str, str] | None = None,
    reference: str = "att_0001",
) -> RenderedMessage:
    content = EmailContent(subject=subject, text=text, html=html, headers=headers or {})
    return RenderedMessage(reference=reference, channel=Channel.EMAIL, to=to, sender=sender, email=content)


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def test_multipart_alternative_round_trips_text_and_html() -> None:
    text = "Hi Zoë,\n\nYour parcel is on its way.\n.a line starting with a dot\n" + "long " * 60
    html = "<p>Hi Zoë — <b>shipped</b></p>"
    built = build_email(_message(text=text, html=html), default_sender="x@example.com", now=NOW)
    parsed = _parse(built.data)
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    rich = parsed.get_body(("html",))
    assert plain is not None and rich is not None
    assert _lf(plain.get_content()) == text
    assert _lf(rich.get_content()).rstrip("\n") == html
    assert all(not part.defects for part in parsed.walk())


def test_wire_form_is_7bit_crlf_with_short_lines() -> None:
    built = build_email(
        _message(subject="Grüße aus Köln", text="ünïcödé " * 200, html="<p>" + "é" * 500 + "</p>"),
        default_sender="x@example.com",
        now=NOW,
    )
    assert built.data.isascii()
    lines = built.data.split(b"\r\n")
    assert b"\n" not in b"".join(lines)
    assert max(len(line) for line in lines) <= 78


def test_non_ascii_subject_and_names_are_rfc2047_encoded() -> None:
    message = _message(
        to='"Zoë Ünal" <zoe@example.org>', sender="Bücherstube Łódź <shop@example.com>", subject="Grüße — 🎉"
    )
    built = build_email(message, default_sender="x@example.com", now=NOW)
    head = built.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "=?utf-8?" in head
    parsed = _parse(built.data)
    assert parsed["Subject"] == "Grüße — 🎉"
    assert parsed["To"].addresses[0].display_name == "Zoë Ünal"
    assert parsed["To"].addresses[0].addr_spec == "zoe@example.org"
    assert parsed["From"].addresses[0].display_name == "Bücherstube Łódź"


def test_ascii_text_that_looks_like_an_encoded_word_is_encoded_so_it_reads_literally() -> None:
    subject = "Literal =?utf-8?q?Hacked?= text"
    parsed = _parse(build_email(_message(subject=subject), default_sender="x@example.com", now=NOW).data)
    assert parsed["Subject"] == subject


def test_fixed_headers_message_id_date_and_reference() -> None:
    built = build_email(_message(reference="att_42"), default_sender="x@example.com", now=NOW)
    parsed = _parse(built.data)
    assert built.message_id == "<att_42@example.com>"
    assert parsed["Message-ID"] == "<att_42@example.com>"
    assert parsed["X-Herald-Reference"] == "att_42"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Date"].datetime == NOW
    assert (built.envelope_from, built.envelope_to) == ("shop@example.com", "zoe@example.org")


def test_default_sender_is_used_when_the_message_has_none() -> None:
    built = build_email(_message(sender=None), default_sender="Herald <noreply@hub.example>", now=NOW)
    assert built.envelope_from == "noreply@hub.example"
    assert built.message_id.endswith("@hub.example>")


def test_text_only_message_is_a_single_part() -> None:
    parsed = _parse(build_email(_message(text="just text"), default_sender="x@example.com", now=NOW).data)
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert _lf(parsed.get_content()).rstrip("\n") == "just text"


def test_one_click_unsubscribe_headers() -> None:
    headers = {
        "List-Unsubscribe": "<https://hub.example/u/tok123>, <mailto:unsub@hub.example?subject=unsubscribe>",
        "List-Unsubscribe-Post": ONE_CLICK,
    }
    parsed = _parse(build_email(_message(headers=headers), default_sender="x@example.com", now=NOW).data)
    assert parsed["List-Unsubscribe"] == headers["List-Unsubscribe"]
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_bare_unsubscribe_urls_are_bracketed() -> None:
    headers = {"List-Unsubscribe": "https://hub.example/u/t mailto:u@hub.example"}
    parsed = _parse(build_email(_message(headers=headers), default_sender="x@example.com", now=NOW).data)
    assert parsed["List-Unsubscribe"] == "<https://hub.example/u/t>, <mailto:u@hub.example>"


@pytest.mark.parametrize(
    "headers",
    [
        {"List-Unsubscribe-Post": ONE_CLICK, "List-Unsubscribe": "<mailto:u@hub.example>"},
        {"List-Unsubscribe": "<https://a.example/u>", "List-Unsubscribe-Post": "List-Unsubscribe=Yes"},
        {"List-Unsubscribe": "<javascript:alert(1)>"},
        {"Subject": "override"},
        {"Message-ID": "<forged@example.com>"},
        {"X-Bad Name": "v"},
        {"X-Custom": "line\r\nBcc: victim@example.com"},
    ],
)
def test_invalid_or_reserved_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(MessageRejected):
        build_email(_message(headers=headers), default_sender="x@example.com", now=NOW)


def test_extra_headers_pass_through_encoded() -> None:
    headers = {
        "X-Campaign": "Frühling",
        "Reply-To": "Zoë <help@example.com>",
        "Auto-Submitted": "auto-generated",
    }
    parsed = _parse(build_email(_message(headers=headers), default_sender="x@example.com", now=NOW).data)
    assert parsed["X-Campaign"] == "Frühling"
    assert parsed["Reply-To"].addresses[0].display_name == "Zoë"
    assert parsed["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize(
    "value",
    [
        "no-at-sign",
        "a@",
        "@example.com",
        "zoë@example.org",
        "a b@example.com",
        "x@exa mple.com",
        "x@-bad-.com",
    ],
)
def test_unsendable_addresses_are_rejected(value: str) -> None:
    with pytest.raises(MessageRejected) as info:
        parse_mailbox(value)
    assert info.value.code == "invalid_address"


def test_subject_with_a_line_break_is_an_injection() -> None:
    with pytest.raises(MessageRejected) as info:
        build_email(_message(subject="hi\nBcc: x@example.com"), default_sender="x@example.com", now=NOW)
    assert info.value.code == "header_injection"


def test_idn_domains_become_punycode() -> None:
    mailbox = parse_mailbox("Jörg <jorg@bücher.example>")
    assert mailbox.address == "jorg@xn--bcher-kva.example"
    assert mailbox.name == "Jörg"


def test_reference_that_cannot_form_a_message_id_is_refused() -> None:
    with pytest.raises(MessageRejected) as info:
        build_email(_message(reference="bad ref>"), default_sender="x@example.com", now=NOW)
    assert info.value.code == "invalid_reference"


def test_each_multipart_message_gets_its_own_boundary() -> None:
    a = build_email(_message(html="<p>a</p>"), default_sender="x@example.com", now=NOW)
    b = build_email(_message(html="<p>a</p>"), default_sender="x@example.com", now=NOW)
    assert _parse(a.data).get_boundary() != _parse(b.data).get_boundary()
