"""The complete schema: import every module that defines tables on the shared metadata."""

from __future__ import annotations

from herald.db import (
    apikeys_tables,  # noqa: F401
    auth_tables,  # noqa: F401
    backup_tables,  # noqa: F401
    campaigns_tables,  # noqa: F401
    consent_tables,  # noqa: F401
    contacts_tables,  # noqa: F401
    delivery_tables,  # noqa: F401
    event_tables,  # noqa: F401
    job_tables,  # noqa: F401
    segments_tables,  # noqa: F401
    tables,
    templates_tables,  # noqa: F401
)
from herald.db.tables import metadata

# Each slice keeps its tables in its own `<slice>_tables` module, which only that slice may import
# (the import-linter contracts in pyproject.toml). A new table module adds an import here, so that
# Alembic and backups see every table.
__all__ = ["metadata", "tables"]
