"""Durable jobs: one row per unit of background work, claimed with a lease and a fencing token."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata
from herald.db.types import JSONType, UTCDateTime

ACTIVE = ("queued", "running")

jobs = sa.Table(
    "jobs",
    metadata,
    id_column(),
    sa.Column("kind", sa.String(64), nullable=False),  # import | duplicate_scan | backup | …
    sa.Column("status", sa.String(16), nullable=False),  # queued | running | done | failed
    sa.Column("payload", JSONType, nullable=False),
    # At most one queued or running job per key (a scheduled backup, one duplicate scan at a time).
    sa.Column("dedupe_key", sa.String(200)),
    sa.Column("progress_done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("progress_total", sa.BigInteger),
    sa.Column("result", JSONType),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # claims so far
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
    sa.Column("worker", sa.String(120)),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("lease_token", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("available_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Index("ix_jobs_status_available", "status", "available_at"),
    sa.Index(
        "uq_jobs_active_dedupe_key",
        "dedupe_key",
        unique=True,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
        sqlite_where=sa.text("status IN ('queued', 'running')"),
    ),
)
