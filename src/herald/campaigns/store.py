"""Rows of the campaigns tables in and out: the only module of the slice that writes `campaigns` itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from herald.campaigns.model import Campaign, CampaignNotFoundError, CampaignStatus, parse_schedule
from herald.db.campaigns_tables import campaign_recipients, campaigns

__all__ = ["campaign_recipients", "campaigns"]


def to_campaign(row: Mapping[str, Any] | sa.RowMapping) -> Campaign:
    return Campaign(
        id=int(row["id"]),
        name=row["name"],
        status=CampaignStatus(row["status"]),
        template_id=row["template_id"],
        template_version=row["template_version"],
        segment_id=int(row["segment_id"]),
        channels=tuple(row["channels"]),
        message_class=row["message_class"],
        schedule=parse_schedule(row["schedule"]),
        send_rate=row["send_rate"],
        job_id=row["job_id"],
        recipients=int(row["recipients"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        launched_at=row["launched_at"],
        finished_at=row["finished_at"],
        audience=row["audience"],
    )


def load_row(conn: sa.Connection, campaign_id: int, *, lock: bool = False) -> dict[str, Any]:
    query = sa.select(campaigns).where(campaigns.c.id == campaign_id)
    if lock:
        # PostgreSQL: controls and the launch job's chunks serialise on the campaign row (SQLite: BEGIN IMMEDIATE).
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise CampaignNotFoundError(f"No campaign {campaign_id}.", id=campaign_id)
    return dict(row)


def load(conn: sa.Connection, campaign_id: int, *, lock: bool = False) -> Campaign:
    return to_campaign(load_row(conn, campaign_id, lock=lock))


def insert(conn: sa.Connection, values: Mapping[str, Any]) -> int:
    new_id = conn.execute(campaigns.insert().values(dict(values)).returning(campaigns.c.id)).scalar_one()
    return int(new_id)


def update(conn: sa.Connection, campaign_id: int, values: Mapping[str, Any], now: dt.datetime) -> None:
    conn.execute(sa.update(campaigns).where(campaigns.c.id == campaign_id).values({**values, "updated_at": now}))


def set_status(conn: sa.Connection, campaign_id: int, status: CampaignStatus, now: dt.datetime, **values: Any) -> None:
    update(conn, campaign_id, {"status": status.value, **values}, now)


def list_rows(conn: sa.Connection, *, status: str | None, limit: int, offset: int) -> list[Campaign]:
    query = sa.select(campaigns).order_by(campaigns.c.id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(campaigns.c.status == status)
    return [to_campaign(r) for r in conn.execute(query).mappings()]


def ids_with_status(conn: sa.Connection, status: CampaignStatus) -> list[int]:
    query = sa.select(campaigns.c.id).where(campaigns.c.status == status.value).order_by(campaigns.c.id)
    return [int(i) for i in conn.execute(query).scalars()]


def using_segment(conn: sa.Connection, segment_id: int) -> list[tuple[int, str]]:
    """(id, name) of the campaigns that refer to the segment, whatever their status."""
    query = sa.select(campaigns.c.id, campaigns.c.name).where(campaigns.c.segment_id == segment_id)
    return [(int(i), str(n)) for i, n in conn.execute(query.order_by(campaigns.c.id))]


def count_rows(conn: sa.Connection, *, status: str | None) -> int:
    query = sa.select(sa.func.count()).select_from(campaigns)
    if status is not None:
        query = query.where(campaigns.c.status == status)
    return int(conn.execute(query).scalar_one())
