"""API key: required everywhere but health, metrics and docs; loopback-only without one."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from starlette.requests import Request
from starlette.testclient import TestClient

from app.core.security import key_matches, presented_key
from tests.conftest import AppFactory

KEY = "s3cret-key-for-tests"


@pytest.fixture
def keyed(make_client: AppFactory) -> TestClient:
    return make_client(api_key=KEY)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/v2/sessions"),
        ("POST", "/api/v2/sessions"),
        ("GET", "/api/v2/sessions/x"),
        ("POST", "/api/v2/sessions/x/cancel"),
        ("GET", "/api/v1/alerts"),
        ("POST", "/api/v1/alerts/webhook"),
    ],
)
def test_protected_routes_answer_401_without_the_key(
    keyed: TestClient, method: str, path: str
) -> None:
    for headers in (
        {},
        {"X-API-Key": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"X-API-Key": KEY[:-1]},
    ):
        response = keyed.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert KEY not in response.text


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"}],
)
def test_either_header_form_is_accepted(keyed: TestClient, headers: dict[str, str]) -> None:
    assert keyed.get("/api/v2/sessions", headers=headers).status_code == 200
    created = keyed.post(
        "/api/v2/sessions",
        headers=headers,
        json={"session_type": "impact_analysis", "project_path": "/p"},
    )
    assert created.status_code == 201


def test_open_endpoints_need_no_key(keyed: TestClient) -> None:
    for path in ("/health", "/metrics", "/docs", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_without_key_non_loopback_connections_are_refused(make_client: AppFactory) -> None:
    client = make_client()
    # The server side of the connection is what counts: a request that arrived on a public
    # address of a server bound to 0.0.0.0.
    remote = TestClient(client.app, base_url="http://10.1.2.3:8000")
    response = remote.get("/api/v2/sessions")
    assert response.status_code == 403
    assert "TESTBOOST_API_KEY" in response.json()["detail"]
    assert client.get("/api/v2/sessions").status_code == 200


def test_with_key_any_address_is_served(make_client: AppFactory) -> None:
    app = make_client(api_key=KEY).app
    remote = TestClient(app, base_url="http://10.1.2.3:8000")
    assert remote.get("/api/v2/sessions", headers={"X-API-Key": KEY}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": f"{KEY} "},
        {"X-API-Key": f"\t{KEY}"},
        {"Authorization": f"Bearer {KEY} "},
        {"Authorization": f"Bearer  {KEY}"},
    ],
)
def test_one_whitespace_rule_for_both_headers(keyed: TestClient, headers: dict[str, str]) -> None:
    assert keyed.get("/api/v2/sessions", headers=headers).status_code == 200


def test_keys_are_compared_as_utf8(make_client: AppFactory) -> None:
    key = "clé-ключ-鍵"
    client = make_client(api_key=key)
    for header in ("X-API-Key", "Authorization"):
        value = key.encode() if header == "X-API-Key" else b"Bearer " + key.encode()
        assert client.get("/api/v2/sessions", headers={header: value}).status_code == 200


@pytest.mark.parametrize(
    "raw,matches",
    [(b"cl\xc3\xa9", True), (b"cl\xe9", False), (b" cl\xc3\xa9\t", True), (b"cle", False)],
)
def test_the_bytes_sent_are_what_is_compared(raw: bytes, matches: bool) -> None:
    # The test client re-encodes header values as UTF-8; a raw ASGI scope sends any bytes.
    for name, value in ((b"x-api-key", raw), (b"authorization", b"Bearer " + raw)):
        request = Request({"type": "http", "headers": [(name, value)]})
        assert key_matches(presented_key(request), SecretStr("clé")) is matches, (name, value)
