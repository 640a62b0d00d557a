"""Templates that are cheap to write and expensive to run: refused with 422 template_unsafe, fast, nothing stored."""

from __future__ import annotations

import gc
import time
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.db.delivery_tables import messages
from herald.db.runtime import Runtime

# Each one would take seconds to gigabytes if it ran; all of them are decided before any work is done.
CONSTANT_BOMBS = [
    "{{ 9**9999999 }}",
    "{{ 99999999 * 'a' }}",
    "{{ 'a'*10**9 }}",
    "{{ [1]*10**9 }}",
    "{{ ([1]*1000000)|length }}{{ ([1]*1000000)|length }}{{ ([1]*1000000)|length }}",
    "{{ 'a'|center(10**9) }}",
    "{{ ('ab'*20000)|replace('', 'x'*20000) }}",
    "{{ ('x'*50000)|join('y'*50000) }}",
    "{{ '%999999999s' % 'a' }}",
    "{{ '%*s' % (999999999, 'a') }}",
    "{{ '%s'|format('a') }}",
    "{{ range(10**9)|list }}",
    "{% for a in 'x'*1000 %}{% for b in 'x'*1000 %}x{% endfor %}{% endfor %}",
]
# Built from the request's variables, so only rendering can tell: refused while the message is planned.
RENDER_BOMBS = [
    ("{{ word * 10**9 }}", {"word": "ab"}),
    ("{% set s = word %}" + "{% set s = s ~ s %}" * 40 + "{{ s|length }}", {"word": "abcdefgh"}),
    (
        "{% for a in xs %}{% for b in xs %}{% for c in xs %}{{ c }}{% endfor %}{% endfor %}{% endfor %}",
        {"xs": "x" * 500},
    ),
    ("{{ n ** n }}", {"n": 99999}),
]
LIMIT_SECONDS = 1.0  # CPU seconds the whole request may cost (the request thread and ours)
HANG_SECONDS = 15.0  # wall clock: only a hang or a stall trips this, not a loaded machine


def _timed(call: Any) -> tuple[Any, float]:
    # CPU time, not wall time: on a loaded 2-core box a cheap refusal can wait seconds for a core, while the
    # bomb this guards against costs many CPU seconds wherever it runs. The wall clock still catches a hang.
    # Process CPU counts every thread, the garbage collector's work included: collect what earlier tests left
    # first, so a full collection of their garbage is not charged to this request.
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    response = call()
    assert time.perf_counter() - wall < HANG_SECONDS
    return response, time.process_time() - cpu


def _assert_unsafe(response: Any, elapsed: float) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "template_unsafe"
    assert elapsed < LIMIT_SECONDS, f"took {elapsed:.2f} CPU seconds"


@pytest.mark.parametrize("source", CONSTANT_BOMBS)
def test_saving_an_expensive_template_is_refused_quickly(api: TestClient, source: str) -> None:
    response, elapsed = _timed(
        lambda: api.post("/api/templates", json={"id": "bomb", "parts": {"sms.body": source, "email.text": "ok"}})
    )
    _assert_unsafe(response, elapsed)
    assert response.json()["error"]["message"].startswith("part sms.body refused")
    assert api.get("/api/templates/bomb").status_code == 404  # nothing stored


def _contact(api: TestClient, address: str) -> None:
    # London on the fixture clock is inside quiet-hours-free daytime, so a good message is queued at once.
    response = api.post("/api/contacts", json={"emails": [address], "timezone": "Europe/London"})
    assert response.status_code == 201, response.text


def _send(api: TestClient, key: str, text: str, variables: dict[str, Any] | None = None) -> Any:
    payload = {
        "class": "transactional",
        "channels": ["email"],
        "email": "ann@example.com",
        "variables": variables or {},
        "content": {"email": {"subject": "Hello", "text": text}},
    }
    return api.post("/api/messages", json=payload, headers={"Idempotency-Key": key})


@pytest.mark.parametrize(("source", "variables"), [(s, {}) for s in CONSTANT_BOMBS[:4]] + RENDER_BOMBS)
def test_an_expensive_inline_message_is_refused_quickly_and_loses_nothing(
    api: TestClient, runtime: Runtime, source: str, variables: dict[str, Any]
) -> None:
    _contact(api, "ann@example.com")
    response, elapsed = _timed(lambda: _send(api, "bomb-1", source, variables))
    _assert_unsafe(response, elapsed)
    with runtime.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(messages)) == 0
    # The refusal kept nothing: the same key with a sane body is a first send, and the server still answers.
    fixed, elapsed = _timed(lambda: _send(api, "bomb-1", "Your order {{ order }} has shipped.", {"order": "A7"}))
    assert fixed.status_code == 202, fixed.text
    assert fixed.json()["status"] == "queued"
    assert elapsed < LIMIT_SECONDS


def test_ordinary_templates_still_render(api: TestClient) -> None:
    parts = {
        "email.subject": "Order {{ order.id }} for {{ contact.first_name|default('you') }}",
        "email.text": (
            "{% for item in order.items %}{{ loop.index }}. {{ item.name|title }} x{{ item.qty }}"
            " = {{ '%.2f' % (item.price * item.qty) }}\n{% endfor %}"
            "Total {{ order.items|length }} lines, {{ 2**10 }} points, {{ ['a', 'b']|join(', ') ~ '!' }}"
        ),
        "email.html": "<p>{{ ('=' * 20) ~ ' ' ~ order.note|replace('&', 'and')|center(30) }}</p>",
    }
    assert api.post("/api/templates", json={"id": "receipt", "parts": parts}).status_code == 201
    order = {
        "id": "A7",
        "note": "fish & chips",
        "items": [{"name": "tea", "qty": 2, "price": 1.5}, {"name": "cake", "qty": 1, "price": 3.25}],
    }
    payload = {
        "class": "transactional",
        "channels": ["email"],
        "email": "bob@example.com",
        "template_id": "receipt",
        "variables": {"order": order},
    }
    _contact(api, "bob@example.com")
    body = api.post("/api/messages", json=payload, headers={"Idempotency-Key": "r-1"}).json()
    assert body["status"] == "queued", body
