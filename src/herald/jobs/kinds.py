"""Every job kind this build runs, registered explicitly (campaign launches and journey steps come next)."""

from __future__ import annotations

from herald.jobs.backups import BACKUP
from herald.jobs.imports import IMPORT
from herald.jobs.runner import JobKinds
from herald.jobs.scans import DUPLICATE_SCAN


def job_kinds() -> JobKinds:
    return JobKinds([IMPORT, DUPLICATE_SCAN, BACKUP])
