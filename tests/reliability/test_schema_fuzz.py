"""Hostile input: schemathesis drives every operation of the API's own OpenAPI schema, with
and without the key → no 5xx, every response conforms to the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from app.main import create_app
from telemetry import TelemetryConfig
from tests.conftest import BASE_URL, settings_for

KEY = "fuzz-key"


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "tb.db"
    app = create_app(settings_for(f"sqlite:///{path}", api_key=KEY), TelemetryConfig())
    with TestClient(app, base_url=BASE_URL) as client:
        # Something to find: known ids make the generated paths hit real rows too.
        client.post(
            "/api/v2/sessions",
            headers={"X-API-Key": KEY},
            json={"session_type": "impact_analysis", "project_path": "/p"},
        )
        yield app


FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def operations(app: object) -> list[object]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 12, found  # every route of the API, not a partial schema
    return found


def test_with_key_no_5xx_and_responses_match_the_schema(fuzzed_app: object) -> None:
    for operation in operations(fuzzed_app):

        @given(case=operation.as_strategy())  # type: ignore[attr-defined]
        @FUZZ
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(headers={"X-API-Key": KEY})
            case.validate_response(response)  # every built-in check, 5xx included

        fuzz()


def test_without_key_only_health_answers(fuzzed_app: object) -> None:
    for operation in operations(fuzzed_app):

        @given(case=operation.as_strategy())  # type: ignore[attr-defined]
        @FUZZ
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call()
            if case.path != "/health":
                assert response.status_code == 401, (case.method, case.path, response.status_code)
            assert response.status_code < 500

        fuzz()
