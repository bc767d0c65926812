"""Recorders the station knows: registration by volume label or UUID, identification, listing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from archiver.cases.links import link_recordings
from archiver.catalog import Catalog, Device, IngestRun, Recording
from archiver.catalog.db import commit
from archiver.errors import ArchiverError
from archiver.i18n import _


@dataclass(frozen=True)
class VolumeIds:
    label: str | None = None
    uuid: str | None = None


def register(catalog: Catalog, serial: str, label: str | None, uuid: str | None, officer: str | None,
             event: Callable[[Session], None] | None = None) -> Device:
    """Add a recorder, or update its label/UUID/officer. A label or UUID belongs to one recorder. `event`
    writes the custody event in that transaction."""
    if not (label or uuid):
        raise ArchiverError(_("give --label or --uuid: how else would the docked recorder be recognised?"))
    with catalog.session() as session:
        clash = session.scalar(select(Device).where(
            Device.serial != serial,
            or_(Device.label == label if label else False, Device.uuid == uuid if uuid else False)))
        if clash is not None:
            raise ArchiverError(_("that label or UUID is already registered to {serial}: use another, or update "
                                  "that device").format(serial=clash.serial))
        device = session.scalar(select(Device).where(Device.serial == serial))
        if device is None:
            device = Device(serial=serial)
            session.add(device)
        device.label = label or device.label
        device.uuid = uuid or device.uuid
        device.officer_no = officer or device.officer_no
        session.flush()
        # whom the device is issued to decides links for recordings without an officer match
        link_recordings(session, list(session.scalars(select(Recording.id).where(Recording.device_serial == serial))))
        if event is not None:
            event(session)
        commit(session)
        return device


def identify(catalog: Catalog, ids: VolumeIds) -> Device | None:
    """The registered recorder with this UUID (preferred) or label."""
    with catalog.session() as session:
        for column, value in ((Device.uuid, ids.uuid), (Device.label, ids.label)):
            if value:
                device = session.scalar(select(Device).where(column == value))
                if device is not None:
                    return device
    return None


def list_devices(catalog: Catalog, tz: Any) -> list[dict[str, Any]]:
    """Every known recorder with its officers, recordings, bytes, last docking and last ingest."""
    with catalog.reading() as session:
        devices = list(session.scalars(select(Device).order_by(Device.serial)))
        totals = dict((serial, (count, size)) for serial, count, size in session.execute(
            select(Recording.device_serial, func.count(), func.coalesce(func.sum(Recording.size), 0))
            .group_by(Recording.device_serial)))
        officers: dict[str, set[str]] = {}
        for serial, officer in session.execute(
                select(Recording.device_serial, Recording.officer_no).distinct()):
            if serial and officer:
                officers.setdefault(serial, set()).add(officer)
        result = []
        for d in devices:
            last = session.scalar(select(IngestRun).where(IngestRun.device_serial == d.serial)
                                  .order_by(IngestRun.id.desc()).limit(1))
            count, size = totals.get(d.serial, (0, 0))
            result.append({
                "serial": d.serial,
                "officers": sorted(officers.get(d.serial, set()) | ({d.officer_no} if d.officer_no else set())),
                "label": d.label,
                "uuid": d.uuid,
                "last_docked": d.last_docked.astimezone(tz).isoformat() if d.last_docked else None,
                "recordings": count,
                "bytes": int(size),
                "last_ingest": None if last is None else {
                    "run_id": last.id, "status": last.status, "ingested": last.ingested,
                    "already_archived": last.already_archived, "failed": last.failed,
                    "finished_at": last.finished_at.astimezone(tz).isoformat() if last.finished_at else None,
                },
            })
        return result
