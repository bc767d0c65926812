"""A throwaway PostgreSQL server for the tests (Debian's postgresql 15): initdb in a temporary folder,
listening on a Unix socket only, run as the unprivileged `postgres` user (it refuses root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield the folder of its socket (the `host` of a URL); stop and remove it after."""
    if not (BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is missing: scripts/test installs Debian's postgresql")
    base = Path(tempfile.mkdtemp(prefix="arcv-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    subprocess.run(_as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                "--encoding=UTF8", "--locale=C.UTF-8"), check=True, capture_output=True)
    subprocess.run(_as_postgres(str(BIN / "pg_ctl"), "start", "-D", str(data), "-w", "-l", str(base / "log"),
                                "-o", f"-k {base} -c listen_addresses='' -c fsync=off"),
                   check=True, capture_output=True)
    try:
        yield str(base)
    finally:
        subprocess.run(_as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def new_database(host: str) -> str:
    """A fresh, empty database on the server; its SQLAlchemy URL (psycopg 3)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    subprocess.run(_as_postgres(str(BIN / "createdb"), "-h", host, "-U", "postgres", name), check=True,
                   capture_output=True)
    return f"postgresql+psycopg://postgres@/{name}?host={host}"
