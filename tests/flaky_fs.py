"""A disk that flips bits on the way back: a FUSE passthrough of a folder whose reads at one offset come back
with their first byte flipped, as a failing disk or cable would return them.

    python flaky_fs.py BACKING MOUNTPOINT CONTROL

CONTROL is a file outside the mount holding `off`, `once` (the next read at the offset is flipped, then
`off`) or `always`, and the offset: `always 2097152`. It is read at every read, so a test changes the disk's
mood while it is mounted. Writes always reach BACKING intact: only what is read back lies. O_DIRECT is
taken (the kernel sends those reads here, past its page cache) and served from BACKING's page cache.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from mfusepy import FUSE, Operations


class FlakyDisk(Operations):
    use_ns = True  # times in nanoseconds, as os.utime takes them

    def __init__(self, backing: Path, control: Path) -> None:
        self.backing, self.control = backing, control
        self._lock = threading.Lock()

    def _path(self, path: str) -> str:
        return str(self.backing) + path

    # -- the lie ------------------------------------------------------------------------------
    def read(self, path, size, offset, fh):
        data = os.pread(fh, size, offset)
        with self._lock:
            mood, _, at = self.control.read_text().strip().partition(" ")
            if mood in ("once", "always") and data and offset == int(at):
                data = bytes([data[0] ^ 0x01]) + data[1:]
                if mood == "once":
                    self.control.write_text("off")
        return data

    # -- the rest passes through ----------------------------------------------------------------
    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        facts = {key: getattr(st, key) for key in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino",
                                                   "st_blocks")}
        return facts | {key: getattr(st, f"{key}_ns") for key in ("st_atime", "st_mtime", "st_ctime")}

    def readdir(self, path, fh):
        return [".", "..", *os.listdir(self._path(path))]

    def open(self, path, flags):
        return os.open(self._path(path), flags & ~os.O_DIRECT)

    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        os.truncate(self._path(path), length)
        return 0

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fsync(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        fd = os.open(self._path(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0

    def mkdir(self, path, mode):
        os.mkdir(self._path(path), mode)
        return 0

    def rmdir(self, path):
        os.rmdir(self._path(path))
        return 0

    def unlink(self, path):
        os.unlink(self._path(path))
        return 0

    def link(self, target, source):
        os.link(self._path(source), self._path(target))
        return 0

    def rename(self, old, new):
        os.rename(self._path(old), self._path(new))
        return 0

    def chmod(self, path, mode):
        os.chmod(self._path(path), mode)
        return 0

    def chown(self, path, uid, gid):
        os.chown(self._path(path), uid, gid)
        return 0

    def utimens(self, path, times=None):
        os.utime(self._path(path), ns=times)
        return 0

    def readlink(self, path):
        return os.readlink(self._path(path))

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        return {key: getattr(st, key) for key in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                  "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}


def main() -> None:
    backing, mountpoint, control = (Path(a) for a in sys.argv[1:4])
    FUSE(FlakyDisk(backing, control), str(mountpoint), foreground=True)


if __name__ == "__main__":
    main()
