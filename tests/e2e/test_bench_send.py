"""`herald bench send` end to end at a tiny size: queue, drain with a real `herald worker`, count at the sink."""

from __future__ import annotations

import os
import re

import pytest

from tests.helpers import cli


@pytest.mark.parametrize("templated", [False, True], ids=["stored", "templated"])
def test_bench_send_prints_raw_drain_and_their_ratio(db_kind: str, templated: bool) -> None:
    args = ["bench", "send", "--count", "60", "--concurrency", "4"]
    if db_kind == "postgres":
        args += ["--pg-url", os.environ["HERALD_TEST_PG_URL"]]
    result = cli(*args, *(["--templated"] if templated else []))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "aiosmtpd counting sink" in out
    assert re.search(r"raw limit [^:]*:\s+[\d,]+ msgs/s", out)
    assert re.search(r"herald drain \(60 queued, .*\):\s+[\d,]+ msgs/s", out)
    assert ("rendered at claim" in out) is templated
    assert re.search(r"ratio drain / raw: \d+\.\d\d", out)
