"""/docs works without internet: the page names only local URLs and the vendored assets are the recorded ones."""

from __future__ import annotations

import hashlib
import re

from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.api.docs import STATIC_DIR, SWAGGER_UI_VERSION
from herald.db.runtime import Runtime


def _recorded_checksums() -> dict[str, tuple[str, str]]:
    lines = (STATIC_DIR / "CHECKSUMS").read_text().splitlines()
    rows = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {row[1]: (row[0], row[2]) for row in rows}


def test_every_vendored_asset_matches_its_recorded_sha256() -> None:
    recorded = _recorded_checksums()
    assert set(recorded) == {
        "swagger-ui/swagger-ui-bundle.js",
        "swagger-ui/swagger-ui.css",
        "swagger-ui/favicon-32x32.png",
    }
    for path, (digest, origin) in recorded.items():
        assert hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest() == digest, path
        assert origin == f"swagger-ui-dist@{SWAGGER_UI_VERSION}"
    assert (
        f'PACKAGE_VERSION:"{SWAGGER_UI_VERSION}"'.encode()
        in (STATIC_DIR / "swagger-ui/swagger-ui-bundle.js").read_bytes()
    )


def test_docs_page_refers_only_to_this_server(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert re.findall(r"(?:https?:)?//[^\s\"'<>]+", page.text) == []  # no absolute URL to any host
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert sorted(referenced) == [
        "/docs/assets/favicon-32x32.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
    ]
    assert '"validatorUrl": null' in page.text  # no spec sent to validator.swagger.io
    recorded = _recorded_checksums()
    for url in referenced:
        response = client.get(url)
        assert response.status_code == 200, url
        if url.startswith("/docs/assets/"):
            name = "swagger-ui/" + url.rsplit("/", 1)[1]
            assert hashlib.sha256(response.content).hexdigest() == recorded[name][0], url
    # FastAPI's CDN-backed pages are gone, not shadowing ours.
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 404
