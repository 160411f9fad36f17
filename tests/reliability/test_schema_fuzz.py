"""Hostile input: schemathesis drives every operation of the API's own OpenAPI schema, with
and without the key → no 5xx, every response conforms to the schema; then hand-made hostile
text (NUL, lone surrogates, over-long labels) and numbers (NaN, Infinity) in every field that
reaches the database. On SQLite and on PostgreSQL, which refuses values SQLite stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from telemetry import TelemetryConfig
from tests.conftest import BACKENDS, BASE_URL, fresh_database, settings_for

KEY = "fuzz-key"


@pytest.fixture(scope="module", params=BACKENDS)
def fuzzed_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    with fresh_database(request.param, directory) as url:
        yield from _served(create_app(settings_for(url, api_key=KEY), TelemetryConfig()))


def _served(app: FastAPI) -> Iterator[object]:
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


# Text as a hostile client writes it: any character, NUL and lone surrogates included (the
# generated schema cases never hold a surrogate), sometimes longer than a column.
HOSTILE_CHAR = st.one_of(st.characters(), st.sampled_from(["\x00", "\udfff", "\ud800"]))
HOSTILE_TEXT = st.one_of(
    st.lists(HOSTILE_CHAR, max_size=12).map("".join),  # st.text() would drop the surrogates
    st.text(st.sampled_from("ab\x00"), min_size=30, max_size=300),
)
HOSTILE_SCALAR = st.one_of(
    HOSTILE_TEXT, st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.none()
)


def post_json(client: TestClient, path: str, body: object) -> int:
    # json.dumps writes lone surrogates as `\\udfff` and NaN as `NaN`: JSON Python accepts.
    response = client.post(
        path,
        content=json.dumps(body).encode(),
        headers={"X-API-Key": KEY, "content-type": "application/json"},
    )
    return response.status_code


def still_serves(client: TestClient) -> None:
    for path in ("/api/v2/sessions", "/api/v1/alerts"):
        assert client.get(path, headers={"X-API-Key": KEY}).status_code == 200, path


def test_hostile_text_and_numbers_in_a_session(fuzzed_app: object) -> None:
    client = TestClient(fuzzed_app, base_url=BASE_URL)

    @given(
        path=HOSTILE_TEXT,
        config=st.dictionaries(HOSTILE_TEXT, HOSTILE_SCALAR, max_size=3),
    )
    @FUZZ
    def fuzz(path: str, config: dict[str, object]) -> None:
        body = {"session_type": "impact_analysis", "project_path": path, "config": config}
        assert post_json(client, "/api/v2/sessions", body) in (201, 422)
        still_serves(client)

    fuzz()


def test_hostile_text_in_an_alert(fuzzed_app: object) -> None:
    client = TestClient(fuzzed_app, base_url=BASE_URL)

    @given(
        labels=st.dictionaries(
            st.sampled_from(["alertname", "severity"]) | HOSTILE_TEXT, HOSTILE_TEXT, max_size=3
        ),
        annotations=st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=2),
        fingerprint=HOSTILE_TEXT,
        url=HOSTILE_TEXT,
        starts=st.datetimes(timezones=st.timezones()),
    )
    @FUZZ
    def fuzz(
        labels: dict[str, str],
        annotations: dict[str, str],
        fingerprint: str,
        url: str,
        starts: datetime,
    ) -> None:
        alert = {
            "status": "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": starts.isoformat(),
            "fingerprint": fingerprint,
            "generatorURL": url,
        }
        payload = {"version": "4", "status": "firing", "receiver": url, "alerts": [alert]}
        assert post_json(client, "/api/v1/alerts/webhook", payload) in (200, 422)
        still_serves(client)

    fuzz()
