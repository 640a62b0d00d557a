"""Durable jobs: background work (imports, duplicate scans, backups) that survives a crashed worker."""
