"""The daemon's one pass over inboxes and mounted recorders; mount-table parsing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from archiver.dock.watch import parse_mountinfo, recorder_mounts

MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 22 8:17 / /media/TA\\04000716 ro,nosuid,nodev,noexec shared:5 - vfat /dev/sdb1 ro,fmask=0022\n"
    "41 22 0:50 / /run/media/clerk/CARD rw shared:6 - exfat /dev/sdc1 rw\n"
    "42 22 0:51 / /mediax rw shared:7 - tmpfs tmpfs rw\n"
    "43 22 0:52 / /media rw shared:8 - tmpfs tmpfs rw\n"
)


def test_parse_mountinfo_and_pick_recorders():
    mounts = parse_mountinfo(MOUNTINFO)
    assert mounts[1].mount_point == Path("/media/TA 00716") and mounts[1].read_only and mounts[1].fstype == "vfat"
    assert (mounts[1].mount_id, mounts[1].source) == (40, "/dev/sdb1")
    picked = recorder_mounts(mounts, (Path("/media"), Path("/run/media")))
    assert [str(m.mount_point) for m in picked] == ["/media", "/media/TA 00716", "/run/media/clerk/CARD"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_daemon_pass_ingests_inbox_and_mounted_recorder(cli, card: Path, tmp_path: Path, tmpfs, data_dir: Path):
    roots = tmp_path / "media"
    inbox = tmp_path / "inbox"
    mounted = tmpfs("media/TA00716", "16m")
    shutil.copytree(card, mounted, dirs_exist_ok=True)
    inbox.mkdir()
    (inbox / "dropped.WAV").write_bytes((card / "AUDIO/TA00716_JX0227_20221103093628.WAV").read_bytes() + b"!")
    config = tmp_path / "daemon.toml"
    config.write_text(f'[dock]\nmount_roots = ["{roots}"]\ninboxes = ["{inbox}"]\n')
    result = cli("daemon", "--once", config=config)
    assert result.exit_code == 0, result.output
    assert f"drop recordings into: {inbox}" in result.stderr
    assert f"{mounted}: 6 archived" in result.stderr and f"{inbox}: 1 archived" in result.stderr
    rows = json.loads(cli("recordings", "list", "--json").stdout)
    assert len(rows) == 7
