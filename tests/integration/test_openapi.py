"""The OpenAPI document is enough to use the API: every operation described, the 401 of every
protected one declared, every 2xx body given a schema, the session types and modes explained."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.workflows.definitions import Mode, SessionType

Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/openapi.json").json()
    return schema


def operations(document: dict[str, Any]) -> Iterator[Operation]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_every_operation_is_described(document: dict[str, Any]) -> None:
    undescribed = [(m, p) for m, p, op in operations(document) if not op.get("description")]
    assert not undescribed


def test_every_protected_operation_declares_its_401(document: dict[str, Any]) -> None:
    protected = [(m, p, op) for m, p, op in operations(document) if p.startswith("/api/")]
    assert protected and all(op.get("security") for _, _, op in protected)
    for method, path, operation in protected:
        unauthorized = operation["responses"].get("401")
        assert unauthorized, (method, path)
        schema = unauthorized["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)
        assert "WWW-Authenticate" in unauthorized["headers"], (method, path)


def test_every_2xx_response_with_a_body_has_a_schema(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for code, response in operation["responses"].items():
            if not code.startswith("2") or code == "204":
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            assert schema, (method, path, code)


def test_session_types_and_modes_are_explained(document: dict[str, Any]) -> None:
    fields = document["components"]["schemas"]["SessionCreate"]["properties"]
    for field, values in (("session_type", SessionType), ("mode", Mode)):
        description = fields[field].get("description", "")
        missing = [v.value for v in values if f"`{v.value}`" not in description]
        assert not missing, (field, missing)
    assert "/resume" in fields["mode"]["description"]


def test_the_bare_address_leads_to_the_docs(client: TestClient) -> None:
    # README prints the bare address: a browser opening it lands on the interactive docs.
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "docs"
    assert "swagger-ui" in client.get("/").text
    assert "/" not in client.get("/openapi.json").json()["paths"]
