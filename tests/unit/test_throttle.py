"""The per-provider token bucket: declared rates are honoured, shared by concurrent sends, fake time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from herald.channels.base import Channel
from herald.delivery.throttle import Throttle, TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Declared:
    name: str
    rate_limit_per_second: float | None
    channel: Channel = Channel.SMS


def test_a_bucket_gives_its_burst_then_one_token_per_interval() -> None:
    time = FakeTime()
    bucket = TokenBucket(2.0, monotonic=time.monotonic)
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]  # burst of 2, then queued up
    time.now += 1.0  # the queue is paid off exactly: the next one waits a full interval
    assert bucket.reserve() == 0.5


def test_a_slow_rate_spaces_every_send() -> None:
    time = FakeTime()
    bucket = TokenBucket(0.5, monotonic=time.monotonic)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(2.0)


def test_a_zero_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)


async def test_concurrent_sends_through_one_throttle_share_the_provider_bucket() -> None:
    time = FakeTime()
    throttle = Throttle(monotonic=time.monotonic, sleep=time.sleep)
    twilio, other, free = Declared("twilio_sms", 1.0), Declared("other", 1.0), Declared("smtp", None)
    started: list[tuple[str, float]] = []

    async def send(provider: Declared) -> None:
        await throttle.acquire(provider)  # type: ignore[arg-type]
        started.append((provider.name, time.now))

    # The fake sleep advances shared time as each waiter wakes, so ordering is by reservation.
    await asyncio.gather(*(send(twilio) for _ in range(3)))
    assert [t for name, t in started] == [100.0, 101.0, 102.0]  # one a second
    started.clear()
    await asyncio.gather(send(other), send(free), send(free))
    assert [name for name, t in started if t == 102.0] == ["other", "smtp", "smtp"]  # separate buckets; no limit
