"""Column layouts of contact exports (generic CSV, Mailchimp, HubSpot, Constant Contact): what each header means."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from herald.contacts.importers.values import consent_status, normalise_header

CONSENT_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "non_subscribed")


class Role(enum.Enum):
    EMAIL = "email"
    EMAIL_LIST = "email_list"  # one cell, several addresses separated by ";" or ","
    PHONE = "phone"
    HANDLE = "handle"
    FIRST = "first_name"
    LAST = "last_name"
    FULL_NAME = "full_name"
    COMPANY = "company"
    COUNTRY = "country"
    LOCALE = "locale"
    TIMEZONE = "timezone"
    TAGS = "tags"
    EMAIL_STATUS = "email_status"
    SMS_STATUS = "sms_status"
    EMAIL_OPTOUT = "email_optout"  # a yes/no column: yes means unsubscribed from all e-mail
    CONFIRM_TIME = "confirm_time"
    OPTIN_TIME = "optin_time"
    OPTOUT_TIME = "optout_time"
    CLEAN_TIME = "clean_time"
    CHANGED_TIME = "changed_time"
    ATTRIBUTE = "attribute"


SINGLE_ROLES = frozenset({Role.FIRST, Role.LAST, Role.COMPANY, Role.LOCALE})
IDENTITY_ROLES = frozenset({Role.EMAIL, Role.EMAIL_LIST, Role.PHONE, Role.HANDLE})
TIME_ROLES = (Role.CONFIRM_TIME, Role.OPTIN_TIME, Role.OPTOUT_TIME, Role.CLEAN_TIME, Role.CHANGED_TIME)
# Which timestamp explains which status, best first; the last-changed time is the fallback for all.
TIME_PRIORITY: dict[str | None, tuple[Role, ...]] = {
    "unsubscribed": (Role.OPTOUT_TIME, Role.CHANGED_TIME),
    "cleaned": (Role.CLEAN_TIME, Role.CHANGED_TIME),
    None: (Role.CONFIRM_TIME, Role.OPTIN_TIME, Role.CHANGED_TIME, Role.OPTOUT_TIME, Role.CLEAN_TIME),
}


# --- headers ---------------------------------------------------------------------------------------


def unique_keys(headers: Sequence[str]) -> list[str]:
    """Header texts made usable as dict keys: a blank header becomes "column N", a repeat gets " (2)"."""
    keys: list[str] = []
    seen: set[str] = set()
    for index, header in enumerate(headers, start=1):
        key = header if header.strip() else f"column {index}"
        suffix = 2
        while key in seen:
            key = f"{header} ({suffix})"
            suffix += 1
        seen.add(key)
        keys.append(key)
    return keys


def _aliases(role: Role, names: str) -> dict[str, Role]:
    return dict.fromkeys(names.split(), role)


_GENERIC: dict[str, Role] = {
    **_aliases(Role.EMAIL, "email emailaddress mail emailid"),
    **_aliases(
        Role.HANDLE,
        "twitter twitterhandle twitterusername twitterurl x xhandle xusername handle social socialhandle"
        " socialprofile mastodon bluesky instagram linkedin linkedinurl",
    ),
    **_aliases(Role.FIRST, "firstname first givenname fname forename vorname prénom"),
    **_aliases(Role.LAST, "lastname last surname familyname lname nachname nom"),
    **_aliases(Role.FULL_NAME, "name fullname contactname displayname customername"),
    **_aliases(
        Role.COMPANY,
        "company companyname organization organisation org organizationname organisationname employer"
        " business businessname accountname firma",
    ),
    **_aliases(Role.COUNTRY, "land pays"),
    **_aliases(Role.LOCALE, "locale language lang preferredlanguage languagecode"),
    **_aliases(Role.TIMEZONE, "timezone tz timezonename ianatimezone"),
    **_aliases(Role.TAGS, "tags tag labels label lists list emaillists listnames"),
    **_aliases(Role.CONFIRM_TIME, "confirmtime confirmedat confirmationdate confirmationtime"),
    **_aliases(
        Role.OPTIN_TIME,
        "optintime optindate optinat optedinat emailoptindate subscribedat subscribedate subscriptiondate"
        " consentdate consentat consenttime",
    ),
    **_aliases(
        Role.OPTOUT_TIME,
        "unsubtime unsubscribedat unsubscribedate optoutdate optouttime optedoutat emailoptoutdate",
    ),
    **_aliases(Role.CLEAN_TIME, "cleantime cleanedat"),
    **_aliases(Role.CHANGED_TIME, "lastchanged"),
}
# Status columns mean consent only in a generic file; vendor layouts name theirs explicitly.
_GENERIC_CONSENT: dict[str, Role] = {
    **_aliases(
        Role.EMAIL_STATUS,
        "status emailstatus subscriptionstatus emailsubscriptionstatus memberstatus emailconsent"
        " emailpermission emailpermissionstatus consent",
    ),
    **_aliases(Role.SMS_STATUS, "smsstatus smsconsent smssubscriptionstatus smspermission smspermissionstatus"),
    **_aliases(Role.EMAIL_OPTOUT, "unsubscribed unsubscribedfromallemail emailoptout optedout donotemail"),
}
_QUALIFIER = (
    "work|home|personal|business|private|other|primary|secondary|alternate|alternative|additional"
    "|second|third|backup|office|main|mobile|cell|landline|contact"
)
_EMAIL_RE = re.compile(rf"^(?:{_QUALIFIER})?e?mail(?:address)?(?:{_QUALIFIER})?\d*$")
_PHONE_RE = re.compile(
    rf"^(?:{_QUALIFIER}|whatsapp)?(?:phone|telephone|tel|telefon|handy|mobile|cell|cellphone|mobilephone|whatsapp|smsphone)"
    rf"(?:number|no|num)?(?:{_QUALIFIER})?\d*$"
)
_COUNTRY_RE = re.compile(r"^country(?:code|region|name|iso|isocode)?(?:home|work|other|business)?\d*$")


def generic_role(norm: str, *, consent_columns: bool) -> Role:
    role = _GENERIC.get(norm)
    if role is not None:
        return role
    if consent_columns and norm in _GENERIC_CONSENT:
        return _GENERIC_CONSENT[norm]
    if _EMAIL_RE.match(norm):
        return Role.EMAIL
    if _PHONE_RE.match(norm):
        return Role.PHONE
    if _COUNTRY_RE.match(norm):
        return Role.COUNTRY
    return Role.ATTRIBUTE


# --- layouts ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    overrides: Mapping[str, Role] = field(default_factory=dict)
    consent_columns: bool = False
    required: tuple[str, ...] = ()  # header texts that must be present when this layout is forced
    default_status: str | None = None  # e-mail status of a record whose file states none
    trusts_file_name: bool = False  # "unsubscribed_members_export_….csv" says the status of every record

    def role(self, norm: str) -> Role:
        return self.overrides.get(norm) or generic_role(norm, consent_columns=self.consent_columns)


GENERIC = Layout("csv", consent_columns=True)
MAILCHIMP = Layout(
    "mailchimp",
    overrides={
        **_aliases(Role.EMAIL_STATUS, "status memberstatus"),
        "cc": Role.COUNTRY,
        "address": Role.ATTRIBUTE,
        "region": Role.ATTRIBUTE,
    },
    required=("Email Address",),
    default_status="subscribed",
    trusts_file_name=True,
)
HUBSPOT = Layout(
    "hubspot",
    overrides={
        "additionalemailaddresses": Role.EMAIL_LIST,
        "countryregion": Role.COUNTRY,
        "unsubscribedfromallemail": Role.EMAIL_OPTOUT,
        "marketingcontactstatus": Role.ATTRIBUTE,  # a billing tier in HubSpot, not consent
        "associatedcompany": Role.ATTRIBUTE,
        "associatedcompanyid": Role.ATTRIBUTE,
    },
    required=("Email",),
)
CONSTANT_CONTACT = Layout(
    "constant-contact",
    overrides={
        "emailpermissionstatus": Role.EMAIL_STATUS,
        "smspermissionstatus": Role.SMS_STATUS,
        "emaillists": Role.TAGS,
    },
    required=("Email address",),
)
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (GENERIC, MAILCHIMP, HUBSPOT, CONSTANT_CONTACT)}


def detect_layout(headers: Sequence[str]) -> Layout:
    """Pick the layout from header signatures; anything unrecognised is a generic CSV."""
    norms = {normalise_header(header) for header in headers}
    if norms & {"leid", "euid", "memberrating"}:
        return MAILCHIMP
    if "recordid" in norms and norms & {"lifecyclestage", "contactowner"}:
        return HUBSPOT
    if "emailpermissionstatus" in norms or {"emailaddress", "emaillists"} <= norms:
        return CONSTANT_CONTACT
    return GENERIC


_FILE_STATUS_RE = re.compile(
    r"(?<![a-z])(non_?subscribed|unsubscribed|subscribed|cleaned|pending|transactional)(?![a-z])"
)


def status_from_file_name(name: str) -> str | None:
    """Mailchimp names each export after its members' status: "cleaned_members_export_9f2c.csv"."""
    found = _FILE_STATUS_RE.search(name.lower())
    if found is None:
        return None
    return consent_status(found.group(1))
