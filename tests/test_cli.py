"""The command line answers a user's mistake with one line and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CROUPIER = str(Path(sys.executable).parent / "croupier")


def croupier(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed command and capture what it printed."""
    return subprocess.run(  # noqa: S603 -- our own console script, fixed arguments
        [CROUPIER, *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=60
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
    done = croupier("serve", "--config", str(bad))
    assert done.returncode == 2
    assert "croupier: error:" in done.stderr
    assert "Traceback" not in done.stderr
