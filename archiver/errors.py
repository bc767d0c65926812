"""One error hierarchy. Each class carries its exit code; the CLI prints `Error: <message>`.

Errors that stop a command derive from ArchiverError. Problems with a single file during
an ingest derive from FileProblem: they are reported per file and do not stop the run.
"""

from __future__ import annotations

import errno
import os

from archiver.i18n import _


class ArchiverError(Exception):
    """A command cannot go on. The message says what happened and what to do, in one line."""

    exit_code = 2


class ConfigError(ArchiverError):
    """The configuration is invalid (unknown key, bad value, unreadable file)."""


class DataDirError(ArchiverError):
    """The data directory is missing, unwritable or not initialised."""


class SourceError(ArchiverError):
    """The folder to ingest is missing or unreadable."""


class NotFoundError(ArchiverError):
    """A reference (recording id, hash prefix) matches nothing, or more than one thing."""


class ArchiveStorageError(ArchiverError):
    """Writing to the archive failed (disk full, I/O error): the run stops, the catalog stays consistent."""

    exit_code = 3


class ArchiveFullError(ArchiveStorageError):
    """The archive disk is full."""


class BackupTargetError(ArchiveStorageError):
    """A backup target is missing, full or failing; what was written before stays recorded."""


class UnsafePathError(ArchiveStorageError):
    """A symlink, or something other than a folder or file, where the archiver reads or writes its own
    files: planted by someone. Nothing is followed; the command stops."""


class BackupError(ArchiverError):
    """Backups cannot run as configured (no recipients, a private key in the config, no targets)."""


class InsecureError(ArchiverError):
    """A data dir, key, config or recipients file that others could change (or a private key others
    could read): refused until its owner and mode are fixed."""


class RefusedError(ArchiverError):
    """The caller's role does not allow this command, or this recording or case (an officer's own only).
    The station service records every refusal as a `denied` custody event."""

    exit_code = 4


class ServiceError(ArchiverError):
    """The station service cannot be reached, or cannot serve (its socket taken, a broken answer)."""

    exit_code = 3


class CentralError(ArchiverError):
    """The central catalog cannot be reached or does not answer: the station goes on working on its own,
    and the next sync ships what waited."""

    exit_code = 3


class InternalError(ArchiverError):
    """An exception outside this hierarchy: a bug. The traceback goes to the log, not to the user."""

    exit_code = 70  # EX_SOFTWARE (sysexits.h): never 1, which means "the command found problems"


class FileProblem(Exception):
    """One file could not be archived; the ingest goes on with the others."""


class SourceChangedError(FileProblem):
    """The source file changed (size or mtime) while it was being copied."""


class SourceReadError(FileProblem):
    """Reading the source file failed (recorder removed, I/O error, permission)."""


class VerifyError(FileProblem):
    """The archived copy read back differs from what was read off the recorder."""


def _mount_point(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.ismount(current):
        current = os.path.dirname(current)
    return current


def storage_error(exc: OSError, where: str) -> ArchiveStorageError:
    """Turn an OSError raised while writing the archive into the matching ArchiverError."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ArchiveFullError(
            _("archive disk full: the filesystem at {mount_point} has no space left (writing {where}); free "
              "space or move data_dir, then run the ingest again: files already archived stay archived").format(
              mount_point=_mount_point(where), where=where)
        )
    return ArchiveStorageError(_("cannot write to the archive at {where}: {value}").format(
                                 where=where, value=exc.strerror or exc))
