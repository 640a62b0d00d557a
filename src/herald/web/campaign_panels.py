"""What the campaign pages show: status badges, the progress panel, the simulation totals, the controls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.campaigns.service import Progress, SimulationPage
from herald.delivery.reasons import REASON_KINDS

CHANNEL_LABELS = {"email": "E-mail", "sms": "SMS", "whatsapp": "WhatsApp", "voice": "Voice"}
# The ledger statuses the progress panel always shows, in the order a message moves through them.
PROGRESS_STATUSES = (
    ("queued", "Queued"),
    ("sending", "Sending"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("sent_unconfirmed", "Sent, unconfirmed"),
    ("held", "Held"),
    ("failed", "Failed"),
)
WAITING = ("planned", "queued", "retry_wait", "sending", "unknown")  # rows the worker will still move
SENT = ("sent", "delivered", "sent_unconfirmed")
STATUS_BADGES = {
    "draft": "badge",
    "launching": "badge-info",
    "running": "badge-info",
    "paused": "badge-warn",
    "cancelled": "badge-danger",
    "finished": "badge-ok",
}
OUTCOME_LABELS = {"send": "Sent", "hold": "Held", "skip": "Skipped", "duplicate": "Already has it"}
# action → (its button, what the confirmation asks, what the notice says after)
CONTROLS: Mapping[str, tuple[str, str, str]] = {
    "pause": ("Pause", "Pause this campaign? Messages not yet taken by a worker wait until you resume.", "Paused"),
    "resume": ("Resume", "Resume this campaign? Paused messages go out again, each person still once.", "Resumed"),
    "retry-failed": (
        "Retry failed",
        "Retry the failed messages that no provider accepted? Nobody gets a second copy.",
        "Queued again",
    ),
    "newcomers": (
        "Send to newcomers",
        "Send to people who joined the segment since launch? Each person still gets it once.",
        "Planning newcomers",
    ),
    "cancel": (
        "Cancel campaign",
        "Cancel this campaign for good? Nothing more is sent; this cannot be undone.",
        "Cancelled",
    ),
}


def badge(status: str) -> str:
    return STATUS_BADGES.get(status, "badge-info")


def _counts(counts: Mapping[str, int], labels: Mapping[str, str]) -> list[tuple[str, str, int]]:
    """(label, key, count) for the non-zero counts, largest first."""
    return sorted(((labels.get(k, k), k, n) for k, n in counts.items() if n), key=lambda item: (-item[2], item[0]))


def progress_panel(progress: Progress) -> dict[str, Any]:
    """The progress panel's numbers: tiles per status, a bar of settled rows, reasons in words, channels."""
    by_status = dict(progress.by_status)
    waiting = sum(by_status.get(s, 0) for s in WAITING)
    settled = max(0, progress.planned - waiting)
    recipients = max(progress.recipients, progress.planned)
    shown = {key for key, _ in PROGRESS_STATUSES}
    empty = 100 if progress.done else 0  # an audience of nobody is done at once
    percent = settled * 100 // recipients if recipients else empty
    return {
        "raw": progress,
        "tiles": [(key, label, by_status.get(key, 0)) for key, label in PROGRESS_STATUSES],
        "other": sorted((k, v) for k, v in by_status.items() if k not in shown and v),
        "planned": progress.planned,
        "recipients": recipients,
        "settled": settled,
        "sent": sum(by_status.get(s, 0) for s in SENT),
        "percent": percent,
        "reasons": _counts(progress.by_reason, REASON_KINDS),
        "channels": _counts(progress.by_channel, CHANNEL_LABELS),
        "done": progress.done,
        "job": progress.job,
    }


def polling(campaign_status: str, panel: Mapping[str, Any]) -> bool:
    """Poll while something will still move by itself: a launch planning, or messages on their way."""
    return campaign_status == "launching" or (campaign_status in ("running", "paused") and not panel["done"])


def simulation_panel(page: SimulationPage) -> dict[str, Any]:
    return {
        "raw": page,
        "outcomes": [(OUTCOME_LABELS.get(k, k), k, n) for k, n in page.by_outcome.items() if n],
        "reasons": _counts(page.by_reason, REASON_KINDS),
        "channels": _counts(page.by_channel, CHANNEL_LABELS),
        "last_page": max(1, -(-page.total // page.per_page)),
    }


def controls(status: str, panel: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The buttons a campaign in this state offers (the service refuses the rest anyway)."""
    actions: list[str] = []
    if status in ("launching", "running"):
        actions.append("pause")
    elif status == "paused":
        actions.append("resume")
    if status in ("running", "paused", "finished") and panel is not None:
        if panel["raw"].by_status.get("failed", 0):
            actions.append("retry-failed")
        actions.append("newcomers")
    if status in ("launching", "running", "paused"):
        actions.append("cancel")  # last: the one that cannot be undone sits apart
    return [{"action": a, "label": CONTROLS[a][0], "confirm": CONTROLS[a][1]} for a in actions]


def notice(done: str, changed: int | None) -> str | None:
    """The line shown after an action redirected back to the campaign page."""
    if done == "saved":
        return "The draft is saved."
    if done == "launched":
        return "Launched: the audience is frozen and being planned."
    if done in CONTROLS:
        after = CONTROLS[done][2]
        return f"{after}." if changed is None else f"{after}: {changed:,} message{'' if changed == 1 else 's'}."
    return None
