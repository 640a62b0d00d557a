"""Every audited action, through every entry point that offers it, on SQLite and PostgreSQL: the service writes
the audit row in the change's transaction with the real actor — the signed-in operator (web), the API key (API)
or `cli` — and the audit page tells them apart."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.auth import users
from herald.auth.audit import CLI, AuditEntry, list_audit
from herald.contacts import dedupe, importing, service
from herald.core.clock import FrozenClock
from herald.db.runtime import Runtime
from tests.helpers import cli, in_unit
from tests.integration.test_messages_pages import sign_in

CSV = "email,first_name,last_name\nzoe@example.com,Zoe,Quinn\nyuri@example.com,Yuri,Gagarin\n"


@dataclass
class Ctx:
    runtime: Runtime
    api: TestClient
    web: TestClient
    tmp: Path
    survivor: int
    other: int
    suggestion: int

    @property
    def engine(self) -> sa.Engine:
        return self.runtime.engine

    @property
    def clock(self) -> FrozenClock:
        clock = self.runtime.clock
        assert isinstance(clock, FrozenClock)
        return clock

    def csrf(self) -> dict[str, str]:
        match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', self.web.get("/data").text)
        assert match is not None
        return {"X-CSRF-Token": match.group(1)}

    def merged(self) -> int:
        """A merge made beforehand (by the CLI actor), for the entry point under test to undo."""
        return in_unit(self.engine, self.clock, CLI, service.merge_contacts, self.survivor, self.other, reason="t")

    def finished_batch(self) -> int:
        path = self.tmp / "done.csv"
        path.write_text(CSV)
        report = importing.run_import(self.engine, self.clock, path, default_region="US")
        assert report.batch_id is not None
        return report.batch_id

    def upload(self) -> Path:
        path = self.tmp / "upload.csv"
        path.write_text(CSV)
        return path


def _wait_for_imports(engine: sa.Engine) -> None:
    """Imports started by the web or the API run beside the request: let them end before the test does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(b["status"] not in {"pending", "running"} for b in importing.list_batches(engine, limit=100)):
            return
        time.sleep(0.05)
    raise AssertionError("an import did not finish")


def _ok(response: Any) -> None:
    assert response.status_code < 400, (response.status_code, response.text[:500])


def _cli_ok(*args: str) -> None:
    result = cli(*args)
    assert result.exit_code == 0, result.output


# Each action: how each entry point does it (web, api, cli), and the audit action it must leave.
Do = Callable[[Ctx], None]
ACTIONS: dict[str, tuple[str, dict[str, Do]]] = {
    "merge": (
        "contacts.merged",
        {
            "web": lambda c: _ok(
                c.web.post(f"/duplicates/{c.suggestion}/merge", data={"survivor_id": str(c.survivor)}, headers=c.csrf())
            ),
            "api": lambda c: _ok(c.api.post("/api/merges", json={"survivor_id": c.survivor, "merged_id": c.other})),
            "cli": lambda c: _cli_ok("contacts", "merge", str(c.survivor), str(c.other)),
        },
    ),
    "unmerge": (
        "contacts.unmerged",
        {
            "web": lambda c: _ok(c.web.post(f"/duplicates/merges/{c.merged()}/unmerge", headers=c.csrf())),
            "api": lambda c: _ok(c.api.post(f"/api/merges/{c.merged()}/undo")),
            "cli": lambda c: _cli_ok("contacts", "unmerge", str(c.merged())),
        },
    ),
    "dismiss": (
        "contacts.suggestion_dismissed",
        {
            "web": lambda c: _ok(c.web.post(f"/duplicates/{c.suggestion}/dismiss", headers=c.csrf())),
            "api": lambda c: _ok(c.api.post(f"/api/duplicates/{c.suggestion}/dismiss")),
            "cli": lambda c: _cli_ok("contacts", "dismiss-suggestion", str(c.suggestion)),
        },
    ),
    "erase": (
        "contacts.erased",
        {
            "api": lambda c: _ok(c.api.delete(f"/api/contacts/{c.other}")),
            "cli": lambda c: _cli_ok("contacts", "erase", str(c.other), "--yes"),
        },
    ),
    "consent": (
        "consent.recorded",
        {
            "api": lambda c: _ok(
                c.api.post(f"/api/contacts/{c.other}/consent", json={"channel": "sms", "kind": "unsubscribed"})
            ),
            "cli": lambda c: _cli_ok("contacts", "consent", str(c.other), "--channel", "sms", "--kind", "unsubscribed"),
        },
    ),
    "export": (
        "export.created",
        {
            "web": lambda c: _ok(c.web.get("/data/export/people.csv")),
            "api": lambda c: _ok(c.api.get("/api/exports/contacts.csv")),
            "cli": lambda c: _cli_ok("contacts", "export", "--out", str(c.tmp / "out.csv")),
        },
    ),
    "import": (
        "import.started",
        {
            "web": lambda c: _ok(
                c.web.post(
                    "/imports",
                    data={"format": "auto", "region": "US"},
                    files={"file": ("contacts.csv", c.upload().read_bytes(), "text/csv")},
                    headers=c.csrf(),
                )
            ),
            "api": lambda c: _ok(
                c.api.post("/api/imports", files={"file": ("contacts.csv", c.upload().read_bytes(), "text/csv")})
            ),
            "cli": lambda c: _cli_ok("contacts", "import", str(c.upload())),
        },
    ),
    "undo": (
        "import.undone",
        {
            "web": lambda c: _ok(c.web.post(f"/imports/{c.finished_batch()}/undo", headers=c.csrf())),
            "api": lambda c: _ok(c.api.post(f"/api/imports/{c.finished_batch()}/undo")),
            "cli": lambda c: _cli_ok("contacts", "import-undo", str(c.finished_batch())),
        },
    ),
    "backup": (
        "backup.created",
        {
            "web": lambda c: _ok(c.web.post("/data/backups", headers=c.csrf())),
            "api": lambda c: _ok(c.api.post("/api/backups")),
            "cli": lambda c: _cli_ok("backup", "--out", str(c.tmp / "b.zip")),
        },
    ),
    "role": (
        "role.changed",
        {
            "web": lambda c: _ok(
                c.web.post(f"/admin/users/{_agent(c)}/role", data={"role": "marketer"}, headers=c.csrf())
            )
        },
    ),
    "2fa-reset": (
        "2fa.reset",
        {
            "web": lambda c: _ok(c.web.post(f"/admin/users/{_agent(c)}/reset-2fa", headers=c.csrf())),
            "cli": lambda c: _reset_2fa_cli(c),
        },
    ),
}
CASES = [(name, via) for name, (_, ways) in ACTIONS.items() for via in ways]


def _agent(c: Ctx) -> int:
    found = users.find_user(c.engine, "agent@example.com")
    if found is not None:
        return found.id
    root = users.find_user(c.engine, "root@example.com")
    assert root is not None
    made = in_unit(
        c.engine,
        c.clock,
        root.actor(),
        users.create_user,
        email="agent@example.com",
        password="violet-tundra-47-ladder",
        role="agent",
    )
    return made.id


def _reset_2fa_cli(c: Ctx) -> None:
    _agent(c)
    _cli_ok("users", "reset-2fa", "agent@example.com")


@pytest.fixture
def ctx(runtime: Runtime, api: TestClient, clock: FrozenClock, cli_env: dict[str, str], tmp_path: Path) -> Ctx:
    web = sign_in(runtime, clock, "admin")
    ids = []
    for email, first in (("anna.k0@firm0.example", "Anna"), ("akowalska0@firm0.example", "Ana")):
        made = api.post("/api/contacts", json={"emails": [email], "first_name": first, "last_name": "Kowalska00"})
        ids.append(made.json()["id"])
    dedupe.compute_suggestions(runtime.engine, clock)
    (suggestion,) = dedupe.list_suggestions(runtime.engine).items
    return Ctx(runtime, api, web, tmp_path, ids[0], ids[1], suggestion.id)


def _latest(engine: sa.Engine, action: str) -> AuditEntry:
    entries, _ = list_audit(engine, action=action, page_size=1)
    assert entries, f"no {action} audit row"
    return entries[0]


@pytest.mark.parametrize(("name", "via"), CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_each_action_is_audited_with_the_real_actor(ctx: Ctx, name: str, via: str) -> None:
    action, ways = ACTIONS[name]
    before, _ = list_audit(ctx.engine, action=action)
    ways[via](ctx)
    _wait_for_imports(ctx.engine)
    after, _ = list_audit(ctx.engine, action=action)
    assert len(after) == len(before) + 1, [e.actor for e in after]
    entry = _latest(ctx.engine, action)
    if via == "web":
        operator = users.find_user(ctx.engine, "admin@example.com")
        assert operator is not None
        assert (entry.actor, entry.actor_kind, entry.actor_id) == ("admin@example.com", "operator", operator.id)
        assert entry.ip is not None  # the request's address
    elif via == "api":
        assert (entry.actor, entry.actor_kind, entry.actor_id) == ("api key tests", "api_key", _key_id(ctx.engine))
    else:
        assert (entry.actor, entry.actor_kind, entry.actor_id) == ("cli", "cli", None)


def _key_id(engine: sa.Engine) -> int:
    from herald.apikeys.service import list_keys

    (key,) = list_keys(engine)
    return int(str(key["id"]))


def test_a_refused_change_leaves_no_audit_row(ctx: Ctx) -> None:
    """The audit row is part of the change: a merge the service refuses is not on the record."""
    missing = ctx.api.post("/api/merges", json={"survivor_id": ctx.survivor, "merged_id": 999_999})
    assert missing.status_code == 404
    again = ctx.api.delete(f"/api/contacts/{ctx.other}")
    assert again.status_code == 200
    assert ctx.api.delete(f"/api/contacts/{ctx.other}").status_code == 409
    assert [e.action for e in list_audit(ctx.engine, action="contacts.merged")[0]] == []
    assert len(list_audit(ctx.engine, action="contacts.erased")[0]) == 1


def test_the_audit_page_tells_operators_keys_and_the_cli_apart(ctx: Ctx) -> None:
    _ok(ctx.api.post(f"/api/duplicates/{ctx.suggestion}/dismiss"))
    _cli_ok("contacts", "export", "--out", str(ctx.tmp / "out.csv"))
    _ok(ctx.web.get("/data/export/people.csv"))
    page = ctx.web.get("/admin/audit").text
    kinds = re.findall(r'data-testid="actor-kind">\(([^)]*)\)', page)
    assert f"API key #{_key_id(ctx.engine)}" in kinds and "CLI" in kinds
    operator = users.find_user(ctx.engine, "admin@example.com")
    assert operator is not None and f"operator #{operator.id}" in kinds
