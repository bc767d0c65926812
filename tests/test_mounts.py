"""Recorders as real filesystems: a FAT card image through fusefat, a loop-mounted ext4 card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import archive_problems, mount, padded_recording, tree_state, umount

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def _atimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_atime_ns for p in root.rglob("*") if p.is_file()}


def test_fat_card_through_fusefat(cli, card: Path, tmp_path: Path, data_dir: Path):
    if not shutil.which("fusefat"):
        pytest.fail("fusefat is missing: scripts/test installs it")
    image = tmp_path / "card.img"
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    # No volume label: fusefat (unlike the kernel's vfat) shows a label as an empty file in the root.
    subprocess.run(["mkfs.vfat", str(image)], check=True, capture_output=True)
    for entry in card.iterdir():
        subprocess.run(["mcopy", "-s", "-m", "-i", str(image), str(entry), "::/"], check=True)
    target = tmp_path / "media" / "TA00716"
    target.mkdir(parents=True)
    subprocess.run(["fusefat", "-o", "ro", str(image), str(target)], check=True, capture_output=True)
    try:
        before = tree_state(target)
        result = cli("ingest", target, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert (report["ingested"], report["failed"]) == (6, [])
        for src in target.rglob("*.MP4"):
            assert (data_dir / "archive/2022/11/03/TA00716" / src.name).read_bytes() == src.read_bytes()
        assert tree_state(target) == before
        assert json.loads(cli("ingest", target, "--json").stdout)["already_archived"] == 6
    finally:
        umount(target)
    assert archive_problems(data_dir) == []


def test_ext4_card_mounted_read_write_is_left_exactly_as_it_was(cli, card: Path, tmp_path: Path, data_dir: Path):
    """Not a byte, a name or an access time changes: not by the copy, not by what reads the card while the
    command loads, not by the probe of a big recording (which reads the copy)."""
    tree = tmp_path / "tree"
    shutil.copytree(card, tree)
    padded_recording(card / "RECORD" / "TA00716_JX0227_20221103093621.MP4",
                     tree / "RECORD" / "TA00716_JX0227_20221103100000.MP4")
    image = tmp_path / "card.img"
    subprocess.run(["truncate", "-s", "128M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-d", str(tree), str(image)], check=True)
    target = tmp_path / "media" / "ext4card"
    target.mkdir(parents=True)
    mount("-o", "loop,rw,strictatime", str(image), str(target))  # writable: nothing stops a careless tool
    try:
        before = tree_state(target)  # reads every file: take the access times after this
        atimes = _atimes(target)
        result = cli("ingest", target, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["ingested"] == 7
        assert _atimes(target) == atimes  # read with O_NOATIME: even access times stay
        assert tree_state(target) == before
    finally:
        umount(target)
    assert archive_problems(data_dir) == []
