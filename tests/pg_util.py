"""A throwaway PostgreSQL server for the tests (Debian's postgresql 15), started and stopped by
`scripts/engines`: initdb in a temporary folder, a Unix socket only, run as the `postgres` user."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENGINES = REPO / "scripts" / "engines"
CREATEDB = "/usr/lib/postgresql/15/bin/createdb"


class PostgresServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.host = str(base)  # the folder of its socket: the `host` of a URL

    def _engines(self, verb: str) -> None:
        subprocess.run([str(ENGINES), "postgres", verb, self.host], check=True, capture_output=True)

    def start(self) -> None:
        self._engines("start")

    def stop(self) -> None:
        self._engines("stop")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; `start` recovers it."""
        self._engines("kill")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running server; stopped and removed after."""
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="arcv-pg-", dir="/tmp")))
    server.start()
    try:
        yield server
    finally:
        subprocess.run([str(ENGINES), "postgres", "kill", server.host], capture_output=True)
        shutil.rmtree(server.base, ignore_errors=True)


def new_database(server: PostgresServer) -> str:
    """A fresh, empty database on the server; its SQLAlchemy URL (psycopg 3)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    command = [CREATEDB, "-h", server.host, "-U", "postgres", name]
    subprocess.run(["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command, check=True,
                   capture_output=True)
    return f"postgresql+psycopg://postgres@/{name}?host={server.host}"

