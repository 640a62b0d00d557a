"""The coverage report of a campaign's template over its segment: who lacks which variable, and what then."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.db.runtime import Runtime


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


def campaign_coverage(runtime: Runtime, campaign_id: int) -> Coverage:
    raise NotImplementedError
