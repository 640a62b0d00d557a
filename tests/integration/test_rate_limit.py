"""A provider's declared rate is enforced by the worker: concurrent sends of one pass share its bucket."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence

from fastapi.testclient import TestClient

from herald.channels.base import Channel, ProviderEvent, Receipt, RenderedMessage, SignatureError
from herald.channels.registry import ChannelRegistry
from herald.db.runtime import Runtime
from herald.delivery.settings import DeliverySettings
from herald.delivery.throttle import Throttle
from herald.delivery.worker import Deliverer


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class SlowSms:
    """An SMS provider that declares 2 messages a second and records when each send started (fake time)."""

    name = "slow_sms"
    channel = Channel.SMS
    rate_limit_per_second: float | None = 2.0

    def __init__(self, time: FakeTime) -> None:
        self.time = time
        self.started: list[float] = []

    async def send(self, message: RenderedMessage) -> Receipt:
        self.started.append(self.time.now)
        return Receipt(message.reference, self.name, f"SM{len(self.started)}", "queued", dt.datetime.now(dt.UTC))

    def parse_callback(self, url: str, headers: Mapping[str, str], body: bytes) -> Sequence[ProviderEvent]:
        raise SignatureError("no callbacks")


async def test_the_declared_rate_spaces_concurrent_sends(runtime: Runtime, api: TestClient) -> None:
    time = FakeTime()
    provider = SlowSms(time)
    throttle = Throttle(monotonic=time.monotonic, sleep=time.sleep)
    deliverer = Deliverer(runtime, ChannelRegistry([provider]), DeliverySettings(), throttle=throttle)
    for i in range(5):
        body = {"class": "transactional", "phone": f"+1212555{i:04d}", "channels": ["sms"],
                "content": {"sms": {"body": f"Code {i}"}}}  # fmt: skip
        response = api.post("/api/messages", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert response.status_code == 202, response.text
    assert await deliverer.run_pass(concurrency=5) == 5
    # A burst of 2 (one second's worth), then one every half second: 5 sends take 1.5 s, not 0.
    assert sorted(provider.started) == [0.0, 0.0, 0.5, 1.0, 1.5]
    statuses = [m["status"] for m in api.get("/api/messages").json()["messages"]]
    assert statuses == ["sent"] * 5
