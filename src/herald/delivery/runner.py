"""The process runner: one Deliverer per runtime with its own event loop, for the synchronous worker loop."""

from __future__ import annotations

import asyncio
import threading

from herald.db.runtime import Runtime
from herald.delivery import ledger
from herald.delivery.bootstrap import Providers, build_registry
from herald.delivery.settings import DeliverySettings, delivery_settings
from herald.delivery.worker import Deliverer, new_worker_id


class _Engine:
    """A Deliverer with its own event loop and providers, for the synchronous worker loop."""

    def __init__(self, runtime: Runtime, delivery: DeliverySettings, concurrency: int) -> None:
        self.loop = asyncio.new_event_loop()
        worker_id = new_worker_id()  # the providers' wire marks and the claims must name the same worker
        self.providers: Providers = build_registry(runtime, delivery, concurrency=concurrency, worker_id=worker_id)
        self.deliverer = Deliverer(
            runtime, self.providers.registry, delivery, worker_id=worker_id, relay_logs=self.providers.relay_logs
        )

    def run(self, concurrency: int) -> int:
        return self.loop.run_until_complete(self.deliverer.run_pass(concurrency=concurrency))

    def close(self) -> None:
        self.loop.run_until_complete(self.providers.aclose())
        self.loop.close()


class _Slot:
    """This runtime's delivery engine, built on first need; kept on the runtime (the composition root's parts)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engine: _Engine | None = None


def run_delivery_pass(runtime: Runtime, *, concurrency: int = 1) -> int:
    """One drain of due deliveries for this runtime (called by the worker loop); returns rows handled.

    Providers (and the embedded simulator) are only built once there is something to deliver.
    """
    slot = runtime.part(_Slot, _Slot)
    with slot.lock:
        if slot.engine is None:
            with runtime.engine.connect() as conn:
                if not ledger.anything_due(conn, runtime.clock.now()):
                    return 0
            slot.engine = _Engine(runtime, delivery_settings(runtime), concurrency)
        engine = slot.engine
    return engine.run(concurrency)


def close_delivery(runtime: Runtime) -> None:
    slot = runtime.part(_Slot, _Slot)
    with slot.lock:
        engine, slot.engine = slot.engine, None
    if engine is not None:
        engine.close()
