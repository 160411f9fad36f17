"""The contract check on /metrics bodies: the real app's exposition passes, and each defect
a previous release shipped (field facts) is named."""

from __future__ import annotations

from starlette.testclient import TestClient

from doctor.contract import exposition_findings
from telemetry.catalog import CATALOG
from tests.support.waiting import session_in

FRESH_COUNTER = """# HELP testboost_workflow_total x
# TYPE testboost_workflow_total counter
testboost_workflow_total{workflow_type="a",status="completed"} 1.0
"""


def exposition_after_traffic(client: TestClient) -> str:
    created = client.post(
        "/api/v2/sessions", json={"session_type": "impact_analysis", "project_path": "/p"}
    )
    session_in(client, created.json()["id"], "completed")
    client.get("/health")
    return client.get("/metrics").text


def test_the_apps_exposition_meets_the_contract(client: TestClient) -> None:
    findings, seen = exposition_findings(exposition_after_traffic(client))
    assert findings.problems == [] and findings.not_observed == []
    assert seen == len(CATALOG)


def test_a_fresh_app_only_lacks_histograms_nothing_observed_yet(client: TestClient) -> None:
    client.get("/health")  # as the doctor does first: request counters appear with a request
    findings, _ = exposition_findings(client.get("/metrics").text)
    assert findings.problems == []
    assert set(findings.not_observed) <= {f.name for f in CATALOG if f.kind == "histogram"}


def test_histogram_without_buckets_is_named(client: TestClient) -> None:
    text = "\n".join(
        line
        for line in exposition_after_traffic(client).splitlines()
        if not line.startswith("testboost_workflow_duration_seconds_bucket")
    )
    findings, _ = exposition_findings(text + "\n")
    assert (
        "testboost_workflow_duration_seconds without testboost_workflow_duration_seconds_bucket"
        in (findings.problems)
    )


def test_missing_counter_and_duplicate_family_and_wrong_labels_are_named() -> None:
    text = FRESH_COUNTER + FRESH_COUNTER.replace("} 1.0", ',host="x"} 2.0')
    findings, _ = exposition_findings(text)
    problems = "\n".join(findings.problems)
    assert "testboost_workflow_total declared 2 times" in problems
    assert "testboost_llm_calls_total missing" in problems
    assert "testboost_workflow_total labelled ['host', 'status', 'workflow_type']" in problems
