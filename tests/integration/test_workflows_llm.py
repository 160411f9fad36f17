"""Workflows against a real OpenAI-compatible server; restart loses no session state."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from app.workflows.definitions import SessionType
from tests.conftest import AppFactory
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import session_in, until


@pytest.fixture
def fake() -> FakeLLM:
    with FakeLLM() as server:
        yield server


def create(client: TestClient, session_type: str) -> str:
    response = client.post(
        "/api/v2/sessions", json={"session_type": session_type, "project_path": "/repo"}
    )
    assert response.status_code == 201
    return str(response.json()["id"])


def test_every_session_type_completes_through_an_openai_server(
    make_client: AppFactory, fake: FakeLLM
) -> None:
    client = make_client(llm_base_url=fake.base_url, llm_model="qwen-test", llm_api_key="k")
    ids = [create(client, t.value) for t in SessionType]
    for session_id in ids:
        assert session_in(client, session_id, "completed", "failed")["status"] == "completed"
    assert fake.count == 16  # 4 types x 4 steps, each once
    assert {r["body"]["model"] for r in fake.requests} == {"qwen-test"}
    steps = client.get(f"/api/v2/sessions/{ids[0]}/steps").json()
    assert all(s["output"].startswith("answer ") for s in steps)
    # Later steps see what earlier steps found.
    last_prompt = [
        r for r in fake.requests if "JUnit" in str(r["body"]) or "edge cases" in str(r["body"])
    ][-1]["body"]["messages"][-1]["content"]
    assert "Result of step 1" in last_prompt


def test_session_fails_cleanly_when_the_provider_keeps_failing(
    make_client: AppFactory, fake: FakeLLM
) -> None:
    fake.default = Reply(500, {"error": "down"})
    client = make_client(llm_base_url=fake.base_url, llm_max_attempts=2, llm_max_retry_wait=0.0)
    session_id = create(client, "test_generation")
    failed = session_in(client, session_id, "failed", "completed")
    assert failed["status"] == "failed"
    assert "server_error" in failed["error"] and "2 attempt" in failed["error"]
    steps = client.get(f"/api/v2/sessions/{session_id}/steps").json()
    assert steps[0]["status"] == "failed" and steps[0]["attempts"] == 2
    assert [s["status"] for s in steps[1:]] == ["pending"] * 3
    assert fake.count == 2


def test_rate_limited_step_retries_and_completes(make_client: AppFactory, fake: FakeLLM) -> None:
    fake.then(Reply(429, {}, {"Retry-After": "0.1"}), Reply(429, {}, {"Retry-After": "0.1"}))
    client = make_client(llm_base_url=fake.base_url)
    session_id = create(client, "impact_analysis")
    assert session_in(client, session_id, "completed")["status"] == "completed"
    steps = client.get(f"/api/v2/sessions/{session_id}/steps").json()
    assert steps[0]["attempts"] == 3 and fake.count == 6


def test_restart_resumes_unfinished_sessions_without_redoing_steps(
    make_client: AppFactory, fake: FakeLLM
) -> None:
    fake.default = Reply(delay=0.15)
    first = make_client(llm_base_url=fake.base_url, max_concurrent_workflows=2)
    ids = [create(first, t) for t in ("test_generation", "maven_maintenance", "impact_analysis")]
    until(lambda: fake.count >= 3, message="some steps done")
    first.__exit__(None, None, None)  # graceful stop mid-run, as on SIGTERM
    before = {sid: first.get(f"/api/v2/sessions/{sid}/steps").json() for sid in ids}
    assert any(s["status"] == "completed" for steps in before.values() for s in steps)
    assert not all(s["status"] == "completed" for steps in before.values() for s in steps)

    second = make_client(llm_base_url=fake.base_url, max_concurrent_workflows=2)
    for session_id in ids:
        assert session_in(second, session_id, "completed", timeout=20)["status"] == "completed"
        after = second.get(f"/api/v2/sessions/{session_id}/steps").json()
        for old, new in zip(before[session_id], after, strict=True):
            assert new["status"] == "completed"
            if old["status"] == "completed":  # kept as it was, not run again
                assert (new["output"], new["finished_at"]) == (old["output"], old["finished_at"])
    # 12 steps in all; only a step in flight at shutdown (at most 2) may have run twice.
    assert 12 <= fake.count <= 14
