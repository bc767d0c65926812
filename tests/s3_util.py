"""A throwaway one-node Ceph radosgw (S3 with Object Lock enforced) for the tests, started and stopped by
`scripts/engines`, and buckets made as a county's administrator would make them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pg_util import ENGINES

ADMIN = ("admin", "admin-secret")  # owns the buckets; may delete what no lock keeps
STATION = ("station", "station-secret")  # a station's credentials: put, never delete

def free_port() -> int:
    """A port with the two after it free too (the monitor takes them)."""
    for _attempt in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 60000 and all(_free(port + i) for i in (1, 2)):
            return port
    raise RuntimeError("no free ports for radosgw")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Radosgw:
    endpoint: str
    base: Path  # its folder, as scripts/engines knows it


@contextmanager
def radosgw() -> Iterator[Radosgw]:
    """A running radosgw; stopped and removed after."""
    base = Path(tempfile.mkdtemp(prefix="arcv-rgw-", dir="/tmp"))
    try:
        started = subprocess.run([str(ENGINES), "rgw", "start", str(base), str(free_port())], capture_output=True,
                                 text=True)
        assert started.returncode == 0, started.stderr + "".join(
            p.read_text(errors="replace")[-2000:] for p in (base / "log").glob("*.out"))
        yield Radosgw(started.stdout.strip(), base)
    finally:
        subprocess.run([str(ENGINES), "rgw", "stop", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def client(endpoint: str, who: tuple[str, str]):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=who[0], aws_secret_access_key=who[1],
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))


def locked_bucket(base: Path) -> str:
    """A new bucket with Object Lock, owned by the admin, the station allowed to put and never to delete (the
    policy in config/s3-bucket-policy.json), made by `scripts/engines rgw bucket` as the README says."""
    name = f"county-{uuid.uuid4().hex[:10]}"
    made = subprocess.run([str(ENGINES), "rgw", "bucket", str(base), name], capture_output=True, text=True)
    assert made.returncode == 0 and made.stdout.strip() == f"s3://{name}", made.stderr
    return name
