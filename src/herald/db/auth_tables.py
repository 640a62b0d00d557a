"""Tables of the auth slice: operator accounts, recovery codes, web sessions, throttles, audit log."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata
from herald.db.types import JSONType, UTCDateTime

users = sa.Table(
    "users",
    metadata,
    id_column(),
    sa.Column("email", sa.String(320), nullable=False, unique=True),  # stored lower-cased
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # admin | marketer | agent
    sa.Column("totp_secret", sa.String(64)),  # base32; set only once enrolment is confirmed
    sa.Column("totp_enrolled_at", UTCDateTime),
    # The newest RFC 6238 step accepted; only a strictly greater step may sign in (one use per code).
    sa.Column("totp_last_step", sa.BigInteger),
    sa.Column("totp_required", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("totp_relaxed_reason", sa.Text),
    sa.Column("totp_relaxed_by", sa.BigInteger),
    sa.Column("totp_relaxed_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("password_changed_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("role IN ('admin', 'marketer', 'agent')", name="role"),
)

user_recovery_codes = sa.Table(
    "user_recovery_codes",
    metadata,
    id_column(),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
)

auth_sessions = sa.Table(
    "auth_sessions",
    metadata,
    id_column(),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), index=True),
    sa.Column("stage", sa.String(16), nullable=False),  # anonymous | second_factor | enrol | full
    sa.Column("pending_totp_secret", sa.String(64)),  # the secret offered during enrolment
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(300)),
)

auth_throttle = sa.Table(
    "auth_throttle",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),  # "account:<email>" | "ip:<address>"
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_failure_at", UTCDateTime, nullable=False),
    sa.Column("last_failure_at", UTCDateTime, nullable=False),
    sa.Column("locked_until", UTCDateTime),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    id_column(),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    # Actor and target are copied as text too, so the log still reads right if an account changes.
    sa.Column("actor_id", sa.BigInteger),
    sa.Column("actor", sa.String(320)),
    # Whose id actor_id is: an operator's, an API key's, or none (cli, system).
    sa.Column("actor_kind", sa.String(16)),
    sa.Column("target_id", sa.BigInteger),
    sa.Column("target", sa.String(320)),
    sa.Column("ip", sa.String(64)),
    sa.Column("details", JSONType, nullable=False),
)
