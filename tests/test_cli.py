"""The command line answers a user's mistake with one line and exit status 2, never a traceback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CROUPIER = str(Path(sys.executable).parent / "croupier")
CONFIG = Path(__file__).resolve().parent.parent / "config" / "croupier.toml"


def croupier(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed command and capture what it printed."""
    return subprocess.run(  # noqa: S603 -- our own console script, fixed arguments
        [CROUPIER, *args], check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["serve", "--config", "missing.toml"], "no configuration file at missing.toml"),
        (["conformance", "nosuch"], "no plug-in is registered"),
    ],
)
def test_a_mistake_is_one_line_and_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    """A missing file or an unknown provider: exit 2, one line naming it, no traceback."""
    done = croupier(*args, cwd=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("croupier: error:")]
    assert len(lines) == 1
    assert words in lines[0]
    assert "Traceback" not in done.stderr


def test_an_invalid_configuration_is_one_line(tmp_path: Path) -> None:
    """A TOML file that does not parse is named in one line."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\nport = 1\n")
    line = _one_line(croupier("serve", "--config", str(bad)))
    assert f"{bad} is not valid TOML" in line


def _free_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """Assert exit 2 with exactly one error line and no traceback; return that line."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("croupier: error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    """A DATABASE_URL where no server listens is named (without its password) before serving."""
    env = {**os.environ, "DATABASE_URL": f"postgresql://app:hunter2@127.0.0.1:{_free_port()}/ledger"}
    env["REDIS_URL"] = f"redis://127.0.0.1:{_free_port()}/0"
    done = croupier("serve", "--config", str(CONFIG), "--port", str(_free_port()), cwd=tmp_path, env=env)
    line = _one_line(done)
    assert "cannot reach the database at 127.0.0.1:" in line
    assert "/ledger" in line
    assert "DATABASE_URL" in line
    assert "hunter2" not in done.stderr


def test_an_unreachable_redis_is_one_line(tmp_path: Path, postgres_url: str) -> None:
    """A REDIS_URL where no server listens is named once the database answers."""
    env = {**os.environ, "DATABASE_URL": postgres_url, "REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0"}
    done = croupier("serve", "--config", str(CONFIG), "--port", str(_free_port()), cwd=tmp_path, env=env)
    line = _one_line(done)
    assert "cannot reach Redis at 127.0.0.1:" in line
    assert "REDIS_URL" in line


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    """A port another program holds is named before any server is started."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = croupier("serve", "--config", str(CONFIG), "--port", str(port), cwd=tmp_path)
    line = _one_line(done)
    assert f"127.0.0.1:{port}" in line
    assert "--port" in line
    assert not (tmp_path / ".croupier").exists()  # nothing was started


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("pool_size = 0", "gateway.pool_size: 0 is out of range"),
        ('engine_window_ms = "soon"', "gateway.engine_window_ms: 'soon' is not a number"),
        ("engine_max_batch = 2.5", "gateway.engine_max_batch: expected an integer"),
        ("port = 70000", "gateway.port: 70000 is out of range"),
    ],
)
def test_a_bad_setting_is_one_line(tmp_path: Path, setting: str, words: str) -> None:
    """A setting of the wrong type or out of range is named with its section."""
    config = tmp_path / "croupier.toml"
    key = setting.split(" ", 1)[0]
    text, replaced = re.subn(rf"^{key} = .*$", setting, CONFIG.read_text(), count=1, flags=re.MULTILINE)
    if not replaced:
        text = text.replace("[gateway]\n", f"[gateway]\n{setting}\n", 1)
    config.write_text(text)
    assert setting in config.read_text()
    line = _one_line(croupier("serve", "--config", str(config), cwd=tmp_path))
    assert words in line


def test_a_bad_port_in_the_environment_is_one_line(tmp_path: Path) -> None:
    """CROUPIER_PORT that is not a number is named, not a ValueError's traceback."""
    env = {**os.environ, "CROUPIER_PORT": "eighty"}
    line = _one_line(croupier("serve", "--config", str(CONFIG), cwd=tmp_path, env=env))
    assert "gateway.port: 'eighty' is not a number" in line
