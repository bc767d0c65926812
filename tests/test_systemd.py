"""The systemd units (verified, and scored by systemd-analyze security) and archiver-mount against
real loop devices: an allow-list of filesystem types, and an unmount of exactly the mount it made."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, umount

MOUNT = REPO / "systemd" / "archiver-mount"
LIMITS = {"archiver.service": 2.0, "archiver-central.service": 2.0, "archiver-web.service": 2.5,
          "archiver-verify.service": 3.0,
          "archiver-mount@.service": 5.0}


def test_systemd_units_verify(tmp_path: Path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    repo = Path(__file__).resolve().parent.parent
    units = tmp_path / "units"
    units.mkdir()
    for unit in (repo / "systemd").iterdir():
        if unit.suffix in (".service", ".timer", ".mount"):
            # point the installed paths at this checkout so the executables exist
            (units / unit.name).write_text(unit.read_text().replace("/opt/archiver", str(repo)))
        elif unit.suffix == ".d":  # drop-ins (county.conf) are verified with their unit
            shutil.copytree(unit, units / unit.name)
    names = []
    for unit in sorted(u for u in units.iterdir() if u.is_file()):
        if "@" in unit.name:  # a template is verified through an instance of it
            instance = units / unit.name.replace("@.", "@sdb1.")
            instance.symlink_to(unit)
            unit = instance
        names.append(str(unit))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True,
                            env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if str(units) in line or "Unknown" in line or "Invalid" in line]
    assert result.returncode == 0 and problems == [], result.stderr


@pytest.mark.parametrize("unit", sorted(LIMITS))
def test_units_are_sandboxed_within_their_exposure_limits(unit: str):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                             f"--threshold={int(LIMITS[unit] * 10)}", str(REPO / "systemd" / unit)],
                            capture_output=True, text=True)
    score = float(result.stdout.rsplit(":", 1)[1].split()[0])
    assert result.returncode == 0 and score <= LIMITS[unit], result.stdout[-400:]


@pytest.fixture
def loop_image(tmp_path: Path):
    """Make a filesystem image and attach it to a loop device; returns the device's name (loopN)."""
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    attached: list[str] = []

    def make(fstype: str, label: str) -> str:
        content = tmp_path / f"content-{label}"
        content.mkdir()
        (content / "TA00716_JX0227_20221103093621.MP4").write_bytes(b"footage")
        image = tmp_path / f"{label}.img"
        subprocess.run(["truncate", "-s", "8M", str(image)], check=True)
        subprocess.run([f"mkfs.{fstype}", "-q", "-L", label, "-d", str(content), str(image)], check=True)
        dev = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                             text=True).stdout.strip()
        attached.append(dev)
        return Path(dev).name

    yield make
    for dev in attached:
        subprocess.run(["losetup", "-d", dev], check=False)


def _mount_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARCHIVER_MOUNT_BASE": str(tmp_path / "media"), "ARCHIVER_USER": "root",
           "ARCHIVER_MOUNT_STATE": str(tmp_path / "state")}
    return subprocess.run([str(MOUNT), *args], capture_output=True, text=True, env=env)


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_archiver_mount_mounts_an_allowed_type_read_only_and_unmounts_exactly_its_own(tmp_path: Path, loop_image):
    name = loop_image("ext4", "ZFY-04")
    mounted = _mount_script(tmp_path, "mount", name)
    assert mounted.returncode == 0, mounted.stderr
    point = tmp_path / "media" / "ZFY-04"
    line = next(x for x in _mounts().splitlines() if f" {point} " in x)
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(line.split()[5].split(","))
    assert (point / "TA00716_JX0227_20221103093621.MP4").read_bytes() == b"footage"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["mount", "-o", "ro", f"/dev/{name}", str(elsewhere)], check=True)
    try:
        holder = (point / "TA00716_JX0227_20221103093621.MP4").open("rb")  # busy: umount must fail
        busy = _mount_script(tmp_path, "unmount", name)
        holder.close()
        assert busy.returncode != 0 and f" {point} " in _mounts(), busy.stdout
        done = _mount_script(tmp_path, "unmount", name)
        assert done.returncode == 0, done.stderr
        assert f" {point} " not in _mounts() and not point.exists()
        assert f" {elsewhere} " in _mounts()  # the other mount of the same device is not ours: untouched
    finally:
        umount(elsewhere)


def test_archiver_mount_refuses_a_filesystem_type_off_the_allow_list(tmp_path: Path, loop_image):
    name = loop_image("ext2", "OTHER")
    refused = _mount_script(tmp_path, "mount", name)
    assert refused.returncode == 2 and "'ext2', not one of: vfat exfat ext4" in refused.stderr
    assert f"/dev/{name} " not in _mounts() and not (tmp_path / "media" / "OTHER").exists()
    assert _mount_script(tmp_path, "mount", "../sda1").returncode == 2  # not a device name
