"""Storage: one schema and one code path for SQLite and PostgreSQL."""
