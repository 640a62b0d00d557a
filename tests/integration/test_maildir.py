"""The Maildir provider writes complete, uniquely named files into new/ on a real filesystem."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
from pathlib import Path

import pytest

from herald.channels.base import Channel, EmailContent, ProviderFailure, RenderedMessage
from herald.channels.maildir import MaildirEmailProvider, deliver, ensure_maildir
from herald.core.clock import FrozenClock

NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def _message(reference: str) -> RenderedMessage:
    content = EmailContent(subject="Grüße ✓", text="Hallo Zoë\n", html="<p>Hallo Zoë</p>")
    return RenderedMessage(reference=reference, channel=Channel.EMAIL, to="Zoë <zoe@example.org>", email=content)


async def test_message_lands_in_new_and_parses(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    provider = MaildirEmailProvider(root, FrozenClock(NOW), default_sender="Herald <herald@hub.example>")
    receipt = await provider.send(_message("att_1"))

    [path] = list((root / "new").iterdir())
    assert receipt.status == f"new/{path.name}"
    assert receipt.provider_message_id == "<att_1@hub.example>"
    assert receipt.accepted_at == NOW
    assert path.name.startswith(f"{int(NOW.timestamp())}.M0P")
    assert list((root / "tmp").iterdir()) == []
    assert (root / "cur").is_dir()
    data = path.read_bytes()
    assert b"\r\n" not in data  # stored with local newlines
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße ✓"
    assert parsed["Message-ID"] == "<att_1@hub.example>"
    plain = parsed.get_body(("plain",))
    assert plain is not None and plain.get_content() == "Hallo Zoë\n"


async def test_concurrent_deliveries_get_unique_names(tmp_path: Path) -> None:
    provider = MaildirEmailProvider(tmp_path, FrozenClock(NOW))  # same clock instant for every message
    receipts = await asyncio.gather(*(provider.send(_message(f"att_{i}")) for i in range(50)))
    names = {p.name for p in (tmp_path / "new").iterdir()}
    assert len(names) == 50
    assert {r.status.removeprefix("new/") for r in receipts} == names


async def test_unwritable_maildir_is_a_provider_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the Maildir should be")
    provider = MaildirEmailProvider(blocker, FrozenClock(NOW))
    with pytest.raises(ProviderFailure) as info:
        await provider.send(_message("att_x"))
    assert isinstance(info.value.__cause__, OSError)


def test_a_name_clash_never_replaces_existing_mail(tmp_path: Path) -> None:
    ensure_maildir(tmp_path)
    deliver(tmp_path, "1.M1P1Q1.host", b"first\n")
    with pytest.raises(FileExistsError):
        deliver(tmp_path, "1.M1P1Q1.host", b"second\n")
    assert (tmp_path / "new" / "1.M1P1Q1.host").read_bytes() == b"first\n"
    assert list((tmp_path / "tmp").iterdir()) == []
