"""The queries that pick one topology's series (doctor/checks/push.py PUSHED_AGE, the families
check's PATH_SERIES) on real PromQL, by `promtool test rules`: Prometheus' data holds a pull
run's series (job testboost-api, the target's address as instance, beside its `up`) and the
pushed ones (the collector keeps the API's job, the instance is the API's
service.instance.id). Only the series of the path checked count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctor.checks.prometheus import PATH_SERIES
from doctor.checks.push import PUSHED_AGE
from tests.monitoring.tools import run_tool

pytestmark = pytest.mark.tools  # promtool, from .tools/

PULLED = 'testboost_llm_calls_total{job="testboost-api", instance="127.0.0.1:8000"}'
PULLED_UP = 'up{job="testboost-api", instance="127.0.0.1:8000"}'
PUSHED = 'testboost_llm_calls_total{job="testboost-api", instance="host:8000/0"}'
# The API scraped in push mode too (prometheus.yml), for `up` alone: its /metrics is empty.
PUSH_UP = 'up{job="testboost-api", instance="127.0.0.1:8001"}'


def verdict(
    tmp_path: Path,
    series: dict[str, str],
    at: str,
    expected: list[float],
    expr: str = PUSHED_AGE,
    labels: str = "{}",
) -> str:
    """promtool's verdict ("" when it agrees) on `expr` at `at` (one sample per value
    expected, each with `labels`), over `series` sampled every 15 s (promtool's series
    notation; `_` is no sample)."""
    test = {
        "rule_files": [],
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": at,
                        "exp_samples": [{"labels": labels, "value": v} for v in expected],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(json.dumps(test))  # JSON is YAML
    result = run_tool("promtool", "test", "rules", str(path))
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_a_pull_runs_leftover_series_is_no_pushed_sample(tmp_path: Path) -> None:
    """The issue: a pull run scraped until 60 s, then the push run's collector was killed
    (its series stale): at 4m30s the pull series is 210 s old, and still shown (lookback)."""
    leftover = {PULLED: "0 0 0 0 0", PULLED_UP: "1 1 1 1 1", PUSHED: "_x8 0 0 stale"}
    assert verdict(tmp_path, leftover, "4m30s", []) == ""


def test_the_pushed_series_age_beside_a_stale_pull_one(tmp_path: Path) -> None:
    """Pushed from 2m to 3m45s (`_x8 0x7`: 8 blanks, then 8 samples): 45 s old at 4m30s,
    while the API itself is still scraped (for `up`), and the pull series is older."""
    both = {PULLED: "0 0 0 0 0", PULLED_UP: "1 1 1 1 1", PUSHED: "_x8 0x7", PUSH_UP: "_x8 1x7"}
    assert verdict(tmp_path, both, "4m30s", [45]) == ""


def families(tmp_path: Path, series: dict[str, str], push: bool | None, found: bool) -> str:
    """promtool's verdict on the families check's query at 1m: the LLM family found or not."""
    expr = f"group by (__name__) ({PATH_SERIES[push]})"
    labels = '{__name__="testboost_llm_calls_total"}'
    return verdict(tmp_path, series, "1m", [1] if found else [], expr, labels)


@pytest.mark.parametrize(
    ("push", "series_of", "found"),
    [
        (True, "pull", False),  # a pull run's leftover does not vouch for the push path
        (True, "push", True),
        (False, "push", False),  # nor a push run's for the pull path
        (False, "pull", True),
        (None, "pull", True),  # the API did not say: every series of its job
    ],
)
def test_families_count_only_the_series_of_the_path_checked(
    tmp_path: Path, push: bool | None, series_of: str, found: bool
) -> None:
    data = {
        "pull": {PULLED: "0 0 0 0 0", PULLED_UP: "1 1 1 1 1"},
        "push": {PUSHED: "0 0 0 0 0", PUSH_UP: "1 1 1 1 1"},
    }[series_of]
    assert families(tmp_path, data, push, found) == ""
