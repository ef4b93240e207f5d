"""`croupier serve --workers N`: several gateway processes on one port, each with its own engine."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Return the pids of a process's children, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


async def test_two_workers_share_the_port_and_stop_together(fresh_db: str, fresh_redis: str) -> None:
    """Two workers answer on one port; SIGTERM stops both and the command exits 0."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": fresh_db, "REDIS_URL": fresh_redis}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "croupier"),
        "serve",
        "--config",
        str(ROOT / "config" / "croupier.toml"),
        "--port",
        str(port),
        "--workers",
        "2",
        env=env,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/livez") as resp:
                        if resp.status == 200 and len(children_of(proc.pid)) >= 2:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            workers = children_of(proc.pid)
            # Spawned workers, plus multiprocessing's resource tracker.
            assert len(workers) >= 2, workers
            for _ in range(20):
                async with http.get(f"http://127.0.0.1:{port}/livez") as resp:
                    assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    assert b"2 workers serving" in stderr
    assert b"Traceback" not in stderr
