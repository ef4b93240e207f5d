"""The benchmark's servers under test, each in its own spawned process on its own event loop."""

from __future__ import annotations

import asyncio
import cProfile
import logging
import multiprocessing as mp
import signal
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

try:
    import uvloop
except ImportError:  # pragma: no cover -- uvloop is not built for every platform
    uvloop = None  # type: ignore[assignment]

STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0

log = logging.getLogger("bench")


def _bare_app() -> web.Application:
    """Return an app with one endpoint that reads a small JSON body and answers a small JSON."""

    async def ping(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        answer = {"status": "OK", "balance": "100.00", "transaction_id": body.get("transaction_id")}
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    app = web.Application()
    app.router.add_post("/ping", ping)
    return app


def _build_app(kind: str, config: Any) -> web.Application:  # noqa: ANN401 -- pickled settings
    """Return the application a child process serves."""
    if kind == "bare":
        return _bare_app()
    if kind == "lean":
        from lean import lean_app  # noqa: PLC0415 -- child-side import

        return lean_app(config)
    if kind == "pam":
        from wallet.pam.server import create_pam_app  # noqa: PLC0415 -- child-side import

        return create_pam_app(config)
    from gateway.app import create_app  # noqa: PLC0415 -- child-side import

    return create_app(config)


async def _serve_until_stopped(kind: str, config: object, conn: Connection) -> None:
    """Serve on a free loopback port, report the port, and stop cleanly on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(_build_app(kind, config), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr] # noqa: SLF001
        conn.send(("port", port))
        await stop.wait()
    finally:
        await runner.cleanup()


def serve_child(kind: str, config: object, conn: Connection, profile_to: str | None) -> None:
    """Run one server in a spawned process; optionally profile it with cProfile."""
    logging.basicConfig(level=logging.WARNING, format=f"[{kind}] %(levelname)s %(name)s: %(message)s")
    run: Callable[[Awaitable[None]], None] = uvloop.run if uvloop is not None else asyncio.run  # type: ignore[assignment]
    profiler = cProfile.Profile() if profile_to else None
    try:
        if profiler is not None:
            profiler.enable()
        run(_serve_until_stopped(kind, config, conn))
    except Exception as exc:
        conn.send(("error", repr(exc)))
        raise
    finally:
        if profiler is not None and profile_to:
            profiler.disable()
            profiler.dump_stats(profile_to)


class Children:
    """The spawned server processes; stop_all() ends every one, on success, error or Ctrl-C."""

    def __init__(self, profile_dir: Path | None) -> None:
        self.ctx = mp.get_context("spawn")
        self.procs: list[BaseProcess] = []
        self.pids: dict[str, int] = {}
        self.by_kind: dict[str, BaseProcess] = {}
        self.profile_dir = profile_dir

    async def start(self, kind: str, config: object, label: str | None = None) -> str:
        """Start a server process and return its base URL once it listens (profile as `label`)."""
        parent, child = self.ctx.Pipe()
        profile_to = str(self.profile_dir / f"{label or kind}.prof") if self.profile_dir else None
        proc = self.ctx.Process(
            target=serve_child, args=(kind, config, child, profile_to), name=f"bench-{kind}", daemon=True
        )
        proc.start()
        self.procs.append(proc)
        assert proc.pid is not None
        self.pids[kind] = proc.pid
        self.by_kind[kind] = proc
        child.close()
        ready = await asyncio.to_thread(parent.poll, STARTUP_TIMEOUT_S)
        if not ready:
            raise RuntimeError(f"{kind} server did not start in {STARTUP_TIMEOUT_S:.0f} s")
        what, value = parent.recv()
        if what != "port":
            raise RuntimeError(f"{kind} server failed to start: {value}")
        print(f"   {kind} server: pid {proc.pid}, http://127.0.0.1:{value}", flush=True)
        return f"http://127.0.0.1:{value}"

    def stop(self, kind: str) -> None:
        """Stop the latest child of a kind, so that its connections are closed before the next."""
        proc = self.by_kind.pop(kind, None)
        if proc is None:
            return
        _end(proc)
        self.procs.remove(proc)
        self.pids.pop(kind, None)

    def stop_all(self) -> None:
        """Stop every child: SIGTERM for a clean shutdown, SIGKILL if it lingers."""
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            _end(proc)
        self.procs.clear()
        self.by_kind.clear()


def _end(proc: BaseProcess) -> None:
    """Stop one child: SIGTERM for a clean shutdown, SIGKILL if it lingers."""
    if proc.is_alive():
        proc.terminate()
    proc.join(STOP_TIMEOUT_S)
    if proc.is_alive():
        proc.kill()
        proc.join()
