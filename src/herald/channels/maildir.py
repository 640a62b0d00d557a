"""The Maildir e-mail provider: the embedded default that delivers into a local Maildir, durably."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from herald.channels.base import (
    Channel,
    ProviderEvent,
    ProviderFailure,
    Receipt,
    RenderedMessage,
    SignatureError,
)
from herald.channels.mime import build_email
from herald.core.clock import Clock

_deliveries = itertools.count(1)  # the Maildir "Qn" field: deliveries made by this process


def _safe_hostname() -> str:
    # The Maildir spec escapes "/" and ":" in the host part of a unique name.
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_maildir(root: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)


def deliver(root: Path, unique: str, data: bytes) -> Path:
    """Write into tmp/, fsync, link into new/, drop the tmp name, fsync new/ (Maildir + RELIABILITY R1.2)."""
    tmp = root / "tmp" / unique
    final = root / "new" / unique
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link(), not rename(): a name clash must fail loudly instead of replacing someone's mail.
        os.link(tmp, final)
    finally:
        tmp.unlink()
    _fsync_dir(final.parent)
    return final


class MaildirEmailProvider:
    """Deliver each message as one file in `root/new/`, so `make run` needs no mail server."""

    channel = Channel.EMAIL
    rate_limit_per_second: float | None = None  # no declared limit

    def __init__(
        self, root: Path, clock: Clock, *, default_sender: str = "herald@localhost", name: str = "maildir"
    ) -> None:
        self.name = name
        self._root = root
        self._clock = clock
        self._default_sender = default_sender
        self._ready = False  # tmp/new/cur exist

    async def send(self, message: RenderedMessage) -> Receipt:
        now = self._clock.now()
        built = build_email(message, default_sender=self._default_sender, now=now)
        # Mailbox files conventionally use the local newline; readers (Dovecot, mutt) expect LF.
        data = built.data.replace(b"\r\n", b"\n")
        unique = self._unique_name(int(now.timestamp()), now.microsecond)
        try:
            await asyncio.to_thread(self._write, unique, data)
        except OSError as exc:
            raise ProviderFailure(f"Maildir write failed: {exc}", provider=self.name) from exc
        return Receipt(
            reference=message.reference,
            provider=self.name,
            provider_message_id=built.message_id,
            status="new/" + unique,
            accepted_at=now,
        )

    def parse_callback(self, url: str, headers: Mapping[str, str], body: bytes) -> Sequence[ProviderEvent]:
        raise SignatureError(f"provider {self.name!r} accepts no callbacks")

    def _write(self, unique: str, data: bytes) -> None:
        if not self._ready:
            ensure_maildir(self._root)
            self._ready = True
        deliver(self._root, unique, data)

    def _unique_name(self, seconds: int, micros: int) -> str:
        # time.M<usec>P<pid>Q<n>R<random>.host, the documented Maildir unique-name fields.
        rand = secrets.token_hex(4)
        return f"{seconds}.M{micros}P{os.getpid()}Q{next(_deliveries)}R{rand}.{_safe_hostname()}"
