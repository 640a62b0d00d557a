"""The coverage report of a campaign's template over its segment: who lacks which variable, and what then."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.campaigns import audience, store
from herald.campaigns.launch import CHUNK
from herald.campaigns.model import CampaignStatus
from herald.db.engine import read_connection
from herald.db.runtime import Runtime
from herald.delivery import bulk_plan
from herald.delivery.planner import Content, template_needs, template_values
from herald.templates.checks import coverage_report
from herald.templates.store import load_template


@dataclass(frozen=True, slots=True)
class VariableCoverage:
    variable: str
    required: bool  # read unconditionally (missing ⇒ fallback or hold)
    fallback: str | None  # the declared fallback, if any
    missing: int  # people lacking it with no fallback: held
    fallback_used: int  # people lacking it who get the fallback

    def line(self, total: int) -> str:
        """E.g. "first_name missing for 1,240 (12 %) → held"."""
        if self.missing:
            return f"{self.variable} missing for {self.missing:,} ({_percent(self.missing, total)}) → held"
        if self.fallback_used:
            return (
                f"{self.variable} missing for {self.fallback_used:,} ({_percent(self.fallback_used, total)})"
                f" → fallback {self.fallback!r}"
            )
        return f"{self.variable}: everyone has it"


def _percent(part: int, total: int) -> str:
    return f"{round(100 * part / total) if total else 0} %"


@dataclass(frozen=True, slots=True)
class Coverage:
    campaign_id: int
    template_id: str
    template_version: int
    channels: tuple[str, ...]
    total: int  # people in the segment (now)
    held: int  # people who would be held for a missing variable
    variables: tuple[VariableCoverage, ...] = ()
    examples: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # variable → a few person ids lacking it

    @property
    def lines(self) -> list[str]:
        return [v.line(self.total) for v in self.variables]

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "template_id": self.template_id,
            "template_version": self.template_version,
            "channels": list(self.channels),
            "total": self.total,
            "held": self.held,
            "variables": [
                {
                    "variable": v.variable,
                    "required": v.required,
                    "fallback": v.fallback,
                    "missing": v.missing,
                    "fallback_used": v.fallback_used,
                    "line": v.line(self.total),
                }
                for v in self.variables
            ],
            "examples": {k: list(v) for k, v in self.examples.items()},
        }


EXAMPLES = 5


def campaign_coverage(runtime: Runtime, campaign_id: int) -> Coverage:
    """Run the template's variable checks over the audience (the segment now for a draft, the frozen set after
    launch) in chunks, without rendering: per variable who lacks it, and whether they get a fallback or wait."""
    now = runtime.clock.now()
    with read_connection(runtime.engine) as conn:
        campaign = store.load(conn, campaign_id)
        template = load_template(conn, campaign.template_id, campaign.template_version)
        needs = template_needs(campaign.channels, Content(template=template))
        frozen = campaign.status != CampaignStatus.DRAFT
        definition = campaign.audience if frozen else audience.segment_definition(conn, campaign.segment_id)
        assert definition is not None
        total = held = 0
        missing: Counter[str] = Counter()
        fallback: Counter[str] = Counter()
        examples: dict[str, list[int]] = {}
        offset = 0
        while needs is not None:
            ids = (
                audience.frozen_page(conn, campaign_id, offset=offset, limit=CHUNK)
                if frozen
                else audience.live_page(conn, definition, now, offset=offset, limit=CHUNK)
            )
            if not ids:
                break
            offset += len(ids)
            recipients = bulk_plan.load_recipients(conn, ids)
            report = coverage_report(needs, ((str(pid), template_values(r, {})) for pid, r in recipients.items()))
            total += report.total
            held += report.held
            missing.update(report.missing_counts)
            fallback.update(report.fallback_counts)
            for person, paths in report.missing_by_contact.items():
                for path in paths:
                    found = examples.setdefault(path, [])
                    if len(found) < EXAMPLES:
                        found.append(int(person))
    variables = (
        tuple(
            VariableCoverage(
                variable=path,
                required=path in needs.required,
                fallback=needs.fallbacks.get(path),
                missing=missing.get(path, 0),
                fallback_used=fallback.get(path, 0),
            )
            for path in sorted(needs.variables)
        )
        if needs is not None
        else ()
    )
    return Coverage(
        campaign_id=campaign_id,
        template_id=template.id,
        template_version=template.version,
        channels=campaign.channels,
        total=total,
        held=held,
        variables=variables,
        examples={k: tuple(v) for k, v in examples.items()},
    )
