"""Delivery tables: the per-person message ledger, its attempts, idempotency records, provider health, receipts."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata
from herald.db.types import JSONType, UTCDateTime

messages = sa.Table(
    "messages",
    metadata,
    id_column(),
    sa.Column("person_id", sa.BigInteger, sa.ForeignKey("people.id"), nullable=False, index=True),
    sa.Column("message_key", sa.String(255), nullable=False),
    sa.Column("message_class", sa.String(16), nullable=False),  # marketing | transactional | incident
    # held | queued | retry_wait | sending | unknown | sent | failed | delivered (ranked in delivery/ledger.py)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_rank", sa.SmallInteger, nullable=False),
    sa.Column("hold_reason", sa.String(300)),
    sa.Column("releasable", sa.Boolean, nullable=False, server_default=sa.false()),  # a hold that ends at available_at
    sa.Column("channels", JSONType, nullable=False),  # the ordered channel plan
    sa.Column("plan_index", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skips", JSONType, nullable=False),  # [{"channel", "reason", "at"}]
    sa.Column("addresses", JSONType, nullable=False),  # channel → recipient address
    sa.Column("content", JSONType, nullable=False),  # channel → rendered parts
    sa.Column("template_id", sa.String(200)),
    sa.Column("template_version", sa.Integer),
    # A row planned from a stored template keeps the person's variables, not rendered content: the worker
    # renders it at claim time (campaign launch writes 100,000 rows without rendering 100,000 bodies).
    sa.Column("variables", JSONType),
    sa.Column("campaign_id", sa.BigInteger, index=True),  # the campaign that planned it (none for API sends)
    sa.Column("zones", JSONType, nullable=False),
    sa.Column("zone_source", sa.String(32), nullable=False),
    # What quiet hours applied, in words: the zone read (and its source) and the window, or "exempt: <class>".
    sa.Column("quiet_zone", sa.String(200)),
    sa.Column("quiet_window", sa.String(200)),
    sa.Column("available_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("lease_token", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("worker", sa.String(120)),
    sa.Column("claims", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retries", sa.Integer, nullable=False, server_default="0"),  # transient failures on this channel
    sa.Column("current_attempt_id", sa.BigInteger),
    sa.Column("provider", sa.String(64)),
    sa.Column("provider_message_id", sa.String(200)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("delivered_at", UTCDateTime),
    # The constraint, not a lookup, is what makes a second copy for the same person impossible.
    sa.UniqueConstraint("person_id", "message_key"),
    sa.Index("ix_messages_due", "status", "available_at"),
)

message_attempts = sa.Table(
    "message_attempts",
    metadata,
    id_column(),
    sa.Column("message_id", sa.BigInteger, sa.ForeignKey("messages.id"), nullable=False, index=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("reference", sa.String(64), nullable=False, unique=True),  # ours, sent to the provider
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    # submitting | unknown | resend | retry | sent_unconfirmed | sent | delivered | failed | rejected
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_rank", sa.SmallInteger, nullable=False),
    sa.Column("lease_token", sa.BigInteger, nullable=False),
    sa.Column("resubmissions", sa.Integer, nullable=False, server_default="0"),
    # The worker (host:pid:…) that last submitted it: its wire-marks file says whether the final "." left.
    sa.Column("worker", sa.String(120)),
    sa.Column("provider_message_id", sa.String(200), index=True),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("note", sa.String(200)),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("message_id", "number"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    id_column(),
    sa.Column("principal", sa.String(64), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", JSONType, nullable=False),
    sa.Column("message_id", sa.BigInteger, sa.ForeignKey("messages.id"), index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("principal", "key"),
)

provider_health = sa.Table(
    "provider_health",
    metadata,
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # closed | open | half_open
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("opened_at", UTCDateTime),
    sa.Column("open_until", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

provider_events = sa.Table(
    "provider_events",
    metadata,
    id_column(),
    sa.Column("dedup_key", sa.String(300), nullable=False, unique=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("provider_message_id", sa.String(200)),
    sa.Column("reference", sa.String(64), index=True),
    sa.Column("attempt_id", sa.BigInteger, sa.ForeignKey("message_attempts.id"), index=True),
    sa.Column("error_code", sa.String(64)),
    sa.Column("occurred_at", UTCDateTime),
    sa.Column("received_at", UTCDateTime, nullable=False),
)

# One row per running worker process, touched every pass: lets `herald messages send` say honestly whether
# anything will pick the message up.
worker_heartbeats = sa.Table(
    "worker_heartbeats",
    metadata,
    sa.Column("worker", sa.String(120), primary_key=True),  # host:pid
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),
)
