"""Access: keys and tokens never logged nor shown, CORS off unless configured."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AppFactory
from tests.support.api_process import ApiProcess
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import until

KEY = "very-secret-api-key-1234"


def test_api_key_is_never_logged(make_client: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(api_key=KEY, metrics_token="metrics-secret-987")
    client.get("/api/v2/sessions", headers={"X-API-Key": KEY})
    client.get("/api/v2/sessions", headers={"X-API-Key": KEY + "x"})
    client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    client.post(
        "/api/v2/sessions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"session_type": "impact_analysis", "project_path": "/p"},
    )
    assert caplog.records, "expected some logging to inspect"
    assert KEY not in caplog.text and "metrics-secret-987" not in caplog.text
    assert KEY not in repr(client.app.state.settings)


def test_cors_is_off_by_default(make_client: AppFactory) -> None:
    client = make_client()
    response = client.options(
        "/api/v2/sessions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers
    plain = client.get("/api/v2/sessions", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in plain.headers


def test_cors_allows_only_configured_origins(make_client: AppFactory) -> None:
    client = make_client(cors_origins=["https://ops.example"])
    allowed = client.get("/api/v2/sessions", headers={"Origin": "https://ops.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
    other = client.get("/api/v2/sessions", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


API_KEY = "api-key-8f3a1c0d"
METRICS_TOKEN = "metrics-token-77d2e4"
LLM_KEY = "sk-llm-secret-5b9e61"


def echoes_the_key_as_json(request: dict[str, Any]) -> dict[str, Any]:
    """What some providers and proxies answer: the request's Authorization header quoted."""
    return {
        "error": {
            "message": f"Incorrect API key provided: {request['authorization']}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }


def echoes_the_key_as_text(request: dict[str, Any]) -> str:
    return f"upstream failed; request was Authorization: {request['authorization']}"


def test_no_secret_reaches_a_log_line_or_an_api_answer(tmp_path: Path) -> None:
    """Keys sent by mistake in query strings, and a provider echoing its key in 401 and 500
    bodies: no log line of the real server and no API answer holds any secret."""
    with FakeLLM(Reply(500, echoes_the_key_as_text)) as fake:
        fake.then(Reply(401, echoes_the_key_as_json))
        env = {
            "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path / 'tb.db'}",
            "TESTBOOST_API_KEY": API_KEY,
            "TESTBOOST_METRICS_TOKEN": METRICS_TOKEN,
            "TESTBOOST_LLM_BASE_URL": fake.base_url,
            "TESTBOOST_LLM_API_KEY": LLM_KEY,
            "TESTBOOST_LLM_MAX_ATTEMPTS": "2",
            "TESTBOOST_LLM_MAX_RETRY_WAIT": "0",
            "TESTBOOST_LOG_LEVEL": "DEBUG",
        }
        answers: list[httpx.Response] = []
        with ApiProcess(env) as api, httpx.Client(base_url=api.url, timeout=10) as http:
            auth = {"X-API-Key": API_KEY}
            for target in (
                f"/api/v2/sessions?api_key={API_KEY}",
                f"/api/v2/sessions?limit=5&API_KEY={API_KEY}",
                f"/metrics?token={METRICS_TOKEN}",
                f"/api/v1/alerts?access_token={API_KEY}&Password={API_KEY}&x-api-key={API_KEY}",
                f"/api/v1/alerts?authorization=Bearer%20{API_KEY}&secret={METRICS_TOKEN}",
                f"/api/v1/alerts?key={LLM_KEY}&client_secret={LLM_KEY}&status=firing",
            ):
                answers.append(http.get(target, headers=auth))
            create = {"session_type": "impact_analysis", "project_path": "/repo"}
            ids = [
                http.post("/api/v2/sessions", json=create, headers=auth).json()["id"]
                for _ in range(2)
            ]
            sessions = []
            for session_id in ids:
                until(
                    lambda s=session_id: (
                        http.get(f"/api/v2/sessions/{s}", headers=auth).json()["status"] == "failed"
                    ),
                    timeout=20,
                    message=f"session {session_id} failed",
                )
                sessions.append(http.get(f"/api/v2/sessions/{session_id}", headers=auth))
                answers += [
                    sessions[-1],
                    http.get(f"/api/v2/sessions/{session_id}/steps", headers=auth),
                ]
            api.stop()
        output = api.output
    assert fake.requests and {r["authorization"] for r in fake.requests} == {f"Bearer {LLM_KEY}"}
    assert "/api/v2/sessions?api_key=" in output and "status=firing" in output  # access log on
    for text in [output, *(answer.text for answer in answers)]:
        for secret in (API_KEY, METRICS_TOKEN, LLM_KEY):
            assert secret not in text, (secret, text[:2000])
    # The failure still says what happened: the status and the provider's error type.
    errors = sorted(s.json()["error"] for s in sessions)
    assert "auth: HTTP 401 (invalid_api_key)" in errors[0] + errors[1], errors
    assert "server_error: HTTP 500" in errors[0] + errors[1], errors
