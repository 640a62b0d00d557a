"""One channel vocabulary (herald.core.channels), read the same way by the API schema, the CLI and templates."""

from __future__ import annotations

import json
from typing import Any

from herald.core.channels import CHANNELS, CONSENT_CHANNELS, CONTENT, MESSAGE_CLASSES, PART_NAME, PARTS
from tests.helpers import cli


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _enum(document: dict[str, Any], prop: dict[str, Any]) -> list[str]:
    """The enum a property allows, following a $ref (pydantic names StrEnums as their own schemas)."""
    if "$ref" in prop:
        prop = _schema(document, prop["$ref"].rsplit("/", 1)[1])
    return list(prop["enum"])


def test_the_api_schema_offers_exactly_the_vocabulary(api: Any) -> None:
    document = api.get("/openapi.json").json()
    message = _schema(document, "MessageIn")["properties"]
    assert _enum(document, message["class"]) == list(MESSAGE_CLASSES)
    assert _enum(document, message["channels"]["items"]) == list(CHANNELS)
    assert message["channels"]["maxItems"] == len(CHANNELS)
    assert set(_schema(document, "ContentIn")["properties"]) == set(CHANNELS)
    email = _schema(document, "EmailIn")["properties"]
    assert email["subject"]["maxLength"] == CONTENT["email"].max_length["subject"]  # type: ignore[index]
    consent = _schema(document, "ConsentIn")["properties"]
    assert _enum(document, consent["channel"]) == list(CONSENT_CHANNELS)


def test_unknown_channels_and_classes_are_refused_with_the_error_shape(api: Any) -> None:
    body = {"email": "ada@example.com", "class": "transactional", "channels": ["fax"], "content": {}}
    refused = api.post("/api/messages", json=body, headers={"Idempotency-Key": "k1"})
    assert refused.status_code == 422  # request validation, as for any malformed body
    assert set(refused.json()["error"]) >= {"code", "message"}
    body = body | {"class": "newsletter", "channels": ["email"]}
    assert api.post("/api/messages", json=body, headers={"Idempotency-Key": "k2"}).status_code == 422


def test_consent_is_recorded_only_for_consent_channels(api: Any) -> None:
    person = api.post("/api/contacts", json={"emails": ["ada@example.com"]}).json()["id"]
    for channel in CONSENT_CHANNELS:
        body = {"channel": channel, "purpose": "marketing", "kind": "subscribed", "explicit": True}
        recorded = api.post(f"/api/contacts/{person}/consent", json=body)
        assert recorded.status_code < 300, recorded.text
    webhook = {"channel": "webhook", "purpose": "marketing", "kind": "subscribed"}
    refused = api.post(f"/api/contacts/{person}/consent", json=webhook)
    assert refused.status_code == 422
    assert "email, sms, whatsapp, voice" in refused.text
    consent = api.get(f"/api/contacts/{person}").json()["consent"]
    assert {key.split(":")[0] for key in consent} == set(CONSENT_CHANNELS)


def test_template_part_names_come_from_the_content_spec(api: Any) -> None:
    parts = {part: "Hello {{ first_name | default('there') }}" for fields in PARTS.values() for part in fields.values()}
    parts["whatsapp.param.1"] = "{{ first_name | default('there') }}"
    assert all(PART_NAME.match(name) for name in parts)
    created = api.post("/api/templates", json={"id": "every-part", "parts": parts})
    assert created.status_code == 201, created.text
    refused = api.post("/api/templates", json={"id": "bad", "parts": {"fax.body": "Hi"}})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "template_invalid"
    message = refused.json()["error"]["message"]
    assert all(part in message for fields in PARTS.values() for part in fields.values())


def test_the_cli_fills_each_channel_from_the_same_spec(cli_env: dict[str, str]) -> None:
    helped = cli("messages", "send", "--help")
    assert helped.exit_code == 0
    flat = " ".join(helped.output.split())
    assert " | ".join(MESSAGE_CLASSES) in flat
    for channel in CHANNELS:
        assert channel in flat
    sent = cli(
        "messages", "send", "--to", "+14155550101", "--channel", "sms", "--channel", "voice",
        "--text", "Your table is ready", "--class", "transactional",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    # --text filled the SMS body and the voice text: neither channel was skipped for want of content.
    accepted = json.loads(sent.stdout)
    assert (accepted["status"], accepted["channels"], accepted["skips"]) == ("queued", ["sms", "voice"], [])
    # The e-mail fields need their own flags: without --subject the e-mail has no content.
    no_subject = cli("messages", "send", "--to", "ada@example.com", "--text", "Hi", "--class", "transactional")
    assert json.loads(no_subject.stdout)["skips"] == [{"channel": "email", "reason": "no_content"}]
