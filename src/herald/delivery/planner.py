"""The planner: pure rules applied before anything is queued (consent, content, caps, quiet hours)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from herald.consent.policy import ConsentEvent, suppression_reason
from herald.core.channels import CONSENT_CHANNELS, PARTS, REQUIRED, MessageClass
from herald.core.channels import consent_purpose as consent_purpose  # the worker reads it from here
from herald.schedule.caps import CapRule, SendRecord, check_caps
from herald.schedule.local_time import local_instant
from herald.schedule.quiet_hours import (
    QuietHoursApplied,
    QuietHoursDecision,
    QuietHoursPolicy,
    decide_send_time,
    describe_decision,
)
from herald.schedule.timezones import ZoneResolution, ZoneSource, country_zones, is_known_zone, load_zone, resolve_zone
from herald.templates.checks import TemplateNeeds, find_missing
from herald.templates.render import Held, TemplateSpec, compile_template, render_template


@dataclass(frozen=True, slots=True)
class Recipient:
    person_id: int
    fields: Mapping[str, Any]  # first_name, last_name, company, country, locale, timezone, attributes
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()  # E.164
    consent: tuple[ConsentEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Content:
    """A stored template (parts by name) or inline per-channel content, plus the caller's variables."""

    template: TemplateSpec | None = None
    inline: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    # Check, do not render (a stored template only): a missing variable holds the message as rendering would,
    # but nothing is rendered now: the worker renders the row from its template version and variables at claim
    # time. A campaign launch plans 100,000 people this way; the content of the plan stays empty.
    check_only: bool = False
    # What each channel subset of the template needs, worked out once per Content (a launch makes one).
    _needs: dict[tuple[str, ...], TemplateNeeds | None] = field(default_factory=dict, compare=False, repr=False)
    _has: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)  # channel → has content
    _roots: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Rules:
    quiet_hours: QuietHoursPolicy
    account_zone: str | None = None
    caps: tuple[CapRule, ...] = ()
    # Quiet-hours answers by (start, zones, zone source, class): pure, and shared by everyone in a campaign chunk
    # who starts at the same instant in the same zones (the change-point search costs ~0.2 ms per person).
    _quiet: dict[tuple[Any, ...], tuple[Any, Any]] = field(default_factory=dict, compare=False, repr=False)
    # Zone resolutions by (own zone, country) for everyone whose phone cannot change the answer (a known zone of
    # their own, or no phone): pure as well, and most people share a handful of them.
    _zones: dict[tuple[Any, Any], ZoneResolution] = field(default_factory=dict, compare=False, repr=False)
    _known_zone: dict[Any, bool] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LocalStart:
    """Start at a wall-clock time in the recipient's own zone (the first of their candidate zones; the account
    zone, else UTC, when none is known), plus a per-person offset (a spread window, a send rate)."""

    wall: dt.datetime  # naive: a local date and time
    offset: dt.timedelta = dt.timedelta(0)


@dataclass(frozen=True, slots=True)
class Request:
    message_class: MessageClass
    channels: tuple[str, ...]
    now: dt.datetime
    not_before: dt.datetime | None = None
    local_start: LocalStart | None = None  # instead of not_before: when it depends on the recipient's zone


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing can be sent at all (every channel was skipped); `skips` says why for each."""

    reason: str
    skips: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    channels: tuple[str, ...]  # usable channels, in the caller's order
    addresses: Mapping[str, str]
    content: Mapping[str, Mapping[str, Any]]
    status: str  # queued | held
    available_at: dt.datetime
    zones: tuple[str, ...]
    zone_source: ZoneSource
    hold_reason: str | None = None
    releasable: bool = False  # a hold that ends by itself at available_at (quiet hours, caps)
    skips: tuple[tuple[str, str], ...] = ()
    quiet_zone: str | None = None  # the zone quiet hours were read in, with its source (None: not reached)
    quiet_window: str | None = None  # the window applied, or "exempt: transactional"
    # check_only: the values the template reads (its root names only), for the worker to render from at claim.
    variables: Mapping[str, Any] | None = None


def plan_message(
    request: Request, recipient: Recipient, content: Content, rules: Rules, recent: Sequence[SendRecord] = ()
) -> PlannedMessage | Skip:
    usable, addresses, skips = _usable_channels(request, recipient, content)
    if not usable:
        reasons = {reason.partition(":")[0] for _, reason in skips}
        return Skip(reasons.pop() if len(reasons) == 1 else "no_usable_channel", tuple(skips))
    zone = _zone(recipient, rules)
    # Built once at the end (a campaign plans 100,000 of these; `replace` per step was a tenth of the time).
    common: dict[str, Any] = {
        "channels": tuple(usable),
        "addresses": addresses,
        "zones": zone.zones,
        "zone_source": zone.source,
        "skips": tuple(skips),
    }
    parts: Mapping[str, Mapping[str, Any]] = {}
    variables: Mapping[str, Any] | None = None
    if content.check_only:
        variables, held = _check(usable, recipient, content)
        if held is not None:
            return PlannedMessage(**common, content={}, variables=variables, status="held",
                                  available_at=request.now, hold_reason=held.reason)  # fmt: skip
    else:
        rendered = _render(usable, recipient, content)
        if isinstance(rendered, Held):
            return PlannedMessage(**common, content={}, status="held", available_at=request.now,
                                  hold_reason=rendered.reason)  # fmt: skip
        parts = rendered
    common.update(content=parts, variables=variables)
    start = max(request.now, _not_before(request, zone, rules) or request.now)
    caps = check_caps(rules.caps, usable[0], request.message_class, recent, request.now)
    if not caps.allowed and caps.release_at is None:
        return PlannedMessage(**common, status="held", available_at=start, hold_reason=caps.reason)
    if not caps.allowed and caps.release_at is not None:
        start = max(start, caps.release_at)
    decision, applied = _quiet_hours(start, zone, rules, request.message_class)
    common.update(quiet_zone=applied.zone, quiet_window=applied.window)
    if decision.send_at is None:
        return PlannedMessage(**common, status="held", available_at=start, hold_reason=f"quiet_hours:{decision.reason}")
    if decision.send_at > start or not caps.allowed:
        reason = "quiet_hours" if decision.send_at > start else caps.reason
        return PlannedMessage(
            **common, status="held", available_at=decision.send_at, hold_reason=reason, releasable=True
        )
    return PlannedMessage(**common, status="queued", available_at=decision.send_at)


_QUIET_MEMO_LIMIT = 50_000


def _zone(recipient: Recipient, rules: Rules) -> ZoneResolution:
    """resolve_zone for this person, shared with everyone of the same own zone and country when the phone does
    not decide (the phone is read only when the person's own zone is missing or unknown)."""
    own, country = recipient.fields.get("timezone"), recipient.fields.get("country")
    phone = recipient.phones[0] if recipient.phones else None
    known = rules._known_zone.get(own)
    if known is None:
        known = rules._known_zone[own] = bool(own) and is_known_zone(str(own).strip())
    if phone is not None and not known:
        return resolve_zone(own, phone, country, rules.account_zone)
    key = (own, country)
    found = rules._zones.get(key)
    if found is None:
        found = resolve_zone(own, phone, country, rules.account_zone)
        if len(rules._zones) < _QUIET_MEMO_LIMIT:
            rules._zones[key] = found
    return found


def _quiet_hours(
    start: dt.datetime, zone: ZoneResolution, rules: Rules, message_class: MessageClass
) -> tuple[QuietHoursDecision, QuietHoursApplied]:
    key = (start, zone.zones, zone.source, message_class)
    found = rules._quiet.get(key)
    if found is not None:
        return found
    keep_zones_loaded(zone.zones, rules.quiet_hours)
    decision = decide_send_time(start, zone.zones, rules.quiet_hours, message_class)
    applied = describe_decision(decision, zone.zones, zone.source, rules.quiet_hours, message_class)
    if len(rules._quiet) < _QUIET_MEMO_LIMIT:
        rules._quiet[key] = (decision, applied)
    return decision, applied


def start_zone(zone: ZoneResolution, rules: Rules) -> str:
    """The zone a local start time is read in: the person's first candidate, else the account's, else UTC."""
    if zone.zones:
        return zone.zones[0]
    if rules.account_zone and is_known_zone(rules.account_zone):
        return rules.account_zone
    return "UTC"


def _not_before(request: Request, zone: ZoneResolution, rules: Rules) -> dt.datetime | None:
    if request.local_start is None:
        return request.not_before
    local = request.local_start
    return local_instant(local.wall, start_zone(zone, rules)) + local.offset


def _usable_channels(
    request: Request, recipient: Recipient, content: Content
) -> tuple[list[str], dict[str, str], list[tuple[str, str]]]:
    usable: list[str] = []
    addresses: dict[str, str] = {}
    skips: list[tuple[str, str]] = []
    purpose = consent_purpose(request.message_class)
    for channel in dict.fromkeys(request.channels):
        address = _address(channel, recipient, content)
        problem = None
        if address is None:
            problem = "no_address"
        elif not _content_for(channel, content):
            problem = "no_content"
        elif channel in CONSENT_CHANNELS:
            problem = suppression_reason(recipient.consent, channel, purpose)
        if problem is not None:
            skips.append((channel, problem))
            continue
        assert address is not None
        usable.append(channel)
        addresses[channel] = address
    return usable, addresses, skips


def _address(channel: str, recipient: Recipient, content: Content) -> str | None:
    if channel == "email":
        return recipient.emails[0] if recipient.emails else None
    if channel == "webhook":
        url = content.inline.get("webhook", {}).get("url")
        return str(url) if url else None
    return recipient.phones[0] if recipient.phones else None


def _content_for(channel: str, content: Content) -> bool:
    found = content._has.get(channel)
    if found is None:
        found = content._has[channel] = _has_content(channel, content)
    return found


def _has_content(channel: str, content: Content) -> bool:
    if channel == "webhook":
        return "payload" in content.inline.get("webhook", {})
    if content.template is not None:
        return all(part in content.template.parts for part in (PARTS[channel][f] for f in REQUIRED[channel]))
    fields = content.inline.get(channel, {})
    return all(fields.get(f) for f in REQUIRED[channel]) and (channel != "email" or bool(_email_body(fields)))


def _email_body(fields: Mapping[str, Any]) -> bool:
    return bool(fields.get("text") or fields.get("html"))


# What a template can read about the recipient: each name both short (`first_name`) and long
# (`contact.first_name`), plus every custom attribute by its own name. Listed in `herald messages send --help`.
CONTACT_FIELDS = ("first_name", "last_name", "company", "country", "locale", "timezone", "email", "phone")


def template_values(recipient: Recipient, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The render context. Precedence, lowest first: the contact's attributes, its fields, then the message's
    own variables, so `--var first_name=Jo` overrides the stored name for this one message."""
    fields = dict(recipient.fields)
    attributes = fields.pop("attributes", None) or {}
    contact = {**attributes, **{k: v for k, v in fields.items() if v is not None}}
    if recipient.emails:
        contact.setdefault("email", recipient.emails[0])
    if recipient.phones:
        contact.setdefault("phone", recipient.phones[0])
    return {**contact, "contact": contact, **variables}


def _spec_for(channels: Sequence[str], content: Content) -> TemplateSpec | None:
    """Only the parts of the channels in the plan: a variable used only on a skipped channel holds nothing."""
    wanted = {PARTS[c][f] for c in channels if c in PARTS for f in PARTS[c]}
    if content.template is not None:
        spec = content.template
        parts = {name: source for name, source in spec.parts.items() if name in wanted}
        if not parts:
            return None
        return TemplateSpec(id=spec.id, version=spec.version, parts=parts, variables=spec.variables)
    parts = {}
    for channel in channels:
        for field_name, part in PARTS.get(channel, {}).items():
            value = content.inline.get(channel, {}).get(field_name)
            if value:
                parts[part] = str(value)
    return TemplateSpec(id="inline", version=0, parts=parts) if parts else None


def _render(channels: Sequence[str], recipient: Recipient, content: Content) -> dict[str, dict[str, Any]] | Held:
    spec = _spec_for(channels, content)
    result = render_template(spec, template_values(recipient, content.variables)) if spec is not None else None
    if isinstance(result, Held):
        return result
    parts = result.parts if result is not None else {}
    out: dict[str, dict[str, Any]] = {}
    for channel in channels:
        if channel == "webhook":
            out[channel] = {"payload": content.inline["webhook"]["payload"]}
            continue
        out[channel] = {f: parts[p] for f, p in PARTS[channel].items() if p in parts}
    return out


def template_needs(channels: Sequence[str], content: Content) -> TemplateNeeds | None:
    """What the template parts of these channels read (required, optional, fallbacks); None: no parts."""
    spec = _spec_for(channels, content)
    return compile_template(spec).needs if spec is not None else None


def _check(channels: Sequence[str], recipient: Recipient, content: Content) -> tuple[dict[str, Any], Held | None]:
    """check_only: the variable checks rendering starts with (find_missing), without rendering; and the values
    under the names the template reads (a row keeps those, not the whole contact twice over)."""
    key = tuple(channels)
    if key not in content._needs:
        content._needs[key] = template_needs(channels, content)
    needs = content._needs[key]
    if needs is None:
        return {}, None
    values = template_values(recipient, content.variables)
    roots = content._roots.get(key)
    if roots is None:
        roots = content._roots[key] = frozenset(path.split(".", 1)[0] for path in needs.variables)
    kept = {name: value for name, value in values.items() if name in roots}
    missing = find_missing(needs, values)
    return kept, Held(f"missing_variable:{missing[0]}", variables=missing) if missing else None


_held_zones: dict[str, zoneinfo.ZoneInfo] = {}


def keep_zones_loaded(names: Sequence[str], policy: QuietHoursPolicy) -> None:
    """Hold a reference to every zone in use. ZoneInfo caches weakly (plus 8 strong entries), so a region's
    29 fallback zones were re-read from tzdata on every message; held here, each is read once per process."""
    for name in names or policy.fallback_zones or country_zones(policy.default_country):
        if name not in _held_zones:
            try:
                _held_zones[name] = load_zone(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                continue  # decide_send_time reports it
