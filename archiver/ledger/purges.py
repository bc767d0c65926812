"""What the custody log proves about each purge, read line by line as `check_log` reads it.

A `purge` event is proven only by the lines before it: a `purge_request` listing that recording's SHA-256,
then a `purge_approve` of that request by a different person, no `purge_done` or `purge_expired` of the
request yet (a request is used once), and no hold standing on the recording (`hold_add` without its
`hold_remove`). A `backup_drop_purged` event (objects taken off a disk target or deleted from S3) is proven
only for recordings whose purge was. Whoever signed the event, anything else is `custody_unapproved_purge`:
the key alone does not make a purge lawful, two people do. Memory: the SHA-256 lists of the requests, the
holds standing, and the recordings purged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archiver.i18n import _


@dataclass
class _Request:
    requester: str
    items: set[str]
    approver: str | None = None
    closed: int | None = None  # the seq of its purge_done or purge_expired


@dataclass
class PurgeProof:
    requests: dict[int, _Request] = field(default_factory=dict)
    holds: dict[str, set[int]] = field(default_factory=dict)  # sha256 -> holds standing on that recording
    purged: set[str] = field(default_factory=set)  # sha256 of the recordings whose purge was proven
    problems: list[tuple[int, str]] = field(default_factory=list)  # (seq, detail)

    def see(self, seq: int, event: dict[str, Any], who: str) -> None:
        """One line of the log, signed by the station; `who`: the user it names."""
        action, subject, details = event.get("action"), event.get("subject"), event.get("details")
        if not isinstance(subject, dict) or not isinstance(details, dict):
            return
        if action == "purge_request" and isinstance(subject.get("request"), int):
            items = details.get("items") if isinstance(details.get("items"), list) else []
            self.requests[subject["request"]] = _Request(who, {str(i.get("sha256")) for i in items
                                                               if isinstance(i, dict)})
        elif action == "purge_approve":
            request = self.requests.get(subject.get("request"))  # type: ignore[arg-type]
            if request is not None and who != request.requester:
                request.approver = who
        elif action in ("purge_done", "purge_expired"):
            request = self.requests.get(subject.get("request"))  # type: ignore[arg-type]
            if request is not None and request.closed is None:
                request.closed = seq
        elif action == "hold_add" and "sha256" in subject:
            self.holds.setdefault(str(subject["sha256"]), set()).add(details.get("hold"))  # type: ignore[arg-type]
        elif action == "hold_remove" and "sha256" in subject:
            self.holds.get(str(subject["sha256"]), set()).discard(details.get("hold"))  # type: ignore[arg-type]
        elif action == "purge":
            self._check(seq, str(subject.get("sha256")), details)
        elif action == "backup_drop_purged":
            objects = details.get("objects") if isinstance(details.get("objects"), list) else []
            for item in objects:
                sha256 = str(item.get("plain_sha256")) if isinstance(item, dict) else "?"
                if sha256 not in self.purged:
                    self.problems.append((seq, _("the backup object {name} ({sha256}) was taken off {target} "
                                                 "without a proven purge of its recording").format(
                                                 name=item.get("object") if isinstance(item, dict) else "?",
                                                 sha256=sha256, target=subject.get("target"))))

    def _check(self, seq: int, sha256: str, details: dict[str, Any]) -> None:
        number = details.get("request")
        request = self.requests.get(number) if isinstance(number, int) else None
        what = _("the purge of {sha256} ({path})").format(sha256=sha256, path=details.get("archive_path", "?"))
        if request is None:
            why = _("no purge request {id} came before it").format(id=number)
        elif sha256 not in request.items:
            why = _("purge request {id} does not list it").format(id=number)
        elif request.approver is None:
            why = _("purge request {id} was not approved by a second person before it").format(id=number)
        elif request.closed is not None:
            why = _("purge request {id} was used up at seq {seq}: a request is used once").format(
                id=number, seq=request.closed)
        elif self.holds.get(sha256):
            why = _("the recording was held (hold {holds}) at the time").format(
                holds=", ".join(str(h) for h in sorted(self.holds[sha256], key=str)))
        else:
            self.purged.add(sha256)
            return
        self.problems.append((seq, f"{what}: {why}"))

