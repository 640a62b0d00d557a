"""Serve the simulator with uvicorn on a loopback socket, with the connection-level faults only a server can do."""

from __future__ import annotations

import asyncio
import functools
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from herald.channels.simulator.app import create_app
from herald.channels.simulator.state import SimulatorConfig
from herald.core.clock import Clock


class SimulatorServer:
    """One simulator on host:port (port 0 picks a free one); run it in this loop, a thread, or the foreground."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
    ) -> None:
        self.app: Starlette = create_app(config, control=self, clock=clock)
        self._sock = socket.create_server((host, port))
        self.host, self.port = host, int(self._sock.getsockname()[1])
        uv_config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", http="h11", ws="none", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(uv_config)
        self._task: asyncio.Task[None] | None = None
        self._reopen: asyncio.TimerHandle | None = None
        self._refusing = False
        self._background: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- running -------------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM (the `herald simulator` command)."""
        asyncio.run(self._server.serve(sockets=[self._sock]))

    async def start(self) -> None:
        """Serve in the running event loop; returns once the socket accepts requests."""
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("simulator stopped during startup")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        self._server.should_exit = True
        if self._task is not None:
            await self._task

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @contextmanager
    def in_thread(self) -> Iterator[SimulatorServer]:
        """Serve from a background thread, for synchronous clients such as twilio-python."""
        started = threading.Event()
        loop = asyncio.new_event_loop()

        async def main() -> None:
            await self.start()
            started.set()
            assert self._task is not None
            await self._task

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        try:
            if not started.wait(timeout=30):
                raise RuntimeError("simulator did not start")
            yield self
        finally:
            self._server.should_exit = True
            thread.join(timeout=30)
            loop.close()

    # --- ConnectionControl ---------------------------------------------------------------------------

    def abort(self, client: tuple[str, int] | None) -> bool:
        """Reset the connection from `client` with an RST (SO_LINGER 0), no answer written."""
        for connection in list(self._server.server_state.connections):
            if client is not None and getattr(connection, "client", None) == client:
                transport: asyncio.Transport = connection.transport
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return True
        return False

    def refuse_for(self, seconds: float) -> None:
        """Stop listening (new connections are refused), close idle ones, listen again after `seconds`."""
        loop = asyncio.get_running_loop()
        if not self._refusing:
            self._refusing = True
            for listener in self._server.servers:
                listener.close()
            for connection in list(self._server.server_state.connections):
                connection.shutdown()
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = loop.call_later(seconds, self._schedule_accept, loop)

    def _schedule_accept(self, loop: asyncio.AbstractEventLoop) -> None:
        self._reopen = None
        self._background = loop.create_task(self.accept_connections())

    async def accept_connections(self) -> None:
        """Listen again on the same port after `refuse_for`."""
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if not self._refusing:
            return
        config = self._server.config
        # Built exactly as uvicorn's own startup builds it (Server.startup: create_protocol).
        protocol = functools.partial(
            config.http_protocol_class,  # type: ignore[call-arg]
            config=config,
            server_state=self._server.server_state,
            app_state=self._server.lifespan.state,
        )
        sock = socket.create_server((self.host, self.port))
        listener = await asyncio.get_running_loop().create_server(protocol, sock=sock, backlog=config.backlog)
        self._server.servers.append(listener)
        self._refusing = False
