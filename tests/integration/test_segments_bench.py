"""`herald bench segments` at a small size: it runs on both engines, and both count the same people."""

from __future__ import annotations

import re

import pytest

from tests.conftest import pg_admin_url
from tests.helpers import IN_CI, cli


def test_bench_counts_agree_across_engines() -> None:
    """Not per engine: the command itself runs both, each in a throwaway database of its own."""
    if not pg_admin_url():
        if IN_CI:
            pytest.fail("HERALD_TEST_PG_URL is not set: PostgreSQL is required in CI.")
        pytest.skip("PostgreSQL not configured (HERALD_TEST_PG_URL)")
    result = cli("bench", "segments", "--people", "2000", "--repeat", "1")
    assert result.exit_code == 0, result.stdout
    counts: dict[str, dict[str, int]] = {}
    engine = ""
    for line in result.stdout.splitlines():
        if line.startswith(("sqlite:", "postgres:")):
            engine = line.split(":")[0]
            counts[engine] = {}
        elif found := re.match(r"\s+(.+?)\s+[\d,]+ ms median, .*\(([\d,]+) people\)", line):
            counts[engine][found[1]] = int(found[2].replace(",", ""))
        elif found := re.match(r"\s+raw limit .*\(([\d,]+)\)", line):
            counts[engine]["raw"] = int(found[1].replace(",", ""))
    assert set(counts) == {"sqlite", "postgres"}
    assert set(counts["sqlite"]) == {"raw", "country + consent", "attribute + tag", "not-group", "created within"}
    # The same seeded population (fixed seed): the two engines' SQL must select the same people.
    assert counts["sqlite"] == counts["postgres"]
    assert 1800 < counts["sqlite"]["raw"] <= 2000
    assert all(0 < n < counts["sqlite"]["raw"] for k, n in counts["sqlite"].items() if k != "raw")
