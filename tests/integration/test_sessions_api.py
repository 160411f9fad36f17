"""The sessions API end to end on a real database, workflows run by the simulated provider."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from app.workflows.definitions import WORKFLOWS, SessionType
from tests.conftest import AppFactory
from tests.support.waiting import session_in


def create(client: TestClient, session_type: str = "test_generation", **extra: object) -> dict:
    response = client.post(
        "/api/v2/sessions", json={"session_type": session_type, "project_path": "/srv/app", **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("session_type", [t.value for t in SessionType])
def test_each_session_type_completes_with_its_steps(client: TestClient, session_type: str) -> None:
    created = create(client, session_type)
    assert created["status"] == "pending" and created["session_type"] == session_type
    done = session_in(client, created["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["started_at"] and done["finished_at"]
    steps = client.get(f"/api/v2/sessions/{created['id']}/steps").json()
    expected = [step.name for step in WORKFLOWS[SessionType(session_type)]]
    assert [s["name"] for s in steps] == expected
    assert all(s["status"] == "completed" and s["output"] and s["attempts"] == 1 for s in steps)


def test_unknown_session_type_is_a_clear_422(client: TestClient) -> None:
    response = client.post(
        "/api/v2/sessions", json={"session_type": "poetry", "project_path": "/p"}
    )
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "session_type"]
    assert "test_generation" in error["msg"] and "impact_analysis" in error["msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"project_path": "/p"},
        {"session_type": "test_generation", "project_path": ""},
        {"session_type": "test_generation", "project_path": "/p", "mode": "turbo"},
        {"session_type": "test_generation", "project_path": "/p", "surprise": 1},
        {"session_type": "test_generation", "project_path": "/p", "config": {"a": {"nested": 1}}},
    ],
)
def test_bad_bodies_are_422(client: TestClient, body: dict) -> None:
    assert client.post("/api/v2/sessions", json=body).status_code == 422


def test_non_json_body_is_422_not_500(client: TestClient) -> None:
    response = client.post(
        "/api/v2/sessions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_list_filters_and_paginates(client: TestClient) -> None:
    ids = [
        create(client, t)["id"] for t in ("test_generation", "impact_analysis", "test_generation")
    ]
    for session_id in ids:
        session_in(client, session_id, "completed")
    page = client.get("/api/v2/sessions", params={"session_type": "test_generation"}).json()
    assert page["total"] == 2 and {s["id"] for s in page["items"]} == {ids[0], ids[2]}
    first = client.get("/api/v2/sessions", params={"limit": 2, "offset": 0}).json()
    second = client.get("/api/v2/sessions", params={"limit": 2, "offset": 2}).json()
    assert first["total"] == 3 and len(first["items"]) == 2 and len(second["items"]) == 1
    assert {s["id"] for s in first["items"] + second["items"]} == set(ids)
    assert client.get("/api/v2/sessions", params={"status": "completed"}).json()["total"] == 3
    assert client.get("/api/v2/sessions", params={"status": "paused"}).json()["total"] == 0
    assert client.get("/api/v2/sessions", params={"status": "bogus"}).status_code == 422
    assert client.get("/api/v2/sessions", params={"limit": 0}).status_code == 422


def test_unknown_ids_are_404_everywhere(client: TestClient) -> None:
    missing = "/api/v2/sessions/does-not-exist"
    assert client.get(missing).status_code == 404
    assert client.get(missing + "/steps").status_code == 404
    assert client.patch(missing, json={"mode": "interactive"}).status_code == 404
    assert client.delete(missing).status_code == 404
    for action in ("pause", "resume", "cancel"):
        response = client.post(f"{missing}/{action}")
        assert response.status_code == 404 and "not found" in response.json()["detail"]


def test_pause_resume_cancel_and_illegal_transitions(make_client: AppFactory) -> None:
    # Slow steps so the session is still running while we act on it.
    client = make_client(llm_sim_latency=0.2)
    session_id = create(client, "maven_maintenance")["id"]
    paused = client.post(f"/api/v2/sessions/{session_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert client.post(f"/api/v2/sessions/{session_id}/pause").status_code == 409
    # Paused is honoured between steps: nothing more completes while paused.
    session_in(client, session_id, "paused")
    steps_while_paused = client.get(f"/api/v2/sessions/{session_id}/steps").json()
    resumed = client.post(f"/api/v2/sessions/{session_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] in ("pending", "in_progress")
    assert client.post(f"/api/v2/sessions/{session_id}/resume").status_code == 409
    cancelled = client.post(f"/api/v2/sessions/{session_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    for action in ("pause", "resume", "cancel"):
        conflict = client.post(f"/api/v2/sessions/{session_id}/{action}")
        assert conflict.status_code == 409 and "cancelled" in conflict.json()["detail"]
    assert (
        client.patch(f"/api/v2/sessions/{session_id}", json={"mode": "autonomous"}).status_code
        == 409
    )
    assert sum(s["status"] == "completed" for s in steps_while_paused) < 4


def test_interactive_mode_pauses_after_each_step(client: TestClient) -> None:
    session_id = create(client, "impact_analysis", mode="interactive")["id"]
    for done_steps in range(1, 4):
        session_in(client, session_id, "paused")
        steps = client.get(f"/api/v2/sessions/{session_id}/steps").json()
        assert sum(s["status"] == "completed" for s in steps) == done_steps
        assert client.post(f"/api/v2/sessions/{session_id}/resume").status_code == 200
    assert session_in(client, session_id, "completed")["status"] == "completed"


def test_patch_changes_mode_and_config_of_a_paused_session(client: TestClient) -> None:
    session_id = create(client, "docker_deployment", mode="interactive")["id"]
    session_in(client, session_id, "paused")
    patched = client.patch(
        f"/api/v2/sessions/{session_id}", json={"mode": "autonomous", "config": {"jdk": 21}}
    )
    assert patched.status_code == 200
    assert patched.json()["mode"] == "autonomous" and patched.json()["config"] == {"jdk": 21}
    assert (
        client.patch(f"/api/v2/sessions/{session_id}", json={"status": "completed"}).status_code
        == 422
    )
    client.post(f"/api/v2/sessions/{session_id}/resume")
    assert session_in(client, session_id, "completed")["config"] == {"jdk": 21}


def test_delete(make_client: AppFactory) -> None:
    client = make_client(llm_sim_latency=0.3)
    running = create(client)["id"]
    session_in(client, running, "in_progress")
    refused = client.delete(f"/api/v2/sessions/{running}")
    assert refused.status_code == 409 and "cancel it first" in refused.json()["detail"]
    client.post(f"/api/v2/sessions/{running}/cancel")
    assert client.delete(f"/api/v2/sessions/{running}").status_code == 204
    assert client.get(f"/api/v2/sessions/{running}").status_code == 404
    assert client.get(f"/api/v2/sessions/{running}/steps").status_code == 404


def test_health_and_docs(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "healthy"
    assert health.json()["checks"]["database"]["status"] == "ok"
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v2/sessions",
        "/api/v2/sessions/{session_id}/pause",
        "/api/v1/alerts/webhook",
        "/api/v1/alerts",
        "/health",
    ):
        assert path in paths
