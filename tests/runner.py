"""The one way a test runs an `archiver` command: in this process (click's runner: no interpreter to start, no
imports to load again; 0.6-0.8 s less a command on this machine), or as the installed binary where the binary
is the point (another user, a signal, a second process at once, systemd)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
ARCHIVER = str(REPO / ".venv" / "bin" / "archiver")


def archiver(*args: object, env: dict[str, str] | None = None, binary: bool = False,
             check: bool = False) -> subprocess.CompletedProcess:
    """Run `archiver ARGS` with `env` laid over this process's environment; its exit code and output, as
    `subprocess.run(..., capture_output=True, text=True)` gives them."""
    argv = [str(a) for a in args]
    if binary:
        done = subprocess.run([ARCHIVER, *argv], env={**os.environ, **(env or {})}, capture_output=True, text=True)
    else:
        from archiver.cli import main

        result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
        done = subprocess.CompletedProcess([ARCHIVER, *argv], result.exit_code, result.stdout, result.stderr)
    if check and done.returncode != 0:
        raise AssertionError(f"archiver {' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]}")
    return done
