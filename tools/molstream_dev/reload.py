"""Run a command and restart it when a Python file under the watched directories changes.

`skaffold dev` syncs edited sources into running containers (the image's `dev` target installs
them in editable mode under /app); long-running processes must restart to load them. The dev
values of the chart run the worker and the operator through this:

    python -m molstream_dev.reload --watch /app/services --watch /app/operator -- molstream worker

Polling (no inotify dependency), one check per second. SIGTERM/SIGINT stop the command and exit.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType


def _snapshot(roots: list[Path]) -> dict[Path, float]:
    files: dict[Path, float] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            try:
                files[path] = path.stat().st_mtime
            except FileNotFoundError:  # removed while we looked
                continue
    return files


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m molstream_dev.reload", description=__doc__)
    parser.add_argument("--watch", action="append", type=Path, required=True, help="Directory.")
    parser.add_argument("--interval", type=float, default=1.0, help="Seconds between checks.")
    parser.add_argument("--grace", type=float, default=30.0, help="Seconds to wait for a stop.")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    state = _snapshot(args.watch)
    process = subprocess.Popen(command)
    while not stopping:
        time.sleep(args.interval)
        current = _snapshot(args.watch)
        if current != state:
            changed = sorted(str(p) for p in current.keys() ^ state.keys()) or sorted(
                str(p) for p in current if current[p] != state.get(p)
            )
            print(f"reload: {', '.join(changed[:5])} changed, restarting", file=sys.stderr)
            state = current
            _stop(process, args.grace)
            process = subprocess.Popen(command)
        elif process.poll() is not None:
            # The command ended by itself: end with it, so that Kubernetes sees the exit code.
            return process.returncode
    _stop(process, args.grace)
    return process.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
