"""Declared provider rate limits: one token bucket per provider, shared by every send of one worker process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from herald.channels.base import ChannelProvider


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up. `reserve` takes one now and says how long to wait
    for it, so concurrent senders queue up in order instead of all waking at once."""

    def __init__(self, rate: float, *, burst: float | None = None, monotonic: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._monotonic = monotonic
        self._tokens = self.burst
        self._at = monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; the seconds until it is really available (0 when one was saved up)."""
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Throttle:
    """The buckets of one worker process, by provider name, built on first use from the declared rate.

    Per process, not per installation: N worker processes together may send N times the declared rate
    (docs/delivery.md says to size the declaration accordingly)."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, provider: ChannelProvider) -> TokenBucket | None:
        rate = provider.rate_limit_per_second
        if rate is None:
            return None
        with self._lock:
            found = self._buckets.get(provider.name)
            if found is None or found.rate != rate:
                found = self._buckets[provider.name] = TokenBucket(rate, monotonic=self._monotonic)
            return found

    async def acquire(self, provider: ChannelProvider) -> float:
        """Wait for this provider's next token; returns the seconds waited."""
        bucket = self.bucket(provider)
        wait = bucket.reserve() if bucket is not None else 0.0
        if wait > 0:
            await self._sleep(wait)
        return wait
