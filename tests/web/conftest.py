"""Fixtures for browser tests: a real `herald serve` subprocess per test and one Chromium per module."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.helpers import free_port

# Assertions wait as long as actions do: a loaded 2-core box can take more than 5 s for an undo or a merge.
expect.set_options(timeout=20_000)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def _wait_until_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60  # a generous start-up allowance, not a speed assertion
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"herald serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"herald serve did not become healthy:\n{log.read_text()}")


@pytest.fixture
def server(cli_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Base URL of `herald serve --no-worker` on this test's (already migrated) database, with a
    `herald worker --jobs-only` beside it: imports and scans run, nothing is delivered."""
    port = free_port()
    log = tmp_path / "serve.log"
    herald = Path(sys.executable).parent / "herald"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(herald), "serve", "--no-worker", "--port", str(port)],
            env={**os.environ, **cli_env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        jobs = subprocess.Popen(
            [str(herald), "worker", "--jobs-only"],
            env={**os.environ, **cli_env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, proc, log)
        yield url
    finally:
        for running in (proc, jobs):
            running.terminate()
        for running in (proc, jobs):
            try:
                running.wait(timeout=20)
            except subprocess.TimeoutExpired:
                running.kill()
                running.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium"), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
