"""molstream_dev.reload, which `skaffold dev` relies on: restart on a changed source file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def _wait_for(path: Path, lines: int, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if len(text.splitlines()) >= lines:
            return text.splitlines()
        time.sleep(0.1)
    raise AssertionError(f"{path} has not {lines} lines: {text!r}")


def test_restarts_on_change_and_stops_on_sigterm(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    sources.mkdir()
    module = sources / "mod.py"
    module.write_text("VERSION = 1\n")
    starts = tmp_path / "starts.log"
    child = (
        "import signal, sys; sys.path.insert(0, sys.argv[1]); import mod; "
        "open(sys.argv[2], 'a').write(f'{mod.VERSION}\\n'); signal.pause()"
    )
    reload = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "molstream_dev.reload",
            "--watch",
            sources,
            "--interval",
            "0.2",
            "--grace",
            "5",
            "--",
            sys.executable,
            "-c",
            child,
            sources,
            starts,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(starts, 1) == ["1"]
        time.sleep(0.3)
        module.write_text("VERSION = 2\n")
        assert _wait_for(starts, 2) == ["1", "2"]
    finally:
        reload.send_signal(signal.SIGTERM)
        _, errors = reload.communicate(timeout=15)
    assert "mod.py changed, restarting" in errors


def test_exits_with_the_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "molstream_dev.reload",
            "--watch",
            tmp_path,
            "--interval",
            "0.1",
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(3)",
        ],
        timeout=30,
    )
    assert result.returncode == 3
