"""Every job kind this build runs, registered explicitly (journey steps come next)."""

from __future__ import annotations

from herald.jobs.backups import BACKUP
from herald.jobs.campaigns import CAMPAIGN_LAUNCH
from herald.jobs.imports import IMPORT
from herald.jobs.runner import JobKinds
from herald.jobs.scans import DUPLICATE_SCAN


def job_kinds() -> JobKinds:
    return JobKinds([IMPORT, DUPLICATE_SCAN, BACKUP, CAMPAIGN_LAUNCH])
