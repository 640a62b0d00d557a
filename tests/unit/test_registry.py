"""The channel registry: explicit registration, no duplicates, lookup by name and by channel."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from herald.channels.base import Channel
from herald.channels.maildir import MaildirEmailProvider
from herald.channels.registry import ChannelRegistry, DuplicateProviderError, UnknownProviderError
from herald.channels.smtp import SmtpConfig, SmtpEmailProvider
from herald.channels.webhook import SignedWebhookProvider, WebhookConfig
from herald.core.clock import FrozenClock

CLOCK = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _providers(tmp_path: Path) -> tuple[SmtpEmailProvider, MaildirEmailProvider, SignedWebhookProvider]:
    return (
        SmtpEmailProvider(SmtpConfig(host="127.0.0.1"), CLOCK),
        MaildirEmailProvider(tmp_path, CLOCK),
        SignedWebhookProvider(WebhookConfig(secrets=(SECRET,)), CLOCK),
    )


def test_lookup_by_name_and_channel_in_registration_order(tmp_path: Path) -> None:
    smtp, maildir, webhook = _providers(tmp_path)
    registry = ChannelRegistry([smtp, maildir, webhook])
    assert registry.get("maildir") is maildir
    assert registry.for_channel(Channel.EMAIL) == (smtp, maildir)
    assert registry.for_channel(Channel.WEBHOOK) == (webhook,)
    assert registry.for_channel(Channel.SMS) == ()
    assert registry.names() == ("smtp", "maildir", "webhook")
    assert "smtp" in registry and "sms" not in registry
    assert len(registry) == 3


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    registry = ChannelRegistry([MaildirEmailProvider(tmp_path, CLOCK)])
    with pytest.raises(DuplicateProviderError) as info:
        registry.register(MaildirEmailProvider(tmp_path / "other", CLOCK))
    assert info.value.code == "duplicate_provider"
    assert info.value.fields == {"name": "maildir"}


def test_the_same_class_twice_under_different_names_is_fine(tmp_path: Path) -> None:
    registry = ChannelRegistry()
    registry.register(MaildirEmailProvider(tmp_path / "a", CLOCK, name="maildir-a"))
    registry.register(MaildirEmailProvider(tmp_path / "b", CLOCK, name="maildir-b"))
    assert registry.names() == ("maildir-a", "maildir-b")


def test_unknown_names_raise_a_coded_error() -> None:
    with pytest.raises(UnknownProviderError) as info:
        ChannelRegistry().get("nope")
    assert info.value.code == "unknown_provider"
