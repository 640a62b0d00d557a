"""Fixtures: every storage test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from herald.core.clock import FrozenClock
from herald.core.settings import Settings
from herald.db import migrate
from herald.db.engine import create_db_engine
from herald.db.runtime import Runtime
from tests.helpers import IN_CI

ENGINES = ["sqlite", "postgres"]
# One template per test run, so runs from several checkouts can share one PostgreSQL server.
TEMPLATE_DB = f"herald_test_template_{os.getpid()}"


def pg_admin_url() -> str | None:
    return os.environ.get("HERALD_TEST_PG_URL")


def _require_pg() -> str:
    url = pg_admin_url()
    if url:
        return url
    if IN_CI:
        pytest.fail("HERALD_TEST_PG_URL is not set: PostgreSQL is required in CI (run scripts/services.sh).")
    pytest.skip("PostgreSQL not configured (HERALD_TEST_PG_URL); `make test` starts one")


def _pg_exec(admin_url: str, *statements: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    # Fold the WAL into the main file so a plain copy is a complete database.
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


_pg_template_ready: list[bool] = []


def _pg_template(admin_url: str) -> None:
    if _pg_template_ready:
        return
    _pg_exec(admin_url, f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE_DB}")
    engine = create_db_engine(make_url(admin_url).set(database=TEMPLATE_DB).render_as_string(False))
    migrate.upgrade(engine)
    engine.dispose()
    _pg_template_ready.append(True)


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_template() -> Iterator[None]:
    yield
    admin = pg_admin_url()
    if admin and _pg_template_ready:
        _pg_exec(admin, f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")


def fresh_database_url(kind: str, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """Yield the URL of a new, migrated, empty database of the given kind; drop it afterwards."""
    if kind == "sqlite":
        path = tmp_path / f"herald-{uuid.uuid4().hex[:8]}.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    admin = _require_pg()
    _pg_template(admin)
    name = f"herald_t_{uuid.uuid4().hex[:12]}"
    _pg_exec(admin, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    try:
        yield make_url(admin).set(database=name).render_as_string(False)
    finally:
        _pg_exec(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def empty_database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new database with no tables at all (for migration and restore tests)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'empty-{uuid.uuid4().hex[:8]}.db'}"
        return
    admin = _require_pg()
    name = f"herald_e_{uuid.uuid4().hex[:12]}"
    _pg_exec(admin, f"CREATE DATABASE {name}")
    try:
        yield make_url(admin).set(database=name).render_as_string(False)
    finally:
        _pg_exec(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=ENGINES)
def db_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def db_url(db_kind: str, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    yield from fresh_database_url(db_kind, tmp_path, sqlite_template)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = create_db_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC))


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, default_region="US", import_workers=1)


@pytest.fixture
def runtime(settings: Settings, engine: sa.Engine, clock: FrozenClock) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Runtime(settings=settings, engine=engine, clock=clock)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for running the CLI (in-process or as a subprocess) against this test's database."""
    env = {
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_DATABASE_URL": settings.resolved_database_url,
        "HERALD_DEFAULT_REGION": "US",
        "HERALD_IMPORT_WORKERS": "1",
        "CI": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def api_key(engine: sa.Engine, clock: FrozenClock) -> str:
    from herald.apikeys.service import create_key
    from herald.core.actor import SYSTEM
    from tests.helpers import in_unit

    return in_unit(engine, clock, SYSTEM, create_key, "tests").secret


@pytest.fixture
def job_runner(runtime: Runtime) -> Iterator[None]:
    """A job thread as `herald worker` runs it (imports, scans, backups), without deliveries or events."""
    import threading

    from herald.jobs.kinds import job_kinds
    from herald.jobs.runner import run_jobs_until

    stop = threading.Event()
    thread = threading.Thread(target=run_jobs_until, args=(runtime, job_kinds(), stop), kwargs={"poll": 0.05})
    thread.start()
    yield
    stop.set()
    thread.join(timeout=60)


@pytest.fixture
def api(runtime: Runtime, api_key: str, job_runner: None) -> Iterator[object]:
    """An authenticated TestClient against the real app on this test's database; queued jobs run beside it."""
    from fastapi.testclient import TestClient

    from herald.api.app import create_app

    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {api_key}"}) as client:
        yield client
