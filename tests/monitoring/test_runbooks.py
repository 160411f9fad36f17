"""Every alert's runbook_url is an absolute address (an Alertmanager, Slack or Grafana link
opens it) of a section of docs/runbooks.md that exists and says what to check."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from alert_rules import RUNBOOK_BASE_URL

from .queries import alert_rules, pipeline_alert_rules, slo_alert_rules
from .tools import REPO

RUNBOOKS = (REPO / "docs" / "runbooks.md").read_text()


def sections() -> dict[str, str]:
    """GitHub-style anchor of each `## ` heading -> its body."""
    parts = re.split(r"^## (.+)$", RUNBOOKS, flags=re.M)
    return {
        re.sub(r"[^a-z0-9 _-]", "", title.strip().lower()).replace(" ", "-"): body
        for title, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def test_runbook_base_is_an_absolute_address_of_the_runbooks() -> None:
    base = urlsplit(RUNBOOK_BASE_URL)
    assert base.scheme == "https" and base.netloc, RUNBOOK_BASE_URL
    assert base.path.endswith("/docs/runbooks.md") and not base.fragment


def every_alert() -> list[dict]:
    """The TestBoost alerts, the pipeline's own, and the SLOs' burn-rate alerts (Sloth's: a
    page and a ticket share a name, and so a section)."""
    return alert_rules() + pipeline_alert_rules() + slo_alert_rules()


@pytest.mark.parametrize("rule", every_alert(), ids=lambda r: r["alert"])
def test_runbook_anchor_exists_and_helps(rule: dict) -> None:
    base, anchor = rule["annotations"]["runbook_url"].split("#")
    assert base == RUNBOOK_BASE_URL
    body = sections().get(anchor)
    assert body is not None, f"no '## {rule['alert']}' section in docs/runbooks.md"
    for part in ("**Means:**", "**Likely causes:**", "**Check:**", "**Fix:**"):
        assert part in body, f"{rule['alert']}: missing {part}"


def test_no_orphan_sections() -> None:
    anchors = {r["annotations"]["runbook_url"].split("#")[1] for r in every_alert()}
    assert set(sections()) == anchors


def test_runbooks_point_to_doctor() -> None:
    assert "testboost doctor" in RUNBOOKS


def test_runbook_queries_match_the_catalog() -> None:
    """The PromQL a runbook tells you to run must work: same contract check as the alerts."""
    from .test_promql_contract import violations

    blocks = re.findall(r"```promql\n(.*?)```", RUNBOOKS, flags=re.S)
    queries = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert len(queries) >= 10
    for promql in queries:
        assert violations(promql) == [], promql
