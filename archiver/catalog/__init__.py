"""The catalog: SQLAlchemy models, sessions, queries; schema managed by Alembic."""

from archiver.catalog.db import Catalog
from archiver.catalog.models import (
           Action,
           ActionLink,
           ActionOfficer,
           Case,
           CaseLink,
           Device,
           IngestRun,
           Recording,
           Sighting,
)

__all__ = ["Action", "ActionLink", "ActionOfficer", "Case", "CaseLink", "Catalog", "Device", "IngestRun", "Recording",
           "Sighting"]
