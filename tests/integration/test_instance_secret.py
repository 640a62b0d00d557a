"""The per-installation secret is created once, even when first requests race for it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from herald.db.runtime import instance_secret


def test_concurrent_first_use_yields_one_secret(engine: sa.Engine) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        values = set(pool.map(lambda _: instance_secret(engine, "race"), range(16)))
    assert len(values) == 1 and len(values.pop()) == 64
    assert instance_secret(engine, "race") == instance_secret(engine, "race")
