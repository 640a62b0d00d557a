"""An independent SMTP relay for benchmarks: an aiosmtpd sink in its own process that counts what it accepted."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc): a figure the machine's load barely moves."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Counter:
    """aiosmtpd's DATA hook: count the message and note when the first and the last one were accepted."""

    def __init__(self, count: Synchronized[int], first: Synchronized[float], last: Synchronized[float]) -> None:
        self.count, self.first, self.last = count, first, last

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # CLOCK_MONOTONIC is system-wide on Linux: the parent compares these with its own readings.
        now = time.monotonic()
        with self.count.get_lock():
            if self.count.value == 0:
                self.first.value = now
            self.count.value += 1
            self.last.value = now
        return "250 2.0.0 Ok: queued"


def _serve(
    port: int, count: Synchronized[int], first: Synchronized[float], last: Synchronized[float], stop: Event
) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(_Counter(count, first, last), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        stop.wait()
    finally:
        controller.stop()


class CountingSink:
    """Start with `with CountingSink() as sink:`; `sink.count`, `sink.window()`, `sink.reset()` between runs."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.port = free_port()
        self._count: Synchronized[int] = context.Value("q", 0)
        self._first: Synchronized[float] = context.Value("d", 0.0)
        self._last: Synchronized[float] = context.Value("d", 0.0)
        self._stop = context.Event()
        self._process = context.Process(
            target=_serve, args=(self.port, self._count, self._first, self._last, self._stop), daemon=True
        )

    def __enter__(self) -> CountingSink:
        self._process.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(512).startswith(b"220"):
                        return self
            except OSError:
                if time.monotonic() > deadline or not self._process.is_alive():
                    raise RuntimeError("the SMTP sink did not start") from None
                time.sleep(0.05)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def cpu(self) -> float:
        """CPU seconds the sink process has used so far."""
        assert self._process.pid is not None
        return cpu_seconds(self._process.pid)

    @property
    def count(self) -> int:
        return int(self._count.value)

    def window(self) -> tuple[float, float]:
        """(monotonic time the first message was accepted, the last one)."""
        with self._count.get_lock():
            return float(self._first.value), float(self._last.value)

    def reset(self) -> None:
        with self._count.get_lock():
            self._count.value = 0
            self._first.value = 0.0
            self._last.value = 0.0

    def wait_for(self, count: int, *, stall_seconds: float = 60.0, alive: Any = None) -> None:
        """Block until the sink has accepted `count` messages; raise when nothing arrives for `stall_seconds`."""
        last, since = -1, time.monotonic()
        while (seen := self.count) < count:
            if seen != last:
                last, since = seen, time.monotonic()
            elif time.monotonic() - since > stall_seconds or (alive is not None and not alive()):
                raise RuntimeError(f"the sink holds {seen} of {count} messages and nothing more is arriving")
            time.sleep(0.02)
