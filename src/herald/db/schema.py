"""The complete schema: import every module that defines tables on the shared metadata."""

from __future__ import annotations

from herald.db import (
    auth_tables,  # noqa: F401
    delivery_tables,  # noqa: F401
    event_tables,  # noqa: F401
    job_tables,  # noqa: F401
    tables,
)
from herald.db.tables import metadata

# Slices that keep their tables in their own module add an import here, so that Alembic and
# backups see every table (e.g. `from herald.db import auth_tables`).
__all__ = ["metadata", "tables"]
