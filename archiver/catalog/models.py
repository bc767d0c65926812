"""The catalog's tables: devices, ingest runs, recordings and where each recording was seen.

Portable SQLAlchemy 2 constructs only: the same models serve SQLite and PostgreSQL.
Times are stored in UTC and come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC (SQLite keeps no offsets)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; times must carry a timezone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    officer_no: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(128))
    uuid: Mapped[str | None] = mapped_column(String(128))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_docked: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IngestRun(Base):
    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    device_serial: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # running while it works; ok, partial (some files failed) or failed (the run stopped); interrupted: its
    # process ended first (killed, power lost), found so by the next start
    status: Mapped[str] = mapped_column(String(16), default="running")
    pid: Mapped[int | None] = mapped_column(Integer)  # the process running it (None: before schema 0010)
    files_seen: Mapped[int] = mapped_column(Integer, default=0)
    ingested: Mapped[int] = mapped_column(Integer, default=0)
    already_archived: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    bytes_copied: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_officer_start", "officer_no", "start"),
        Index("ix_recordings_device_start", "device_serial", "start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    sm3: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(8))
    original_path: Mapped[str] = mapped_column(Text)  # as on the device; bytes not valid UTF-8 escaped (\xff)
    original_path_bytes: Mapped[bytes | None] = mapped_column(LargeBinary)  # exactly, when it had to be escaped
    device_serial: Mapped[str | None] = mapped_column(String(64), index=True)
    officer_no: Mapped[str | None] = mapped_column(String(64), index=True)
    start: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    archive_path: Mapped[str] = mapped_column(Text, unique=True)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))
    retention_class: Mapped[str | None] = mapped_column(String(64))  # set by a person (recordings classify)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a tombstone: the file was purged
    purge_request_id: Mapped[int | None] = mapped_column(Integer)  # purge_requests.id
    # In a central catalog: the station whose archive holds the file (its archive_path is then
    # "<station>:<path>"); None in a station's own catalog.
    station: Mapped[str | None] = mapped_column(String(64), index=True)

    sightings: Mapped[list[Sighting]] = relationship(back_populates="recording", order_by="Sighting.id")


class Sighting(Base):
    """One time a recording was found on a recorder or in an inbox, under some path.

    (device_key, original_path, size, mtime_ns) lets a re-dock skip files already archived
    without reading them again.
    """

    __tablename__ = "sightings"
    __table_args__ = (Index("ix_sightings_key", "device_key", "original_path", "size", "mtime_ns"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))
    device_key: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    original_path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recording: Mapped[Recording] = relationship(back_populates="sightings")


class Case(Base):
    """An enforcement case (administrative penalty, inspection); its number is kept exactly."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_no: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retention_class: Mapped[str | None] = mapped_column(String(64))  # None: the evidence class
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: open (its footage is kept)
    party: Mapped[str | None] = mapped_column(Text)  # 当事人, as the register writes it
    kind: Mapped[str | None] = mapped_column(String(64))  # 案件类型, as written (处罚, 行政检查, 强制措施, ...)

    actions: Mapped[list[Action]] = relationship(back_populates="case", order_by="Action.start",
                                                 cascade="all, delete-orphan")


class Action(Base):
    """One step of a case (立案, 调查取证, 送达, ...) in a time window, by some officers."""

    __tablename__ = "actions"
    __table_args__ = (Index("ix_actions_link_window", "link_from", "link_to"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(100))
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    recording_required: Mapped[bool] = mapped_column(Boolean, default=True)
    # The window widened by linking.clock_tolerance_s: what recordings are matched against.
    link_from: Mapped[datetime] = mapped_column(UTCDateTime)
    link_to: Mapped[datetime] = mapped_column(UTCDateTime)
    # The earliest start of a recording that can reach into the window (link_from - the longest
    # recording considered): bounds the index range scanned when linking.
    scan_from: Mapped[datetime] = mapped_column(UTCDateTime)

    case: Mapped[Case] = relationship(back_populates="actions")
    officers: Mapped[list[ActionOfficer]] = relationship(cascade="all, delete-orphan",
                                                         order_by="ActionOfficer.officer_no")


class Person(Base):
    """One line of the personnel register: an officer's name, 执法证号, OS user and the recorders they carry."""

    __tablename__ = "people"

    officer_no: Mapped[str] = mapped_column(String(64), primary_key=True)  # 执法证号
    name: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str | None] = mapped_column(String(64))
    serials: Mapped[list[str]] = mapped_column(JSON, default=list)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActionOfficer(Base):
    __tablename__ = "action_officers"

    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), primary_key=True)
    officer_no: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ActionLink(Base):
    """A recording matched to an action automatically (officer + time). Derived: re-computed at will."""

    __tablename__ = "action_links"

    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), primary_key=True, index=True)


class CaseLink(Base):
    """A person's decision: this recording belongs to the case ('linked') or does not ('unlinked').

    Kept apart from the automatic links and never changed by re-linking.
    """

    __tablename__ = "case_links"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), primary_key=True, index=True)
    kind: Mapped[str] = mapped_column(String(8))
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustodyHead(Base):
    """The custody log's last sequence number and line hash, as the catalog last saw them.

    A log shorter than this, or with another line at this sequence number, has been cut or rewritten.
    """

    __tablename__ = "custody_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VerifyRun(Base):
    __tablename__ = "verify_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(Text)  # "all", "case ...", "since ...", with the budget
    checked: Mapped[int] = mapped_column(Integer, default=0)
    ok: Mapped[int] = mapped_column(Integer, default=0)
    remaining: Mapped[int] = mapped_column(Integer, default=0)  # files left for a later budgeted run
    problems: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)


class BackupObject(Base):
    """One encrypted object on one backup target: a recording, or a piece of a station snapshot."""

    __tablename__ = "backup_objects"
    __table_args__ = (Index("ix_backup_objects_target_recording", "target", "recording_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)  # path inside the target
    kind: Mapped[str] = mapped_column(String(16))  # recording, catalog, custody, station.key, station.pub
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"))
    plain_sha256: Mapped[str] = mapped_column(String(64))
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)  # ciphertext bytes
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # On an S3 target: the version written (what verify and restore read), its COMPLIANCE lock and legal hold.
    version_id: Mapped[str | None] = mapped_column(String(255))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    legal_hold: Mapped[bool | None] = mapped_column(Boolean)


class Hold(Base):
    """A legal hold on a case (all its recordings) or one recording: never purged while it stands."""

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(64))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_by: Mapped[str | None] = mapped_column(String(64))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lift_reason: Mapped[str | None] = mapped_column(Text)


class PurgeRequest(Base):
    """A two-person purge: requested by one person (admin), approved by another (auditor or legal),
    then carried out; `items` lists exactly the recordings due when it was requested."""

    __tablename__ = "purge_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    bytes: Mapped[int] = mapped_column(BigInteger)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))  # requested, approved, purging, done
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Station(Base):
    """A central catalog's station: its registered public key, and how far its custody log was applied."""

    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(128))  # ed25519:<base64>
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)  # the last event applied
    hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of that event's line (64 zeros before the first)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StationEvent(Base):
    """One custody event of a station, exactly as its line was, once checked and applied centrally."""

    __tablename__ = "station_events"

    station: Mapped[str] = mapped_column(ForeignKey("stations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(64))
    line: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StationRefusal(Base):
    """An event the centre refused (bad signature, gap, fork, malformed): kept for `stations check`."""

    __tablename__ = "station_refusals"
    __table_args__ = (Index("ix_station_refusals_station_seq", "station", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64))  # of the refused line: the same line refused again is one row
    line: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboxLine(Base):
    """A custody line a station handed in, not yet applied by the centre (who removes it once it has)."""

    __tablename__ = "station_inbox"
    __table_args__ = (UniqueConstraint("station", "hash", name="uq_station_inbox_line"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    station: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the line: the same line handed in twice is one row
    line: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the station's facts for an old ingest line
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StationLogin(Base):
    """The database login a station hands its lines in with (a centre on PostgreSQL)."""

    __tablename__ = "station_logins"

    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    station: Mapped[str] = mapped_column(ForeignKey("stations.id"), unique=True)


class Receipt(Base):
    """The centre's signed word that it holds a station's log up to (seq, hash) at `time`; kept at the centre
    for every station, and at a station for its own log."""

    __tablename__ = "receipts"
    __table_args__ = (Index("ix_receipts_station_seq", "station", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    receipt: Mapped[str] = mapped_column(Text)  # canonical JSON with the centre's key and signature


class SyncState(Base):
    """A station's view of its sync to the centre: the last sequence number the centre holds."""

    __tablename__ = "sync_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    central_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)  # the last attempt's failure; None when it went through
    error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
