"""Campaign launch jobs: freeze a campaign's audience and plan it in chunks, resumed after a crash."""

from __future__ import annotations

from herald.campaigns.launch import KIND, run_launch
from herald.jobs.runner import JobKind

CAMPAIGN_LAUNCH = JobKind(KIND, run_launch)
