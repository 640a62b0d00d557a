"""The simulator's auth token is this installation's own random secret: never a public default."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from herald.channels.simulator import DEFAULT_ACCOUNT_SID
from herald.core.settings import Settings
from herald.db.engine import create_db_engine
from herald.db.runtime import Runtime
from herald.delivery.bootstrap import build_registry, simulator_auth_token, twilio_settings
from herald.delivery.settings import DeliverySettings
from tests.conftest import fresh_database_url

HERALD = str(Path(sys.executable).with_name("herald"))
OLD_PUBLIC_TOKEN = "simulator-auth-token"  # the default every installation used to share
MESSAGES = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
SMS = {"To": "+12125550100", "From": "+15005550006", "Body": "hi"}


@pytest.fixture(autouse=True)
def _no_twilio_account(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACCOUNT_SID", "AUTH_TOKEN", "BASE_URL"):
        monkeypatch.delenv(f"HERALD_TWILIO_{name}", raising=False)


def test_two_fresh_installations_get_different_tokens(db_kind: str, tmp_path: Path, sqlite_template: Path) -> None:
    tokens = []
    for _ in range(2):
        with contextlib.contextmanager(fresh_database_url)(db_kind, tmp_path, sqlite_template) as url:
            engine = create_db_engine(url)
            try:
                first = simulator_auth_token(engine)
                assert simulator_auth_token(engine) == first  # made once, then kept
                tokens.append(first)
            finally:
                engine.dispose()
    assert tokens[0] != tokens[1]
    assert all(len(token) == 64 and OLD_PUBLIC_TOKEN not in token for token in tokens)


def test_the_embedded_simulator_and_the_adapter_share_the_installation_token(runtime: Runtime) -> None:
    token = simulator_auth_token(runtime.engine)
    delivery = DeliverySettings()
    assert twilio_settings(runtime, delivery).auth_token.get_secret_value() == token  # callbacks are verified with it
    providers = build_registry(runtime, delivery)
    try:
        assert providers.simulator_url is not None
        with httpx.Client(base_url=providers.simulator_url, timeout=10) as client:
            refused = client.post(MESSAGES, data=SMS, auth=(DEFAULT_ACCOUNT_SID, OLD_PUBLIC_TOKEN))
            assert refused.status_code == 401 and refused.json()["code"] == 20003
            accepted = client.post(MESSAGES, data=SMS, auth=(DEFAULT_ACCOUNT_SID, token))
            assert accepted.status_code == 201, accepted.text
    finally:
        asyncio.run(providers.aclose())


def test_an_explicit_token_wins_over_the_installation_token(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_TWILIO_AUTH_TOKEN", "configured-token-1234")
    assert twilio_settings(runtime, DeliverySettings()).auth_token.get_secret_value() == "configured-token-1234"


def _first_lines(env: dict[str, str], *args: str) -> list[str]:
    proc = subprocess.Popen(
        [HERALD, "simulator", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the "database: …" line every data command prints
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip(), proc.stdout.readline().strip()]
        base = lines[0].removeprefix("Simulator listening on ").split(" ")[0]
        assert base.startswith("http://127.0.0.1:"), lines
        refused = httpx.post(base + MESSAGES, data=SMS, auth=(DEFAULT_ACCOUNT_SID, OLD_PUBLIC_TOKEN), timeout=10)
        assert refused.status_code == 401
        return lines
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_herald_simulator_says_where_its_token_comes_from(
    runtime: Runtime, cli_env: dict[str, str], settings: Settings
) -> None:
    env = {**os.environ, **cli_env}
    token = simulator_auth_token(runtime.engine)
    lines = _first_lines(env)
    assert "this installation's" in lines[1] and "simulator_auth_token" in lines[1]
    assert token not in "\n".join(lines)  # where it comes from, never the secret itself
    lines = _first_lines(env, "--auth-token", "a-token-for-this-test")
    assert lines[1] == "auth token: from --auth-token"
    weak = subprocess.run([HERALD, "simulator", "--auth-token", "short"], env=env, capture_output=True, text=True)
    assert weak.returncode == 2 and "at least 16 characters" in weak.stderr


def test_no_literal_default_token_is_left_in_the_code() -> None:
    source = Path(__file__).parents[2] / "src" / "herald"
    offenders = [str(p) for p in source.rglob("*.py") if OLD_PUBLIC_TOKEN in p.read_text(encoding="utf-8")]
    assert offenders == []
