"""The configuration's built-in defaults: every key the configuration knows, with its value when no file sets it.
Their types are the schema `config` checks files against: a key absent here is unknown. `config/archiver.toml`
documents each key."""

from __future__ import annotations

from typing import Any

DEFAULT_NAME_PATTERN = r"^(?P<serial>[A-Za-z0-9]+)_(?P<officer>[A-Za-z0-9]+)_(?P<start>\d{14})(?:[_-].*)?$"
# A voice recorder's (录音笔) own names: REC20220315-090200, VOICE_20220315_090200.
VOICE_NAME_PATTERN = r"^(?:REC|VOICE|VOC)[_-]?(?P<start>\d{8}[_-]?\d{6})$"

# Built-in defaults. Their types are the schema: a key absent here is unknown.
DEFAULTS: dict[str, Any] = {
    "data_dir": "/var/lib/archiver",
    "timezone": "Asia/Shanghai",
    "hashes": ["sha256"],
    "naming": {
        "patterns": [DEFAULT_NAME_PATTERN, VOICE_NAME_PATTERN],
        "time_format": "%Y%m%d%H%M%S",
    },
    "scan": {
        "system_files": [
            "*.log", "*.ini", "*.cfg", "*.conf", "*.bin", "*.sys", "*.dat", "*.db", "*.tmp",
            "Thumbs.db", ".DS_Store", "._*", "System Volume Information", "$RECYCLE.BIN",
            ".Trashes", ".Spotlight-V100", ".fseventsd", "LOG", "LOGS", "SYSTEM",
        ],
    },
    "dock": {
        "mount_roots": ["/media", "/run/media"],
        "inboxes": [],
        "settle_seconds": 5,
        "max_parallel": 0,
        "clear_after": "never",
    },
    "linking": {
        "clock_tolerance_s": 30,
        "max_gap_s": 3,
        "not_required_stages": [],
    },
    "backup": {
        "targets": [],
        "recipients": [],
        "recipients_file": "",
        "after_ingest": False,
        "keep_snapshots": 10,
        "keep_purged": [],
    },
    "retention": {
        "verified_within_days": 30,
        "request_days": 7,
        "classes": {  # free-form: class name -> minimum keeping period
            "invalid": "7 days",
            "unlinked": "6 months",
            "evidence": "permanent",
            "major": "permanent",
            "case_30y": "30 years",
            "case_10y": "10 years",
        },
    },
    "capacity": {
        "warn_days": 30,
        "min_free": "5 GiB",
    },
    "report": {
        "late_dock_hours": 24,
        "unit": "",
    },
    "service": {
        "socket": "/run/archiver/archiver.sock",
        "refusals_every_s": 60,
    },
    "ui": {
        "language": "auto",
    },
    "station": {
        "id": "",  # this station's name in the county (houye): what the centre knows it by
    },
    "central": {
        "url": "",  # the county's central catalog (postgresql+psycopg://...); empty: no sync
        "interval_s": 30,  # the daemon syncs this often, and after each ingest
        "max_backoff_s": 600,  # while the centre is unreachable, retries back off up to this
        "key": "",  # the centre's public key (ed25519:...), as 'archiver stations add' prints it
        "wait_s": 10,  # a sync waits this long for the centre to apply what it handed in
        "poll_s": 0.5,  # at the centre: how often 'archiver central' looks into an empty inbox
    },
    "catalog": {
        "url": "",  # empty: SQLite in the data dir; the centre sets its PostgreSQL here
    },
    "web": {
        "listen": "127.0.0.1:8480",  # the web view's address; any but loopback only with TLS
        "tls_cert": "",
        "tls_key": "",
        "idle_minutes": 15,  # a web session unused this long is gone
        "with_daemon": False,  # the daemon starts the web view as its child (outside systemd's units)
    },
    "s3": {  # for backup targets s3://bucket/prefix; empty keys come from the usual AWS_* variables
        "endpoint_url": "",
        "region": "",
        "access_key_id": "",
        "secret_access_key": "",
        "rolling_lock_days": 365,  # footage kept for good (open cases) is locked this far ahead, renewed
    },
    "access": {
        "service_user": "archiver",
        "reader_group": "archiver",
        "groups": {
            "officer": "archiver-officer",
            "clerk": "archiver-clerk",
            "legal": "archiver-legal",
            "auditor": "archiver-auditor",
            "admin": "archiver-admin",
        },
        "officers": {},  # free-form: OS user name -> officer number
    },
}
