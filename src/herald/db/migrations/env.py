"""Alembic environment: runs against the Engine handed over in config attributes."""

from __future__ import annotations

from alembic import context

from herald.db.engine import create_db_engine
from herald.db.schema import metadata

config = context.config
engine = config.attributes.get("engine") or create_db_engine(config.get_main_option("sqlalchemy.url") or "")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
