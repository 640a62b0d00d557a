"""One composition root per process: the Runtime carries the process's parts (delivery settings included),
built once and shared by every thread, instead of module-level caches keyed by environment or id(runtime)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from fastapi.testclient import TestClient

from herald.db.runtime import Runtime
from herald.delivery.settings import DeliverySettings, delivery_settings


def test_delivery_settings_are_read_once_per_runtime_and_shared_by_threads(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_DELIVERY_BATCH_SIZE", "7")
    seen: list[DeliverySettings] = []
    threads = [threading.Thread(target=lambda: seen.append(delivery_settings(runtime))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(s) for s in seen}) == 1 and seen[0].delivery_batch_size == 7
    # The process's settings do not change under it when the environment does ...
    monkeypatch.setenv("HERALD_DELIVERY_BATCH_SIZE", "9")
    assert delivery_settings(runtime) is seen[0] and delivery_settings(runtime).delivery_batch_size == 7
    # ... and another runtime (another process's root) reads its own, with no global cache in between.
    other = Runtime(settings=runtime.settings, engine=runtime.engine, clock=runtime.clock)
    assert delivery_settings(other).delivery_batch_size == 9


def test_the_api_plans_with_the_settings_the_root_provided(runtime: Runtime, api_key: str) -> None:
    from herald.api.app import create_app

    # 12:00 UTC on the fixture clock; this root's window opens at 13:00 and exempts nothing.
    provided = DeliverySettings(quiet_exempt_transactional=False, quiet_start=dt.time(13, 0), default_timezone="UTC")
    runtime.provide(provided)
    assert delivery_settings(runtime) is provided
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {api_key}"}) as client:
        made = client.post("/api/contacts", json={"emails": ["pat@example.com"], "timezone": "UTC"})
        assert made.status_code == 201, made.text
        payload = {
            "class": "transactional",
            "channels": ["email"],
            "email": "pat@example.com",
            "content": {"email": {"subject": "Your order", "text": "Your order has shipped."}},
        }
        sent = client.post("/api/messages", json=payload, headers={"Idempotency-Key": "root-1"})
    assert sent.status_code == 202, sent.text
    assert (sent.json()["status"], sent.json()["hold_reason"]) == ("held", "quiet_hours")


def test_the_callback_registry_is_built_once_per_runtime(runtime: Runtime) -> None:
    from herald.delivery.receipts import callback_registry

    own = delivery_settings(runtime)
    first = callback_registry(runtime, own)
    assert callback_registry(runtime, own) is first  # every callback request reuses the root's registry
    assert first.get("twilio_sms").name == "twilio_sms"
    assert callback_registry(runtime, DeliverySettings()) is not first  # explicit settings: a registry of its own
