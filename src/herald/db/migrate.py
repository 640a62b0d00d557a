"""Alembic driven from code: upgrade, current revision, and the 'is it migrated?' gate."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from herald.core.errors import DatabaseNotReadyError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: sa.Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def head_revision(engine: sa.Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_migrated(engine: sa.Engine) -> None:
    """Raise a clear error unless the database is at the newest migration."""
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        raise DatabaseNotReadyError(
            f"The database is at revision {current or 'none (empty)'} but this Herald needs {head}. "
            "Run `herald db upgrade` first.",
            current=current,
            head=head,
        )
