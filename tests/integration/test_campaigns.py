"""Campaigns through the API on both engines: launch once per person, simulation = launch, controls, caps, input."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.campaigns import launch
from herald.core.actor import SYSTEM
from herald.core.clock import FrozenClock
from herald.db.auth_tables import audit_log
from herald.db.delivery_tables import message_attempts, messages
from herald.db.runtime import Runtime
from herald.delivery.settings import DeliverySettings
from herald.segments.service import create_segment
from tests.helpers import in_unit, wait_for_job

TEMPLATE = {
    "id": "winter-sale",
    "parts": {"email.subject": "Hello {{ first_name }}", "email.text": "Dear {{ first_name }}, {{ city }} awaits."},
    "variables": {"city": "your city"},
}


def _contact(api: TestClient, **fields: Any) -> int:
    response = api.post("/api/contacts", json=fields)
    assert response.status_code in (200, 201), response.text
    return int(response.json()["id"])


def _segment(runtime: Runtime, definition: dict[str, Any], name: str = "everyone") -> int:
    return in_unit(runtime.engine, runtime.clock, SYSTEM, create_segment, name, definition).id


def _template(api: TestClient, template: dict[str, Any] = TEMPLATE) -> None:
    assert api.post("/api/templates", json=template).status_code == 201


def _campaign(api: TestClient, segment_id: int, **extra: Any) -> dict[str, Any]:
    body = {"name": "Winter sale", "template_id": "winter-sale", "segment_id": segment_id, "channels": ["email"]}
    response = api.post("/api/campaigns", json=body | extra)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _launch(api: TestClient, campaign_id: int) -> dict[str, Any]:
    response = api.post(f"/api/campaigns/{campaign_id}/launch")
    assert response.status_code == 202, response.text
    job = wait_for_job(api, response.json()["job_id"])
    assert job["status"] == "done", job
    return job


def _rows(runtime: Runtime, campaign_id: int) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        query = sa.select(messages).where(messages.c.campaign_id == campaign_id).order_by(messages.c.person_id)
        return [dict(r) for r in conn.execute(query).mappings()]


def _subscribed(api: TestClient, email: str, **fields: Any) -> int:
    return _contact(api, emails=[email], consent={"email": "subscribed"}, **fields)


EVERYONE: dict[str, Any] = {"all": []}
LONDON = "Europe/London"


def test_a_person_matched_twice_and_added_again_gets_one_message(api: TestClient, runtime: Runtime) -> None:
    _template(api)
    ann = _subscribed(api, "ann@example.com", first_name="Ann", timezone=LONDON, tags=["vip", "beta"])
    bob = _subscribed(api, "bob@example.com", first_name="Bob", timezone=LONDON, tags=["beta"])
    # Ann matches both branches of the `any`: the frozen audience keeps her once.
    either = {"any": [{"type": "tag", "tag": "vip"}, {"type": "tag", "tag": "beta"}]}
    campaign = _campaign(api, _segment(runtime, either))
    _launch(api, campaign["id"])
    rows = _rows(runtime, campaign["id"])
    assert [r["person_id"] for r in rows] == [ann, bob]
    assert {r["message_key"] for r in rows} == {f"campaign:{campaign['id']}"}
    assert rows[0]["content"] == {} and rows[0]["variables"]["first_name"] == "Ann"
    assert rows[0]["template_id"] == "winter-sale" and rows[0]["template_version"] == 1

    # A second launch is refused; "send to newcomers" adds only people not in the set.
    assert api.post(f"/api/campaigns/{campaign['id']}/launch").status_code == 409
    cat = _subscribed(api, "cat@example.com", first_name="Cat", timezone=LONDON, tags=["vip"])
    queued = api.post(f"/api/campaigns/{campaign['id']}/newcomers")
    assert queued.status_code == 202, queued.text
    assert wait_for_job(api, queued.json()["job_id"])["status"] == "done"
    again = api.post(f"/api/campaigns/{campaign['id']}/newcomers")
    assert wait_for_job(api, again.json()["job_id"])["status"] == "done"
    rows = _rows(runtime, campaign["id"])
    assert [r["person_id"] for r in rows] == [ann, bob, cat]
    body = api.get(f"/api/campaigns/{campaign['id']}").json()
    assert body["recipients"] == 3 and body["status"] == "running"
    progress = api.get(f"/api/campaigns/{campaign['id']}/progress").json()
    assert progress["planned"] == 3 and progress["by_status"] == {"queued": 3}


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> Iterator[None]:
    """One marketing message per person per day, across every campaign (set before the runtime reads it)."""
    monkeypatch.setenv("HERALD_DELIVERY_CAPS", "*:marketing:1:86400:hold")
    monkeypatch.setenv("HERALD_DEFAULT_TIMEZONE", "America/Chicago")
    runtime.part(DeliverySettings, DeliverySettings)
    yield


@pytest.mark.parametrize("chunk", [launch.CHUNK, 2], ids=["one_chunk", "planned_ahead"])
def test_what_launch_writes_equals_the_simulation_person_by_person(
    capped: None, api: TestClient, runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # With chunks of 2 the launch plans each next chunk on its second connection while one is written:
    # pacing ordinals, caps and quiet hours must come out the same as the simulation's single pass.
    monkeypatch.setattr(launch, "CHUNK", chunk)
    planned_in: list[str] = []  # the thread that planned each chunk the launch wrote
    real_plan_chunk = launch.plan_chunk

    def recording_plan_chunk(*args: Any, **kwargs: Any) -> Any:
        planned_in.append(threading.current_thread().name)
        return real_plan_chunk(*args, **kwargs)

    monkeypatch.setattr(launch, "plan_chunk", recording_plan_chunk)
    _template(api)
    people = {
        "ready": _subscribed(api, "ready@example.com", first_name="Rea", timezone=LONDON),
        "night": _subscribed(api, "night@example.com", first_name="Nia", timezone="Asia/Tokyo"),  # 21:00 there
        "no_name": _subscribed(api, "noname@example.com", timezone=LONDON),
        "no_consent": _contact(api, emails=["nc@example.com"], first_name="Nic", timezone=LONDON),
        "no_email": _contact(api, phones=["+14155550188"], first_name="Pho", timezone=LONDON),
        "no_zone": _subscribed(api, "nozone@example.com", first_name="Zed"),
        "capped": _subscribed(api, "capped@example.com", first_name="Cap", timezone=LONDON),
    }
    # The capped person already had a marketing message today (another campaign, or the API).
    sent = api.post(
        "/api/messages",
        json={
            "contact_id": people["capped"],
            "channels": ["email"],
            "class": "marketing",
            "content": {"email": {"subject": "Earlier", "text": "An earlier message."}},
        },
        headers={"Idempotency-Key": "earlier"},
    )
    assert sent.status_code == 202, sent.text
    campaign = _campaign(
        api, _segment(runtime, EVERYONE), send_rate=600, schedule={"kind": "now", "spread_minutes": 30}
    )
    simulated = api.get(f"/api/campaigns/{campaign['id']}/simulation", params={"per_page": 100}).json()
    assert simulated["audience"] == "segment" and simulated["total"] == len(people)
    _launch(api, campaign["id"])
    ahead = [name for name in planned_in if name.startswith("launch-plan-ahead")]
    # 7 people: one chunk planned in place; in chunks of 2, the first in place and the other three ahead.
    assert (len(planned_in), len(ahead)) == ((1, 0) if chunk > len(people) else (4, 3)), planned_in
    written = {r["person_id"]: r for r in _rows(runtime, campaign["id"])}
    by_person = {r["person_id"]: r for r in simulated["rows"]}
    assert set(written) == set(by_person) == set(people.values())
    for person_id, sim in by_person.items():
        row = written[person_id]
        assert (row["status"], row["hold_reason"]) == (sim["status"], sim["reason"]), (person_id, sim, row)
        if sim["outcome"] in ("send", "hold"):
            assert row["channels"][0] == sim["channel"]
            assert row["available_at"] == dt.datetime.fromisoformat(sim["send_at"]), (person_id, sim)
    outcome = {name: by_person[pid] for name, pid in people.items()}
    assert outcome["ready"]["outcome"] == "send"
    assert outcome["night"]["reason"] == "quiet_hours" and outcome["night"]["quiet_until"]
    assert outcome["no_name"]["reason"] == "missing_variable:first_name"
    assert outcome["no_consent"]["reason"] == "no_consent"
    assert outcome["no_email"]["reason"] == "no_address"
    assert outcome["capped"]["reason"] == "capped_hold"
    assert outcome["no_zone"]["zone"] == "America/Chicago" and outcome["no_zone"]["zone_note"]
    # 12:00Z is 21:00 in Tokyo and 06:00 in Chicago (the account zone): both wait for their morning.
    assert outcome["no_zone"]["reason"] == "quiet_hours"
    assert simulated["by_outcome"] == {"send": 1, "hold": 4, "skip": 2}
    assert simulated["by_reason"] == {
        "quiet_hours": 2, "missing_variable": 1, "capped_hold": 1, "no_consent": 1, "no_address": 1,
    }  # fmt: skip
    assert simulated["by_channel"] == {"email": 4}  # the send, the two quiet-hours holds and the capped hold
    # Spread and pacing: a start somewhere in the 30-minute window, never before now.
    ready = dt.datetime.fromisoformat(outcome["ready"]["send_at"])
    assert clock.now() <= ready <= clock.now() + dt.timedelta(minutes=31)

    # After launch the simulation reads the frozen set and says each person already has the message.
    again = api.get(f"/api/campaigns/{campaign['id']}/simulation").json()
    assert again["audience"] == "frozen" and again["by_outcome"] == {"duplicate": len(people)}


def test_a_frequency_cap_spans_campaigns(capped: None, api: TestClient, runtime: Runtime) -> None:
    _template(api)
    person = _subscribed(api, "twice@example.com", first_name="Tia", timezone=LONDON)
    segment = _segment(runtime, EVERYONE)
    first = _campaign(api, segment)
    _launch(api, first["id"])
    second = _campaign(api, segment, name="Second")
    _launch(api, second["id"])
    (one,) = _rows(runtime, first["id"])
    (two,) = _rows(runtime, second["id"])
    assert one["person_id"] == two["person_id"] == person
    assert one["status"] == "queued"
    assert (two["status"], two["hold_reason"], two["releasable"]) == ("held", "capped_hold", True)
    assert two["available_at"] >= one["available_at"] + dt.timedelta(days=1)
    # Transactional campaigns are exempt unless configured.
    third = _campaign(api, segment, name="Receipt", message_class="transactional")
    _launch(api, third["id"])
    (receipt,) = _rows(runtime, third["id"])
    assert receipt["status"] == "queued"


def _audits(runtime: Runtime, campaign_id: int) -> list[str]:
    with runtime.engine.connect() as conn:
        query = sa.select(audit_log.c.action).where(
            audit_log.c.target_id == campaign_id, audit_log.c.target == "campaign"
        )
        return list(conn.execute(query.order_by(audit_log.c.id)).scalars())


def test_pause_resume_cancel_move_rows_set_based_and_are_audited(api: TestClient, runtime: Runtime) -> None:
    _template(api)
    for name in ("ann", "bob", "cat"):
        _subscribed(api, f"{name}@example.com", first_name=name.title(), timezone=LONDON)
    _subscribed(api, "night@example.com", first_name="Nia", timezone="Asia/Tokyo")
    campaign = _campaign(api, _segment(runtime, EVERYONE))
    cid = campaign["id"]
    _launch(api, cid)
    before = {r["id"]: r for r in _rows(runtime, cid)}
    paused = api.post(f"/api/campaigns/{cid}/pause").json()
    assert paused["changed"] == 4 and paused["campaign"]["status"] == "paused"
    rows = _rows(runtime, cid)
    assert {r["hold_reason"] for r in rows} == {"paused:queued", "paused:held:quiet_hours"}
    assert not any(r["releasable"] for r in rows)
    assert api.post(f"/api/campaigns/{cid}/pause").status_code == 409
    resumed = api.post(f"/api/campaigns/{cid}/resume").json()
    assert resumed["changed"] == 4 and resumed["campaign"]["status"] == "running"
    for row in _rows(runtime, cid):
        old = before[row["id"]]
        assert (row["status"], row["hold_reason"], row["releasable"], row["available_at"]) == (
            old["status"], old["hold_reason"], old["releasable"], old["available_at"],
        )  # fmt: skip
    cancelled = api.post(f"/api/campaigns/{cid}/cancel").json()
    assert cancelled["changed"] == 4 and cancelled["campaign"]["status"] == "cancelled"
    assert {(r["status"], r["hold_reason"]) for r in _rows(runtime, cid)} == {("held", "cancelled")}
    assert api.post(f"/api/campaigns/{cid}/resume").status_code == 409
    held = api.get(f"/api/campaigns/{cid}/held", params={"per_page": 2}).json()
    assert held["total"] == 4 and len(held["rows"]) == 2 and held["rows"][0]["reason"] == "cancelled"
    assert _audits(runtime, cid) == [
        "campaign.created", "campaign.launched", "campaign.planned", "campaign.paused", "campaign.resumed",
        "campaign.cancelled",
    ]  # fmt: skip


def test_retry_failed_takes_only_rows_no_provider_accepted(api: TestClient, runtime: Runtime) -> None:
    _template(api)
    for name in ("ann", "bob", "cat", "dan"):
        _subscribed(api, f"{name}@example.com", first_name=name.title(), timezone=LONDON)
    cid = _campaign(api, _segment(runtime, EVERYONE))["id"]
    _launch(api, cid)
    ann, bob, cat, dan = _rows(runtime, cid)
    now = runtime.clock.now()
    attempt_status = {ann["id"]: "rejected", bob["id"]: "retry", cat["id"]: "failed", dan["id"]: "unknown"}
    with runtime.engine.begin() as conn:
        for message_id, status in attempt_status.items():
            conn.execute(sa.update(messages).where(messages.c.id == message_id).values(status="failed", status_rank=40))
            conn.execute(
                message_attempts.insert().values(
                    message_id=message_id,
                    number=1,
                    reference=f"ref-{message_id}",
                    channel="email",
                    provider="smtp",
                    status=status,
                    status_rank=10,
                    lease_token=1,
                    started_at=now,
                    updated_at=now,
                )
            )
    result = api.post(f"/api/campaigns/{cid}/retry-failed").json()
    assert result["changed"] == 2
    after = {r["id"]: r["status"] for r in _rows(runtime, cid)}
    assert after == {ann["id"]: "queued", bob["id"]: "queued", cat["id"]: "failed", dan["id"]: "failed"}
    assert "campaign.retried_failed" in _audits(runtime, cid)


def test_a_launch_killed_mid_way_resumes_without_duplicates(
    runtime: Runtime, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from herald.jobs import runner
    from herald.jobs.kinds import job_kinds

    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {api_key}"}) as client:  # no job thread
        _template(client)
        ids = [_subscribed(client, f"p{i}@example.com", first_name=f"P{i}", timezone=LONDON) for i in range(11)]
        cid = _campaign(client, _segment(runtime, EVERYONE))["id"]
        job_id = client.post(f"/api/campaigns/{cid}/launch").json()["job_id"]
        monkeypatch.setattr(launch, "CHUNK", 3)

        class Killed(BaseException):
            """Stands for SIGKILL: not an Exception, so the runner cannot record the job as failed."""

        real = runner.JobRun.checkpoint
        calls = {"n": 0}

        def dying_checkpoint(self: runner.JobRun, conn: sa.Connection, done: int, total: int | None = None) -> None:
            real(self, conn, done, total)
            calls["n"] += 1
            if calls["n"] == 3:  # the freeze and two chunks are committed; the third chunk dies with its work
                raise Killed

        monkeypatch.setattr(runner.JobRun, "checkpoint", dying_checkpoint)
        with pytest.raises(Killed):
            runner.run_next_job(runtime, job_kinds())
        monkeypatch.setattr(runner.JobRun, "checkpoint", real)
        assert len(_rows(runtime, cid)) == 3  # the freeze's checkpoint, then one committed chunk of 3
        job = client.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "running" and job["progress"]["done"] == 3

        assert isinstance(runtime.clock, FrozenClock)
        runtime.clock.advance(dt.timedelta(seconds=runtime.settings.job_lease_seconds + 1))
        assert runner.run_next_job(runtime, job_kinds())
        job = client.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "done" and job["attempts"] == 2, job
        rows = _rows(runtime, cid)
        assert sorted(r["person_id"] for r in rows) == sorted(ids)  # each person exactly once
        assert client.get(f"/api/campaigns/{cid}").json()["status"] == "running"


def test_coverage_counts_who_lacks_each_variable(api: TestClient, runtime: Runtime) -> None:
    _template(api)
    _subscribed(api, "ann@example.com", first_name="Ann", attributes={"city": "Leeds"})
    _subscribed(api, "bob@example.com", first_name="Bob")
    _subscribed(api, "anon@example.com")
    cid = _campaign(api, _segment(runtime, EVERYONE))["id"]
    report = api.get(f"/api/campaigns/{cid}/coverage").json()
    assert report["total"] == 3 and report["held"] == 1
    variables = {v["variable"]: v for v in report["variables"]}
    assert variables["first_name"]["missing"] == 1
    assert variables["first_name"]["line"] == "first_name missing for 1 (33 %) → held"
    assert variables["city"]["fallback_used"] == 2 and variables["city"]["fallback"] == "your city"


def test_bad_input_is_refused_with_422_and_state_errors_with_409(api: TestClient, runtime: Runtime) -> None:
    _template(api)
    segment = _segment(runtime, EVERYONE)
    base = {"name": "X", "template_id": "winter-sale", "segment_id": segment, "channels": ["email"]}
    for bad in (
        {"channels": []},
        {"channels": ["webhook"]},
        {"channels": ["email", "email"]},
        {"channels": ["pigeon"]},
        {"message_class": "spam"},
        {"schedule": {"kind": "later"}},
        {"schedule": {"kind": "local_time", "date": "2026-12-24", "time": "25:00"}},
        {"schedule": {"kind": "local_time", "date": "24/12/2026", "time": "09:00"}},
        {"schedule": {"kind": "at", "at": "2026-12-24T09:00:00"}},
        {"send_rate": 0},
        {"name": ""},
        {"segment_id": 2**63},
    ):
        response = api.post("/api/campaigns", json=base | bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] in ("invalid_input", "validation_error"), response.text
    assert api.post("/api/campaigns", json=base | {"template_id": "nope"}).status_code == 404
    assert api.get("/api/campaigns/99999").status_code == 404
    assert api.get("/api/campaigns", params={"status": "bogus"}).status_code == 422
    assert api.get("/api/campaigns/1/simulation", params={"per_page": 0}).status_code == 422
    cid = _campaign(api, segment)["id"]
    patched = api.patch(f"/api/campaigns/{cid}", json={"name": "Renamed", "send_rate": 60})
    assert patched.status_code == 200 and patched.json()["name"] == "Renamed" and patched.json()["send_rate"] == 60
    _launch(api, cid)
    assert api.patch(f"/api/campaigns/{cid}", json={"name": "Too late"}).status_code == 409
    listed = api.get("/api/campaigns", params={"status": "running"}).json()
    assert listed["total"] == 1 and listed["campaigns"][0]["id"] == cid


def test_a_pause_during_planning_stops_it_and_resume_carries_on(runtime: Runtime, api_key: str) -> None:
    from herald.jobs.kinds import job_kinds
    from herald.jobs.runner import run_queued_jobs

    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {api_key}"}) as client:  # no job thread
        _template(client)
        ids = [_subscribed(client, f"q{i}@example.com", first_name=f"Q{i}", timezone=LONDON) for i in range(5)]
        cid = _campaign(client, _segment(runtime, EVERYONE))["id"]
        first_job = client.post(f"/api/campaigns/{cid}/launch").json()["job_id"]
        paused = client.post(f"/api/campaigns/{cid}/pause").json()
        assert paused["changed"] == 0 and paused["campaign"]["status"] == "paused"
        run_queued_jobs(runtime, job_kinds())
        assert client.get(f"/api/jobs/{first_job}").json()["result"]["stopped"] == "paused"
        assert _rows(runtime, cid) == []  # nothing planned while paused
        resumed = client.post(f"/api/campaigns/{cid}/resume").json()
        assert resumed["campaign"]["status"] == "launching" and resumed["campaign"]["job_id"] != first_job
        run_queued_jobs(runtime, job_kinds())
        assert sorted(r["person_id"] for r in _rows(runtime, cid)) == sorted(ids)
        assert client.get(f"/api/campaigns/{cid}").json()["status"] == "running"


def test_a_campaign_is_stored_finished_once_nothing_is_left_to_send(api: TestClient, runtime: Runtime) -> None:
    from herald.campaigns.finisher import finish_settled

    _template(api)
    for name in ("ann", "bob"):
        _subscribed(api, f"{name}@example.com", first_name=name.title(), timezone=LONDON)
    cid = _campaign(api, _segment(runtime, EVERYONE))["id"]
    _launch(api, cid)
    assert finish_settled(runtime, force=True) == 0  # rows still queued
    assert api.get(f"/api/campaigns/{cid}").json()["status"] == "running"
    ann, bob = _rows(runtime, cid)
    with runtime.engine.begin() as conn:
        conn.execute(sa.update(messages).where(messages.c.id == ann["id"]).values(status="sent", status_rank=30))
        conn.execute(sa.update(messages).where(messages.c.id == bob["id"]).values(status="sending", status_rank=20))
    assert finish_settled(runtime, force=True) == 0  # one still in a worker's hands
    with runtime.engine.begin() as conn:
        conn.execute(sa.update(messages).where(messages.c.id == bob["id"]).values(status="failed", status_rank=40))
    assert finish_settled(runtime, force=True) == 1
    listed = api.get("/api/campaigns", params={"status": "finished"}).json()
    assert [c["id"] for c in listed["campaigns"]] == [cid]
    assert _audits(runtime, cid)[-1] == "campaign.finished"
    assert finish_settled(runtime) == 0  # the period has not passed: no second look
    assert api.post(f"/api/campaigns/{cid}/retry-failed").status_code == 200
    assert api.get(f"/api/campaigns/{cid}").json()["status"] == "running"


def test_a_segment_a_campaign_uses_cannot_be_deleted(api: TestClient, runtime: Runtime) -> None:
    _template(api)
    sid = _segment(runtime, EVERYONE)
    cid = _campaign(api, sid)["id"]
    refused = api.delete(f"/api/segments/{sid}")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "segment_in_use" and "Winter sale" in error["message"]
    assert api.get(f"/api/segments/{sid}").status_code == 200  # nothing was deleted
    assert api.post(f"/api/campaigns/{cid}/launch").status_code == 202  # the draft still launches
    unused = _segment(runtime, EVERYONE, name="spare")
    assert api.delete(f"/api/segments/{unused}").status_code == 200


def test_the_list_counts_every_campaign_in_one_read_with_the_same_result(api: TestClient, runtime: Runtime) -> None:
    from herald.campaigns import service

    _template(api)
    for name in ("ann", "bob", "cat"):
        _subscribed(api, f"{name}@example.com", first_name=name.title(), timezone=LONDON)
    everyone = _segment(runtime, EVERYONE)
    first = _campaign(api, everyone)["id"]
    _launch(api, first)
    api.post(f"/api/campaigns/{first}/pause")
    second = _campaign(api, everyone, message_class="transactional")["id"]
    _launch(api, second)
    draft = _campaign(api, everyone)["id"]
    found, _ = service.list_campaigns(runtime.engine)
    launched = [c for c in found if c.id != draft]
    together = service.campaigns_progress(runtime.engine, launched)
    assert together == {c.id: service.campaign_progress(runtime.engine, c.id) for c in launched}
    assert together[first].by_status != together[second].by_status  # paused rows are held, the others queued
