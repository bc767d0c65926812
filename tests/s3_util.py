"""A throwaway one-node Ceph radosgw (S3 with Object Lock enforced) for the tests, started and stopped by
`scripts/engines`, and buckets made as a county's administrator would make them."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pg_util import ENGINES

ADMIN = ("admin", "admin-secret")  # owns the buckets; may delete what no lock keeps
STATION = ("station", "station-secret")  # a station's credentials: put, never delete

# What the README gives a county: the station may write objects, locks and legal holds, and read them
# back; never delete a version or bypass a lock (COMPLIANCE cannot be bypassed by anyone anyway).
def station_policy(bucket: str, user: str = "station") -> dict:
    principal = {"AWS": [f"arn:aws:iam:::user/{user}"]}
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
         "Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions",
                    "s3:PutObjectRetention", "s3:GetObjectRetention", "s3:PutObjectLegalHold",
                    "s3:GetObjectLegalHold"]},
        {"Effect": "Deny", "Principal": principal, "Resource": [f"arn:aws:s3:::{bucket}/*"],
         "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"]}]}


def _free_port() -> int:
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


@contextmanager
def radosgw() -> Iterator[str]:
    """A running radosgw; yields its endpoint URL; stopped and removed after."""
    base = Path(tempfile.mkdtemp(prefix="arcv-rgw-", dir="/tmp"))
    try:
        started = subprocess.run([str(ENGINES), "rgw", "start", str(base), str(_free_port())], capture_output=True,
                                 text=True)
        assert started.returncode == 0, started.stderr + "".join(
            p.read_text(errors="replace")[-2000:] for p in (base / "log").glob("*.out"))
        yield started.stdout.strip()
    finally:
        subprocess.run([str(ENGINES), "rgw", "stop", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def client(endpoint: str, who: tuple[str, str]):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=who[0], aws_secret_access_key=who[1],
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))


def locked_bucket(endpoint: str) -> str:
    """A new bucket with Object Lock, owned by the admin, the station allowed to put and never to delete."""
    name = f"county-{uuid.uuid4().hex[:10]}"
    admin = client(endpoint, ADMIN)
    admin.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    admin.put_bucket_policy(Bucket=name, Policy=json.dumps(station_policy(name)))
    return name
