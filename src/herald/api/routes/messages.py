"""Message routes: POST /api/messages (idempotent, 202 after commit), list, GET one, providers, Twilio receipts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field, ValidationError, model_validator

from herald.api.deps import ApiKeyDep, RuntimeDep, WorkDep
from herald.api.errors import error_responses
from herald.channels.base import SignatureError
from herald.core.channels import CONTENT, Channel, MessageClass
from herald.core.errors import InvalidInputError
from herald.core.inputs import Count, Id, InputModel, Text, nul_path
from herald.delivery import batch, queries, service, unconfirmed
from herald.delivery.receipts import record_callback, record_twilio_callback

router = APIRouter(tags=["messages"])
hooks = APIRouter(tags=["provider callbacks"], include_in_schema=True)


# Field names and limits come from the per-channel content spec (herald.core.channels.CONTENT).
_EMAIL, _SMS, _VOICE, _WEBHOOK = (
    CONTENT[c].max_length for c in (Channel.EMAIL, Channel.SMS, Channel.VOICE, Channel.WEBHOOK)
)


class EmailIn(InputModel):
    subject: str = Field(..., min_length=1, max_length=_EMAIL["subject"])
    text: str | None = None
    html: str | None = None


class BodyIn(InputModel):
    body: str = Field(..., min_length=1, max_length=_SMS["body"])


class VoiceIn(InputModel):
    text: str = Field(..., min_length=1, max_length=_VOICE["text"])


class WebhookIn(InputModel):
    url: str = Field(..., max_length=_WEBHOOK["url"])
    payload: dict[str, Any]


class ContentIn(InputModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailIn | None = None
    sms: BodyIn | None = None
    whatsapp: BodyIn | None = None
    voice: VoiceIn | None = None
    webhook: WebhookIn | None = None


class MessageIn(InputModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    contact_id: Id | None = None
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=64)
    handle: str | None = Field(None, max_length=320)
    template_id: str | None = Field(None, max_length=200)
    template_version: Id | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    content: ContentIn | None = None
    message_class: MessageClass = Field(..., alias="class")
    channels: list[Channel] = Field(..., min_length=1, max_length=len(Channel))
    not_before: dt.datetime | None = None
    message_key: str | None = Field(None, min_length=1, max_length=200)


def to_request(body: MessageIn) -> service.SendRequest:
    content = body.content.model_dump(exclude_none=True) if body.content else {}
    return service.SendRequest(
        message_class=body.message_class.value,
        channels=[channel.value for channel in body.channels],
        contact_id=body.contact_id,
        email=body.email,
        phone=body.phone,
        handle=body.handle,
        template_id=body.template_id,
        template_version=body.template_version,
        variables=body.variables,
        content=content,
        not_before=body.not_before,
        message_key=body.message_key,
    )


@router.post("/messages", status_code=202, responses=error_responses(400, 404, 409))
def send_message(
    body: MessageIn,
    runtime: RuntimeDep,
    key_id: ApiKeyDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Plan and enqueue one message; answers 202 only once the ledger row is committed."""
    payload = body.model_dump(mode="json", by_alias=True)
    result = service.submit_message(runtime, f"key:{key_id}", idempotency_key, payload, to_request(body))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)


class BatchItemIn(MessageIn):
    """One item of a batch: a POST /api/messages body plus its own idempotency key (required)."""

    idempotency_key: str | None = Field(None, description="1-255 printable characters; required per item.")


class BatchIn(InputModel):
    # Items are validated one by one (each a BatchItemIn: a POST /api/messages body plus `idempotency_key`),
    # so one bad item is that item's 422, not the batch's.
    messages: list[Any] = Field(
        ...,
        min_length=1,
        max_length=batch.MAX_ITEMS,
        description="1-1,000 messages: each a POST /api/messages body plus its own `idempotency_key`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        # Each item is checked on its own (as a BatchItemIn): a NUL in one item fails that item only.
        if isinstance(data, dict):
            where = nul_path({k: v for k, v in data.items() if k != "messages"})
            if where is not None:
                raise ValueError(f"Text must not contain NUL (\\u0000) characters (at {where}).")
        return data


def batch_item(raw: Any) -> batch.BatchItem:
    """One raw item (parsed JSON) → what the batch service takes; a bad item carries its 422 instead.
    `herald messages send-batch` reads its lines with this too, so both accept exactly the same items."""
    key = raw.get("idempotency_key") if isinstance(raw, dict) else None
    try:
        item = BatchItemIn.model_validate(raw)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]
        error = InvalidInputError("The message is not valid.", problems=problems)
        return batch.BatchItem(key if isinstance(key, str) else None, {}, None, error=error)
    payload = item.model_dump(mode="json", by_alias=True, exclude={"idempotency_key"})
    return batch.BatchItem(item.idempotency_key, payload, to_request(item))


@router.post(
    "/messages/batch",
    status_code=202,
    responses={207: {"description": "Some items failed: see each item's status."}, **error_responses(413, 422)},
)
def send_batch(body: BatchIn, runtime: RuntimeDep, key_id: ApiKeyDep) -> JSONResponse:
    """Plan and enqueue 1-1,000 messages, each with its own `idempotency_key`; per-item results in order.

    202 when every item was accepted (or replayed), 207 when some were not. Items are independent: a bad item
    gets its own 4xx result, and each accepted item's row and key are committed before the answer.
    """
    items = [batch_item(raw) for raw in body.messages]
    result = batch.submit_batch(runtime, f"key:{key_id}", items)
    return JSONResponse(result.to_dict(), status_code=result.status_code)


@router.get("/messages")
def list_messages(
    runtime: RuntimeDep,
    status: Annotated[Text | None, Query(max_length=16, description="held, queued, sent, failed, …")] = None,
    channel: Annotated[Text | None, Query(max_length=16, description="a channel anywhere in the plan")] = None,
    message_class: Annotated[Text | None, Query(alias="class", max_length=16)] = None,
    reason: Annotated[Text | None, Query(max_length=64, description="a hold or skip reason kind")] = None,
    person: Annotated[Id | None, Query(description="the person's id")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> dict[str, Any]:
    """Messages newest first, filtered; `total` counts every match, not only this page."""
    filters = queries.MessageFilter(
        status=status, channel=channel, message_class=message_class, reason=reason, person_id=person
    )
    found = queries.list_messages(runtime.engine, filters, limit=limit, offset=offset)
    return {"total": found.total, "limit": limit, "offset": offset, "messages": found.messages}


@router.get("/messages/{message_id}", responses=error_responses(404))
def get_message(message_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    """The ledger row, every attempt, every receipt, and any hold reason."""
    return queries.message_detail(runtime.engine, message_id)


@router.post("/messages/{message_id}/resend", status_code=202, responses=error_responses(404, 409))
def resend_message(message_id: Id, work: WorkDep) -> dict[str, Any]:
    """Re-send a `sent_unconfirmed` message: queued again, its last attempt goes out with the same reference
    (so the same Message-ID). 409 `not_unconfirmed` for any other status. Audited."""
    with work.begin() as uow:
        return unconfirmed.resend_message(uow, message_id)


@router.get("/providers")
def providers(runtime: RuntimeDep) -> dict[str, Any]:
    """Each provider's circuit breaker as every worker sees it."""
    return {"providers": service.provider_health(runtime)}


@hooks.post("/hooks/twilio/status", status_code=204)
async def twilio_status(request: Request, runtime: RuntimeDep) -> Response:
    """Twilio status callbacks; the X-Twilio-Signature is the authentication (no API key)."""
    body = await request.body()
    try:
        record_twilio_callback(runtime, request.url.query, dict(request.headers), body)
    except SignatureError:
        return JSONResponse({"error": {"code": "bad_signature", "message": "signature check failed"}}, status_code=403)
    return Response(status_code=204)


@hooks.post("/hooks/{provider}", status_code=204, responses=error_responses(404))
async def provider_callback(
    provider: Annotated[Text, Path(max_length=64)], request: Request, runtime: RuntimeDep
) -> Response:
    """Any provider's callbacks: the registry finds the adapter by name, its `parse_callback` verifies the
    signature (403 if wrong) and says what happened; the outcome is applied once."""
    body = await request.body()
    try:
        record_callback(runtime, provider, request.url.path, request.url.query, dict(request.headers), body)
    except SignatureError:
        return JSONResponse({"error": {"code": "bad_signature", "message": "signature check failed"}}, status_code=403)
    return Response(status_code=204)
