"""The catalog: SQLAlchemy models, sessions, queries; schema managed by Alembic."""

from archiver.catalog.db import Catalog
from archiver.catalog.models import (
    Action,
    ActionLink,
    ActionOfficer,
    BackupObject,
    Case,
    CaseLink,
    CustodyHead,
    Device,
    Hold,
    InboxLine,
    IngestRun,
    Person,
    PurgeRequest,
    Receipt,
    Recording,
    Sighting,
    Station,
    StationEvent,
    StationLogin,
    StationRefusal,
    SyncState,
    VerifyRun,
)

__all__ = ["Action", "ActionLink", "ActionOfficer", "BackupObject", "Case", "CaseLink", "Catalog", "CustodyHead",
           "Device", "Hold", "InboxLine", "IngestRun", "Person", "PurgeRequest", "Receipt", "Recording",
           "Sighting", "Station", "StationEvent", "StationLogin", "StationRefusal", "SyncState", "VerifyRun"]
