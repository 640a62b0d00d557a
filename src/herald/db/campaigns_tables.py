"""The campaigns slice's tables: campaigns and the audience each one froze at launch."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata
from herald.db.types import JSONType, UTCDateTime

campaigns = sa.Table(
    "campaigns",
    metadata,
    id_column(),
    sa.Column("name", sa.String(200), nullable=False),
    # draft | launching | running | paused | cancelled | finished
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("template_id", sa.String(200), nullable=False),
    # Pinned: a campaign sends one version (the latest when created unless given; fixed at launch).
    sa.Column("template_version", sa.Integer),
    # No foreign key: segments live in their own slice's migration, which may be chained after this one.
    sa.Column("segment_id", sa.BigInteger, nullable=False),
    sa.Column("audience", JSONType),  # the segment's definition as frozen at launch
    sa.Column("channels", JSONType, nullable=False),  # the ordered channel plan
    sa.Column("message_class", sa.String(16), nullable=False),  # marketing | transactional | incident
    sa.Column("schedule", JSONType, nullable=False),  # {"kind": now|at|local_time, …} (campaigns/model.py)
    sa.Column("send_rate", sa.Integer),  # messages per minute; null: as fast as the worker goes
    sa.Column("job_id", sa.BigInteger),  # the launch job (the latest, after "send to newcomers")
    sa.Column("recipients", sa.BigInteger, nullable=False, server_default="0"),  # frozen audience size
    # Launch progress, moved in each chunk's transaction: the batch being planned (1 = the launch, then one per
    # "send to newcomers"), the last person planned in it and how many of the batch are planned.
    sa.Column("batch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("planned_through", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("planned_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("frozen_batch", sa.Integer, nullable=False, server_default="0"),  # the last batch whose set is frozen
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("launched_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
)

campaign_recipients = sa.Table(
    "campaign_recipients",
    metadata,
    sa.Column("campaign_id", sa.BigInteger, sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("person_id", sa.BigInteger, sa.ForeignKey("people.id"), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),  # launch | newcomers
    sa.Column("batch", sa.Integer, nullable=False),  # 1: frozen at launch; 2…: each "send to newcomers"
    sa.Column("added_at", UTCDateTime, nullable=False),
    # One row per person per campaign: the audience is a set, whatever the segment matched twice.
    sa.PrimaryKeyConstraint("campaign_id", "person_id"),
)
