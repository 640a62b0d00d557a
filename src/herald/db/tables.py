"""The shared metadata, key helpers and the kernel's own table; each slice keeps its tables in `<slice>_tables`."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.types import BigId, UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def id_column() -> sa.Column[int]:
    """The surrogate key every table uses (BIGINT identity; INTEGER PRIMARY KEY on SQLite)."""
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def ref_column(name: str, target: str, *, nullable: bool = False, index: bool = True) -> sa.Column[int]:
    """A foreign key to `target.id` (by table name, so slices' table modules need not import each other)."""
    return sa.Column(name, sa.BigInteger, sa.ForeignKey(f"{target}.id"), nullable=nullable, index=index)


instance_secrets = sa.Table(
    "instance_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
