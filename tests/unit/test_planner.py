"""The planner's pure rules: consent, content and address skips, template holds, caps and quiet hours."""

from __future__ import annotations

import datetime as dt

from herald.consent.policy import ConsentEvent
from herald.delivery.planner import Content, PlannedMessage, Recipient, Request, Rules, Skip, plan_message
from herald.schedule.caps import CapRule, SendRecord
from herald.schedule.quiet_hours import QuietHoursPolicy
from herald.templates.render import TemplateSpec, VariableSpec

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)  # 12:00 London, 07:00 New York
# These rules keep quiet hours for transactional messages too, so the default class exercises them.
RULES = Rules(quiet_hours=QuietHoursPolicy(exempt_transactional=False))
INLINE = Content(
    inline={
        "email": {"subject": "Hello", "text": "Hi {{ contact.first_name }}."},
        "sms": {"body": "Hi {{ contact.first_name }}."},
    }
)


def _person(tz: str | None = "Europe/London", *events: ConsentEvent, phones: tuple[str, ...] = ()) -> Recipient:
    return Recipient(
        person_id=1,
        fields={"first_name": "Ann", "timezone": tz, "country": None, "attributes": {"tier": "gold"}},
        emails=("ann@example.com",),
        phones=phones,
        consent=tuple(events),
    )


def _request(*channels: str, message_class: str = "transactional") -> Request:
    return Request(message_class, channels, NOW)  # type: ignore[arg-type]


def _plan(recipient: Recipient, content: Content = INLINE, *channels: str, **kw: object) -> PlannedMessage | Skip:
    return plan_message(_request(*(channels or ("email",)), **kw), recipient, content, RULES)  # type: ignore[arg-type]


def test_a_plain_plan_is_queued_now_with_rendered_content() -> None:
    plan = _plan(_person())
    assert isinstance(plan, PlannedMessage)
    assert plan.status == "queued" and plan.available_at == NOW
    assert plan.content == {"email": {"subject": "Hello", "text": "Hi Ann."}}
    assert plan.addresses == {"email": "ann@example.com"} and plan.zone_source == "contact"


def test_channels_without_address_or_consent_are_skipped_with_reasons() -> None:
    unsubscribed = ConsentEvent("email", "all", "unsubscribed", NOW - dt.timedelta(days=1))
    plan = _plan(_person("Europe/London", unsubscribed, phones=("+447911123456",)), INLINE, "email", "sms", "voice")
    assert isinstance(plan, PlannedMessage)
    assert plan.channels == ("sms",)
    assert plan.skips == (("email", "no_consent:unsubscribed"), ("voice", "no_content"))


def test_marketing_needs_consent_and_nothing_usable_is_a_skip() -> None:
    skip = _plan(_person(), INLINE, "email", message_class="marketing")
    assert skip == Skip("no_consent", (("email", "no_consent:unknown"),))
    subscribed = ConsentEvent("email", "marketing", "subscribed", NOW)
    assert isinstance(
        _plan(_person("Europe/London", subscribed), INLINE, "email", message_class="marketing"), PlannedMessage
    )


def test_a_missing_variable_holds_the_message() -> None:
    spec = TemplateSpec(id="t", version=2, parts={"email.subject": "Order {{ order_id }}", "email.text": "Hi."})
    plan = _plan(_person(), Content(template=spec))
    assert isinstance(plan, PlannedMessage)
    assert (plan.status, plan.hold_reason, plan.releasable) == ("held", "missing_variable:order_id", False)
    ok = _plan(_person(), Content(template=spec, variables={"order_id": "A7"}))
    assert isinstance(ok, PlannedMessage) and ok.content["email"]["subject"] == "Order A7"


def test_fallbacks_fill_blanks_and_a_variable_used_only_on_a_skipped_channel_holds_nothing() -> None:
    spec = TemplateSpec(
        id="t",
        version=1,
        parts={"email.subject": "Hi {{ contact.nickname }}", "email.text": "x", "sms.body": "{{ sms_only }}"},
        variables={"contact.nickname": VariableSpec(fallback="friend")},
    )
    plan = _plan(_person(), Content(template=spec), "email")
    assert isinstance(plan, PlannedMessage) and plan.content["email"]["subject"] == "Hi friend"


def test_a_leftover_placeholder_holds() -> None:
    content = Content(inline={"email": {"subject": "Hello", "text": "Dear [FirstName], welcome."}})
    plan = _plan(_person(), content)
    assert isinstance(plan, PlannedMessage) and plan.status == "held"
    assert plan.hold_reason is not None and plan.hold_reason.startswith("leftover_placeholder:email.text")


def test_quiet_hours_hold_until_the_next_allowed_instant_in_the_recipient_zone() -> None:
    plan = _plan(_person("America/New_York"))
    assert isinstance(plan, PlannedMessage)
    assert (plan.status, plan.hold_reason, plan.releasable) == ("held", "quiet_hours", True)
    assert plan.available_at == dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)


def test_quiet_hours_exemption_is_a_policy_choice() -> None:
    rules = Rules(quiet_hours=QuietHoursPolicy(exempt_transactional=True))
    plan = plan_message(_request("email"), _person("America/New_York"), INLINE, rules)
    assert isinstance(plan, PlannedMessage) and plan.status == "queued" and plan.available_at == NOW


def test_the_zone_comes_from_the_phone_when_the_person_has_none() -> None:
    plan = _plan(_person(None, phones=("+12125550100",)))
    assert isinstance(plan, PlannedMessage)
    assert plan.zone_source == "phone" and plan.zones == ("America/New_York",)
    assert plan.hold_reason == "quiet_hours"


def test_not_before_delays_and_caps_hold_or_drop() -> None:
    later = NOW + dt.timedelta(hours=2)
    plan = plan_message(Request("transactional", ("email",), NOW, later), _person(), INLINE, RULES)
    assert isinstance(plan, PlannedMessage) and plan.status == "queued" and plan.available_at == later

    recent = [SendRecord("email", "marketing", NOW - dt.timedelta(hours=h)) for h in (1, 5)]
    subscribed = ConsentEvent("email", "marketing", "subscribed", NOW)
    hold = Rules(RULES.quiet_hours, caps=(CapRule("email", "marketing", 2, dt.timedelta(hours=24)),))
    held = plan_message(
        _request("email", message_class="marketing"), _person("Europe/London", subscribed), INLINE, hold, recent
    )
    assert isinstance(held, PlannedMessage)
    assert (held.status, held.releasable) == ("held", True)
    # The oldest send ages out at 07:00 (UTC = London) the next day; quiet hours then wait until 08:00.
    assert held.available_at == dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    no_quiet = Rules(QuietHoursPolicy(exempt_transactional=True), caps=hold.caps)
    capped = plan_message(
        Request("transactional", ("email",), NOW),
        _person(),
        INLINE,
        no_quiet,
        [SendRecord("email", "transactional", NOW - dt.timedelta(hours=h)) for h in (1, 5)],
    )
    assert isinstance(capped, PlannedMessage) and capped.status == "queued"  # the rule is for marketing only
    drop = Rules(RULES.quiet_hours, caps=(CapRule("*", "*", 2, dt.timedelta(hours=24), on_exceed="drop"),))
    dropped = plan_message(
        _request("email", message_class="marketing"), _person("Europe/London", subscribed), INLINE, drop, recent
    )
    assert isinstance(dropped, PlannedMessage) and (dropped.status, dropped.hold_reason) == ("held", "capped_drop")


def test_by_default_a_transactional_message_goes_at_night_and_marketing_waits() -> None:
    defaults = Rules(quiet_hours=QuietHoursPolicy(default_country="US"))
    night = dt.datetime(2026, 11, 22, 3, 37, tzinfo=dt.UTC)
    unknown_zone = _person(None)
    reset = plan_message(Request("transactional", ("email",), night), unknown_zone, INLINE, defaults)
    assert isinstance(reset, PlannedMessage)
    assert (reset.status, reset.available_at) == ("queued", night)
    assert (reset.quiet_zone, reset.quiet_window) == ("unknown", "exempt: transactional")
    subscribed = ConsentEvent("email", "marketing", "subscribed", night)
    offer = plan_message(Request("marketing", ("email",), night), _person(None, subscribed), INLINE, defaults)
    assert isinstance(offer, PlannedMessage)
    assert (offer.status, offer.hold_reason) == ("held", "quiet_hours")
    assert offer.available_at == dt.datetime(2026, 11, 22, 18, 0, tzinfo=dt.UTC)  # 08:00 in Honolulu and Adak
    assert offer.quiet_zone is not None and offer.quiet_zone.startswith("every zone of US")
    assert offer.quiet_window == "08:00-20:00 local, every day"


def test_contact_fields_read_short_or_long_and_message_variables_win() -> None:
    content = Content(
        inline={"email": {"subject": "{{ first_name }} / {{ contact.first_name }}", "text": "{{ tier }} {{ email }}"}}
    )
    plan = _plan(_person(), content)
    assert isinstance(plan, PlannedMessage)
    assert plan.content["email"] == {"subject": "Ann / Ann", "text": "gold ann@example.com"}
    override = Content(inline=content.inline, variables={"first_name": "Jo"})
    plan = _plan(_person(), override)
    assert isinstance(plan, PlannedMessage)
    # The message's own variable wins over the short name; contact.first_name stays the stored one.
    assert plan.content["email"]["subject"] == "Jo / Ann"
