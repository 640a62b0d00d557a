"""Every error has its documented status and shape: JSON under /api, the styled page on the web."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

import herald
from herald.api.app import create_app
from herald.api.errors import COMMON_ERROR_STATUSES
from herald.core.errors import HeraldError
from herald.core.inputs import INT64_MAX, INT64_MIN, InputModel
from herald.db.runtime import Runtime

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def all_subclasses(cls: type[HeraldError]) -> Iterator[type[HeraldError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def every_herald_error() -> list[type[HeraldError]]:
    """Import every module so each HeraldError subclass is defined, wherever it lives."""
    for info in pkgutil.walk_packages(herald.__path__, "herald."):
        if info.name != "herald.db.migrations.env":  # Alembic's script, only importable under Alembic
            importlib.import_module(info.name)
    return [HeraldError, *all_subclasses(HeraldError)]


def documented_statuses() -> dict[str, int]:
    """code → status from the first table of docs/errors.md (the errors Herald raises on purpose)."""
    section = DOCS.read_text().split("## Codes and statuses", 1)[1].split("Errors that come from HTTP", 1)[0]
    return {code: int(status) for code, status in re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", section, re.M)}


def raising_app(runtime: Runtime, classes: list[type[HeraldError]]) -> FastAPI:
    """The real app plus one route per class under /api and on the web, each raising that class."""
    app = create_app(runtime)
    by_name = {cls.__name__: cls for cls in classes}

    def boom(name: str) -> None:
        raise by_name[name](f"{name} raised on purpose")

    app.add_api_route("/api/raise/{name}", boom)
    app.add_api_route("/raise/{name}", boom)
    return app


def test_every_herald_error_maps_to_its_documented_status_in_the_api_and_on_the_web(runtime: Runtime) -> None:
    classes = every_herald_error()
    assert len(classes) >= 17
    documented = documented_statuses()
    client = TestClient(raising_app(runtime, classes), headers={"Authorization": "Bearer nope"})
    for cls in classes:
        assert cls.code in documented, f"{cls.__qualname__} ({cls.code}) is missing from docs/errors.md"
        assert cls.http_status == documented[cls.code], cls
        page = client.get(f"/raise/{cls.__name__}")
        assert page.status_code == cls.http_status, cls
        assert page.headers["content-type"].startswith("text/html")
        assert f"{cls.__name__} raised on purpose" in page.text


def test_the_api_answers_each_class_with_its_status_code_and_retry_after(runtime: Runtime, api_key: str) -> None:
    classes = every_herald_error()
    client = TestClient(raising_app(runtime, classes), headers={"Authorization": f"Bearer {api_key}"})
    for cls in classes:
        response = client.get(f"/api/raise/{cls.__name__}")
        assert response.status_code == cls.http_status, cls
        assert response.json()["error"]["code"] == cls.code
    full = client.get("/api/raise/StorageUnavailableError")
    assert full.status_code == 503 and int(full.headers["Retry-After"]) > 0
    assert client.get("/api/raise/UnauthorizedError").headers["WWW-Authenticate"] == "Bearer"


def test_unknown_paths_wrong_methods_and_missing_keys_answer_in_the_shape(api: Any) -> None:
    missing = api.get("/api/no-such-thing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found" and "/api/no-such-thing" in missing.json()["error"]["message"]
    wrong = api.delete("/api/contacts")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["Allow"]
    anonymous = api.get("/api/contacts", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    # An HTML-preferring client still gets JSON under /api, and a web URL never gets JSON.
    assert api.get("/api/nope", headers={"Accept": "text/html"}).json()["error"]["code"] == "not_found"
    page = api.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Not Found" in page.text and "<html" in page.text


def test_an_unexpected_failure_answers_500_in_the_shape_and_logs_the_traceback(
    runtime: Runtime, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(runtime)

    def broken() -> None:
        raise RuntimeError("a bug, deliberately")

    app.add_api_route("/api/broken", broken)
    app.add_api_route("/broken", broken)
    client = TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {api_key}"})
    with caplog.at_level(logging.ERROR, logger="herald.api.errors"):
        response = client.get("/api/broken")
        page = client.get("/broken")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "deliberately" not in response.text  # the details stay in the log
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    logged = [r for r in caplog.records if r.exc_info and "a bug, deliberately" in str(r.exc_info[1])]
    assert len(logged) == 2


def test_the_openapi_document_lists_the_error_responses_of_every_route(api: Any) -> None:
    document = api.get("/openapi.json").json()
    error_ref = "#/components/schemas/ErrorBody"
    assert "ErrorBody" in document["components"]["schemas"]
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        if path.startswith("/api/")
        for method, operation in methods.items()
    ]
    assert len(operations) >= 20
    for path, method, operation in operations:
        responses = operation["responses"]
        expected = {str(s) for s in COMMON_ERROR_STATUSES} | ({"404"} if "{" in path else set())
        assert expected <= responses.keys(), (method, path, sorted(responses))
        for status in expected:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": error_ref}, (method, path, status)


def route_params(dependant: Dependant) -> Iterator[ModelField]:
    yield from (*dependant.path_params, *dependant.query_params, *dependant.body_params)
    for sub in dependant.dependencies:
        yield from route_params(sub)


def accepts(field: ModelField, value: Any) -> bool:
    return not field.validate(value, {}, loc=("test",))[1]


def every_route() -> Iterator[APIRoute]:
    """Each route of every API routes module and web views module (the routers the app includes)."""
    import herald.api.routes
    import herald.web

    for package in (herald.api.routes, herald.web):
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for router in [v for v in vars(module).values() if isinstance(v, APIRouter)]:
                yield from (r for r in router.routes if isinstance(r, APIRoute))


def test_every_route_input_is_bounded_and_refuses_nul() -> None:
    """A guard for routes added later: every int input refuses 2**63, every text input refuses NUL."""
    checked = 0
    for route in every_route():
        for field in route_params(route.dependant):
            where = (sorted(route.methods), route.path, field.name)
            model = field.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):
                assert issubclass(model, InputModel), where
            elif accepts(field, "1"):  # an int or a text parameter (multipart files are neither)
                takes_text = accepts(field, "a")
                assert not accepts(field, "a\x00b" if takes_text else str(INT64_MAX + 1)), where
                if not takes_text:
                    assert not accepts(field, str(INT64_MIN - 1)), where
                checked += 1
    assert checked >= 25
