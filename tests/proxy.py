"""A fault-injecting TCP proxy in the style of asyncpg's test proxy, and an operator that fails.

`FaultProxy` sits between the gateway and the operator's wallet and, by mode:
- PASS forwards both ways;
- DROP_REPLIES forwards the request, lets the operator answer (and commit), then closes the
  client's connection without sending the answer: the classic unknown outcome;
- CUT accepts a connection and closes it at once (the operator is down);
- DELAY holds each reply for `delay_s` before sending it.
Changing the mode aborts every open connection, so pooled keep-alive connections cannot slip past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum

import aiohttp
from aiohttp import web


class Mode(enum.Enum):
    """What the proxy does with the next bytes it sees."""

    PASS = "pass"
    DROP_REPLIES = "drop_replies"
    CUT = "cut"
    DELAY = "delay"


class FaultProxy:
    """A TCP proxy on 127.0.0.1 with a switchable fault."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = Mode.PASS
        self.delay_s = 0.0
        self.replies_dropped = 0
        self.connections_cut = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on an ephemeral port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    @property
    def port(self) -> int:
        """Return the port the proxy listens on."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Return the proxy's base URL for an HTTP upstream."""
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: Mode, *, delay_s: float = 0.0) -> None:
        """Switch the fault and drop every open connection so the new mode applies at once."""
        self.mode = mode
        self.delay_s = delay_s
        self._abort_all()

    def _abort_all(self) -> None:
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._abort_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.mode is Mode.CUT:
                self.connections_cut += 1
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.transport.abort()
                return
            self._transports.update((writer.transport, up_writer.transport))
            try:
                await asyncio.gather(
                    self._requests(reader, up_writer), self._replies(up_reader, writer, up_writer)
                )
            except (ConnectionError, OSError):
                pass  # either side went away: the connection is over, which is the point
            finally:
                for w in (writer, up_writer):
                    self._transports.discard(w.transport)
                    w.transport.abort()
        finally:
            self._tasks.discard(task)

    async def _requests(self, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        """Forward the client's bytes upstream until either side closes."""
        while chunk := await reader.read(65536):
            if self.mode is Mode.CUT:
                return
            up_writer.write(chunk)
            await up_writer.drain()
        up_writer.transport.abort()

    async def _replies(
        self,
        up_reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """Forward the upstream's answers to the client, or drop them, by mode."""
        while chunk := await up_reader.read(65536):
            if self.mode in (Mode.DROP_REPLIES, Mode.CUT):
                # The upstream has answered, so it has done the work; the client never learns it.
                self.replies_dropped += 1
                writer.transport.abort()
                up_writer.transport.abort()
                return
            if self.mode is Mode.DELAY:
                await asyncio.sleep(self.delay_s)
            writer.write(chunk)
            await writer.drain()
        writer.transport.abort()


class FailingOperator:
    """An operator wallet front that answers HTTP 500, after forwarding to a real one if given.

    With an upstream, the real wallet applies the request and the gateway only sees the 500:
    the outcome is unknown to it. `failing = False` makes it a transparent pass-through.
    """

    def __init__(self, upstream_url: str | None) -> None:
        self.upstream_url = upstream_url
        self.failing = True
        self.calls: list[str] = []
        self._session: aiohttp.ClientSession | None = None
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.app.on_cleanup.append(self._close)

    async def _close(self, app: web.Application) -> None:
        del app
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(request.path)
        body = await request.read()
        answer: tuple[int, bytes] = (500, b'{"status": "INTERNAL_ERROR", "message": "failed"}')
        if self.upstream_url is not None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-croupier")}
            headers["Content-Type"] = "application/json"
            async with self._session.request(
                request.method, self.upstream_url + request.path_qs, data=body or None, headers=headers
            ) as resp:
                real = (resp.status, await resp.read())
            if not self.failing:
                answer = real
        elif not self.failing:
            raise web.HTTPBadGateway(text="no upstream")
        return web.Response(status=answer[0], body=answer[1], content_type="application/json")
