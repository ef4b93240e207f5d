"""`croupier serve --workers N`: N gateway processes on one port (SO_REUSEPORT), one engine each."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from multiprocessing.process import BaseProcess
from types import FrameType

from aiohttp import web

from gateway.app import create_app
from gateway.settings import Settings

try:
    import uvloop
except ImportError:  # pragma: no cover -- uvloop is not built for every platform
    uvloop = None  # type: ignore[assignment]

STOP_TIMEOUT_S = 15.0


def _worker(settings: Settings, host: str, port: int) -> None:
    """Serve one gateway process; the kernel spreads connections over every process on the port."""
    if uvloop is not None:
        uvloop.install()
    web.run_app(create_app(settings), host=host, port=port, reuse_port=True, print=None)


def serve_workers(settings: Settings, host: str, port: int, workers: int) -> int:
    """Run `workers` gateway processes until a signal, then stop them all; return the exit status."""
    # Spawned, not forked: each worker builds its own event loop, pools and engine from scratch.
    # They share the settings as given, so the session keys are the same in every process.
    ctx = mp.get_context("spawn")
    procs: list[BaseProcess] = [
        ctx.Process(target=_worker, args=(settings, host, port), name=f"croupier-worker-{n}", daemon=False)
        for n in range(workers)
    ]
    for proc in procs:
        proc.start()
    sys.stderr.write(f"croupier: {workers} workers serving http://{host}:{port}\n")

    def stop(signum: int, frame: FrameType | None) -> None:
        del frame
        for proc in procs:
            if not proc.is_alive() or proc.pid is None:
                continue
            if signum == signal.SIGTERM:
                proc.terminate()
            else:
                _interrupt(proc)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for proc in procs:
            proc.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for proc in procs:
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
    failed = [p for p in procs if p.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    return 1 if failed else 0


def _interrupt(proc: BaseProcess) -> None:
    """Pass Ctrl-C on as aiohttp expects it, so the worker shuts down cleanly."""
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGINT)
