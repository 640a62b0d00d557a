"""Backups: consistent, versioned backup files, verified restore, and scheduled backups."""
