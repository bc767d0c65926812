"""The catalog: SQLAlchemy models, sessions, queries; schema managed by Alembic."""

from archiver.catalog.db import Catalog
from archiver.catalog.models import Device, IngestRun, Recording, Sighting

__all__ = ["Catalog", "Device", "IngestRun", "Recording", "Sighting"]
