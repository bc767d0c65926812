"""The dock daemon against real mounts: tmpfs and ext4 cards mounted while it runs, fusefat cards
pulled mid-copy, SIGKILL and SIGTERM mid-copy, idle CPU, inboxes, registered devices, clearing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import archive_problems, mount, tree_state, umount
from daemon_util import DaemonProcess, catalog_rows, cpu_seconds, temp_files, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")

BIG = 160 << 20  # large enough that a copy is still running when the test acts


@pytest.fixture
def dock(tmp_path: Path):
    """Mount points below a mount root, plus helpers that make populated cards; all unmounted after."""
    roots = tmp_path / "media"
    roots.mkdir()
    mounted: list[Path] = []

    class Dock:
        root = roots

        def tmpfs_card(self, name: str, content: Path, big: int = 0) -> Path:
            """A tmpfs filled with `content` (and a big random video), then bound below the root at once."""
            staging = tmp_path / "staging" / name
            staging.mkdir(parents=True)
            mount("-t", "tmpfs", "-o", "size=512m", "tmpfs", str(staging))
            mounted.append(staging)
            shutil.copytree(content, staging, dirs_exist_ok=True)
            if big:
                _random_file(staging / "RECORD" / f"{name}_JX0227_20221103120000.MP4", big)
            return staging

        def attach(self, staging: Path, name: str, *options: str) -> Path:
            target = roots / name
            target.mkdir(exist_ok=True)
            mount("--bind", str(staging), str(target))
            mounted.append(target)
            if options:
                mount("-o", "remount,bind," + ",".join(options), str(target))
            return target

        def ext4_card(self, name: str, content: Path, label: str, *options: str) -> Path:
            image = tmp_path / f"{name}.img"
            subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
            subprocess.run(["mkfs.ext4", "-q", "-L", label, "-d", str(content), str(image)], check=True)
            target = roots / name
            target.mkdir()
            mount("-o", ",".join(("loop", *options)), str(image), str(target))
            mounted.append(target)
            return target

        def detach(self, target: Path) -> None:
            umount(target)

    yield Dock()
    for target in reversed(mounted):
        umount(target)


def _random_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for _ in range(size >> 20):
            fh.write(os.urandom(1 << 20))


def _recordings(data_dir: Path) -> list[str]:
    return sorted(r[0] for r in catalog_rows(data_dir, "select original_path from recordings"))


def test_tmpfs_docked_while_running_is_ingested_within_seconds(dock, card: Path, tmp_path: Path, data_dir: Path):
    daemon = DaemonProcess(tmp_path, data_dir, [dock.root])
    try:
        staging = dock.tmpfs_card("TA00716", card, big=64 << 20)
        docked = time.monotonic()
        dock.attach(staging, "TA00716")
        wait_for(lambda: temp_files(data_dir), 10, "the first byte copied", step=0.002)
        first_byte = time.monotonic() - docked
        wait_for(lambda: len(_recordings(data_dir)) == 7, 30, "all 7 recordings")
        done = time.monotonic() - docked
    finally:
        assert daemon.stop() == 0
    print(f"\nmount to first byte copied: {first_byte * 1000:.0f} ms; whole card (71 MiB): {done:.2f} s")
    assert first_byte < 5
    log = daemon.log()
    assert f"recorder docked mount={dock.root / 'TA00716'}" in log
    assert "ingest finished source=" in log and "ingested=7" in log
    assert archive_problems(data_dir) == []


def test_two_recorders_docked_together_are_ingested_in_parallel(dock, card: Path, tmp_path: Path,
                                                                data_dir: Path):
    cards = [dock.tmpfs_card(name, card, big=BIG) for name in ("TA00001", "TA00002", "TA00003")]
    # the same card content on all: the 6 small files are the same evidence, the big ones differ

    # one recorder alone first, into its own archive, for the comparison
    alone_dir = tmp_path / "alone"
    alone = DaemonProcess(tmp_path, alone_dir, [dock.root])
    try:
        start = time.monotonic()
        dock.attach(cards.pop(), "TA00003")
        wait_for(lambda: len(_recordings(alone_dir)) == 7, 120, "the lone recorder")
        one = time.monotonic() - start
    finally:
        assert alone.stop() == 0
    dock.detach(dock.root / "TA00003")

    daemon = DaemonProcess(tmp_path, data_dir, [dock.root])
    try:
        start = time.monotonic()
        for name, staging in zip(("TA00001", "TA00002"), cards, strict=True):
            dock.attach(staging, name)
        wait_for(lambda: len(_recordings(data_dir)) == 8, 120, "both recorders")
        both = time.monotonic() - start
    finally:
        assert daemon.stop() == 0
    lines = daemon.log().splitlines()
    started = [i for i, line in enumerate(lines) if "ingest started" in line]
    finished = [i for i, line in enumerate(lines) if "ingest finished" in line]
    assert len(started) == 2 and len(finished) == 2
    assert started[1] < finished[0], "the second recorder waited for the first"
    print(f"\none recorder ({(BIG >> 20) + 1} MiB) alone: {one:.2f} s; two docked together: {both:.2f} s "
          f"({2 * one / both:.2f}x the throughput of one)")
    assert archive_problems(data_dir) == []


def test_fusefat_card_docked_then_pulled_mid_copy_then_docked_again(dock, card: Path, tmp_path: Path,
                                                                    data_dir: Path):
    image = tmp_path / "card.img"
    subprocess.run(["truncate", "-s", "400M", str(image)], check=True)
    subprocess.run(["mkfs.vfat", "-F", "32", str(image)], check=True, capture_output=True)
    for entry in card.iterdir():
        subprocess.run(["mcopy", "-s", "-m", "-i", str(image), str(entry), "::/"], check=True)
    big = tmp_path / "TA00716_JX0227_20221103235959.MP4"  # sorts last: the small files go first
    _random_file(big, 300 << 20)
    subprocess.run(["mcopy", "-m", "-i", str(image), str(big), "::/RECORD/"], check=True)
    target = dock.root / "FATCARD"
    target.mkdir()

    def attach() -> subprocess.Popen:
        fuse = subprocess.Popen(["fusefat", "-f", "-o", "ro", str(image), str(target)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.ismount(target), 10, "fusefat mount")
        return fuse

    daemon = DaemonProcess(tmp_path, data_dir, [dock.root])
    try:
        fuse = attach()
        wait_for(lambda: any(big.name in p.name for p in temp_files(data_dir)), 60, "the big file's copy",
                 step=0.005)
        fuse.kill()  # the cable is pulled: reads now fail
        fuse.wait()
        umount(target)
        wait_for(lambda: "files pending" in daemon.log(), 30, "the pending files logged")
        assert daemon.proc.poll() is None, "the daemon must keep running"
        assert temp_files(data_dir) == []
        assert big.name not in " ".join(_recordings(data_dir))
        assert len(_recordings(data_dir)) == 6
        assert archive_problems(data_dir) == []

        fuse = attach()  # docked again
        wait_for(lambda: len(_recordings(data_dir)) == 7, 120, "the big file archived")
    finally:
        assert daemon.stop() == 0
        subprocess.run(["fusermount", "-u", str(target)], capture_output=True)
        umount(target)
    assert "source removed" in daemon.log()
    (copied,) = catalog_rows(data_dir, "select bytes_copied from ingest_runs order by id desc limit 1")[0]
    assert copied == big.stat().st_size  # the verified small files were not copied again
    assert archive_problems(data_dir) == []
    archived = [r[0] for r in catalog_rows(data_dir, "select archive_path from recordings")
                if big.name in r[0]]
    assert (data_dir / archived[0]).read_bytes() == big.read_bytes()


def test_sigkill_mid_copy_then_restart_finishes_with_every_file_once(dock, card: Path, tmp_path: Path,
                                                                     data_dir: Path):
    target = dock.attach(dock.tmpfs_card("TA00716", card, big=BIG), "TA00716")
    before = tree_state(target)
    daemon = DaemonProcess(tmp_path, data_dir, [dock.root])
    left = wait_for(lambda: [p for p in temp_files(data_dir) if "120000" in p.name], 60, "the big copy",
                    step=0.002)
    daemon.signal(signal.SIGKILL)
    daemon.proc.wait()
    daemon.stop()
    assert all(p.exists() for p in left), "a killed process leaves its temp file behind"

    again = DaemonProcess(tmp_path, data_dir, [dock.root])  # the recorder is still mounted
    try:
        wait_for(lambda: len(_recordings(data_dir)) == 7, 60, "all recordings after the restart")
    finally:
        assert again.stop() == 0
    assert "removed temp file left by an interrupted run" in again.log()
    assert archive_problems(data_dir) == []  # no temp file, nothing uncatalogued, every hash right
    files = [p for p in (data_dir / "archive").rglob("*") if p.is_file() and not p.name.startswith("manifest")]
    assert len(files) == 7
    assert tree_state(target) == before


def test_sigterm_mid_copy_exits_0_within_10_s_discarding_the_file(dock, card: Path, tmp_path: Path,
                                                                   data_dir: Path):
    dock.attach(dock.tmpfs_card("TA00716", card, big=BIG), "TA00716")
    daemon = DaemonProcess(tmp_path, data_dir, [dock.root])
    wait_for(lambda: [p for p in temp_files(data_dir) if "120000" in p.name], 60, "the big copy", step=0.002)
    start = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(10) == 0
    took = time.monotonic() - start
    daemon.stop()
    finished = "120000" in " ".join(_recordings(data_dir))
    print(f"\nSIGTERM to exit: {took:.2f} s; the file in hand was {'finished' if finished else 'discarded'}")
    # Either way nothing is half-done: no temp file, and what is catalogued is complete and verified.
    assert temp_files(data_dir) == []
    assert archive_problems(data_dir) == []
    if not finished:
        assert "ended early" in daemon.log() and "reason=cancelled" in daemon.log()


def test_idle_daemon_uses_under_1_percent_cpu(dock, tmp_path: Path, data_dir: Path):
    inbox = tmp_path / "inbox"
    daemon = DaemonProcess(tmp_path, data_dir, [dock.root], [inbox])
    try:
        wait_for(lambda: "daemon ready" in daemon.log(), 20, "the daemon's start-up work")
        before, start = cpu_seconds(daemon.proc.pid), time.monotonic()
        time.sleep(10)
        used = (cpu_seconds(daemon.proc.pid) - before) / (time.monotonic() - start)
    finally:
        assert daemon.stop() == 0
    print(f"\nidle CPU: {used * 100:.2f} %")
    assert used < 0.01


def test_inbox_file_is_ingested_once_complete_and_left_in_place(card: Path, tmp_path: Path, data_dir: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    daemon = DaemonProcess(tmp_path, data_dir, [tmp_path / "no-mounts"], [inbox])
    try:
        data = (card / "RECORD/TA00716_JX0227_20221103093621.MP4").read_bytes()
        dropped = inbox / "sub" / "TA00716_JX0227_20221103093621.MP4"
        dropped.parent.mkdir()
        with dropped.open("wb") as fh:  # a slow copy: open for writing across several settle periods
            fh.write(data[:1000])
            fh.flush()
            time.sleep(2)
            assert _recordings(data_dir) == []  # still open for writing: not complete
            fh.write(data[1000:])
        wait_for(lambda: _recordings(data_dir), 20, "the dropped file")
    finally:
        assert daemon.stop() == 0
    assert _recordings(data_dir) == ["sub/TA00716_JX0227_20221103093621.MP4"]
    assert dropped.read_bytes() == data  # left where it is
    (size,) = catalog_rows(data_dir, "select size from recordings")[0]
    assert size == len(data)


def test_registered_label_names_the_device_and_devices_list(dock, cli, card: Path, tmp_path: Path,
                                                            data_dir: Path):
    content = tmp_path / "content"
    (content / "DCIM").mkdir(parents=True)
    shutil.copy2(card / "RECORD/TA00716_JX0227_20221103093621.MP4", content / "DCIM" / "VID_0001.MP4")
    assert cli("devices", "add", "TD00004", "--label", "ZFY-04", "--officer", "JX0555").exit_code == 0
    clash = cli("devices", "add", "TD00005", "--label", "ZFY-04")
    assert clash.exit_code == 2 and "already registered to TD00004" in clash.stderr
    daemon = DaemonProcess(tmp_path, data_dir, [dock.root])
    try:
        dock.ext4_card("labelled", content, "ZFY-04", "ro")
        other = tmp_path / "other"
        (other / "DCIM").mkdir(parents=True)
        shutil.copy2(card / "RECORD/TA00716_JX0227_20221103093625.MP4", other / "DCIM" / "VID_0002.MP4")
        dock.ext4_card("stranger", other, "NOBODY", "ro")
        wait_for(lambda: len(_recordings(data_dir)) == 2, 30, "both cards")
    finally:
        assert daemon.stop() == 0
    rows = {r["original_path"]: r for r in json.loads(cli("recordings", "list", "--json").stdout)}
    known = rows["DCIM/VID_0001.MP4"]
    assert (known["device_serial"], known["officer_no"]) == ("TD00004", "JX0555")
    assert known["archive_path"].split("/")[-2] == "TD00004"
    stranger = rows["DCIM/VID_0002.MP4"]
    assert stranger["device_serial"] is None and "device_unknown" in stranger["flags"]
    listed = json.loads(cli("devices", "list", "--json").stdout)
    (device,) = [d for d in listed if d["serial"] == "TD00004"]
    assert device["officers"] == ["JX0555"] and device["label"] == "ZFY-04"
    assert device["recordings"] == 1 and device["bytes"] == known["size"]
    assert device["last_ingest"]["status"] == "ok" and device["last_docked"]
    assert "TD00004" in cli("devices", "list").stdout


def test_clear_after_verified_frees_a_writable_card_and_never_touches_a_read_only_one(
        dock, card: Path, tmp_path: Path, data_dir: Path):
    writable = dock.attach(dock.tmpfs_card("TA00716", card), "TA00716")
    read_only = dock.attach(dock.tmpfs_card("TB00002", card), "TB00002", "ro")
    before = tree_state(read_only)
    daemon = DaemonProcess(tmp_path, data_dir, [dock.root], extra='clear_after = "verified"\n')
    try:
        wait_for(lambda: "ingested=" in daemon.log() and daemon.log().count("ingest finished") == 2, 60,
                 "both ingests")
    finally:
        assert daemon.stop() == 0
    assert len(_recordings(data_dir)) == 6
    left = sorted(str(p.relative_to(writable)) for p in writable.rglob("*") if p.is_file())
    assert left == ["LOG/DEVICE.LOG", "SYSTEM/CONFIG.INI"]  # recordings freed, device files kept
    assert daemon.log().count("cleared from recorder") == 6
    assert tree_state(read_only) == before
    assert archive_problems(data_dir) == []


def test_sd_notify_ready_status_and_watchdog(tmp_path: Path, data_dir: Path):
    address = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(address))
    sock.settimeout(10)
    daemon = DaemonProcess(tmp_path, data_dir, [tmp_path / "none"],
                           env={"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "400000"})
    try:
        messages = []
        while not any("WATCHDOG=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
    finally:
        assert daemon.stop() == 0
        sock.close()
    assert messages[0].startswith("READY=1\nSTATUS=idle")


def test_simulated_recorders_film_their_own_bytes_and_one_spec_is_made_alike(tmp_path: Path):
    """Two recorders docked after the same shift must not look like copies of each other."""
    import hashlib

    from archiver.dock.simulate import RecorderSpec, make_recorder

    def digests(root: Path, spec: RecorderSpec) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in make_recorder(root, spec)]

    small = {"segments": 1, "segment_seconds": 1.0, "audio": 1, "photos": 1, "device_files": False}
    one = digests(tmp_path / "a", RecorderSpec(serial="TA00716", officer="JX0227", **small))
    two = digests(tmp_path / "b", RecorderSpec(serial="TA00555", officer="JX0555", **small))
    again = digests(tmp_path / "c", RecorderSpec(serial="TA00716", officer="JX0227", **small))
    assert len(one) == 3 and not set(one) & set(two)
    assert again == one
