"""The dashboard check on a fake Prometheus: a query answering only NaN (or nothing) is broken
when there was something to show, idle (a warning) when there was not — the rule of
doctor/panels.py and docs/troubleshooting.md, one test per case. The fake answers 1 to any
query not set, so each case sets every query its verdict depends on."""

from __future__ import annotations

import pytest

from doctor.model import Result, Status
from doctor.panels import COUNTED_BY, PRIMED, histograms_read
from doctor.shipped import load_dashboards
from telemetry.catalog import CATALOG, Kind
from tests.doctor.fake_http import FakeServer
from tests.doctor.fake_prometheus import ACTIVE_SESSIONS_PANEL, Prometheus
from tests.doctor.support import by_name, results_for

CHECK = "dashboard queries return data"
WORKFLOWS = "testboost_workflow_duration_seconds"
HTTP = "testboost_http_request_duration_seconds"
P95_PANEL = "TestBoost Overview > Workflow Duration (p95)"


def expr_of(panel: str) -> str:
    """The one query of a panel of the overview."""
    (expr,) = [
        q.expr
        for d in load_dashboards()
        for q in d.queries
        if f"{q.dashboard} > {q.panel}" == panel
    ]
    return expr


TOTAL = sum(len(d.queries) for d in load_dashboards())
P95 = expr_of(P95_PANEL)
OBSERVED = f"sum(increase({WORKFLOWS}_count[1h]))"
FINISHED = "sum(increase(testboost_workflow_total[1h]))"  # one per observation
SERIES = f"count({WORKFLOWS}_count)"
BUCKETS = f"count({WORKFLOWS}_bucket)"
PRIMED_SERIES = f"count({PRIMED})"


def check(prometheus: Prometheus) -> Result:
    with FakeServer(prometheus.routes()) as server:
        return by_name(results_for("prometheus", prometheus=server.url))[CHECK]


def only_this_check_differs(prometheus: Prometheus) -> None:
    with FakeServer(prometheus.routes()) as server:
        results = results_for("prometheus", prometheus=server.url)
    differ = {r.check.name for r in results if r.status not in (Status.PASS, Status.SKIP)}
    assert differ <= {CHECK}


def test_numbers_are_data_even_next_to_nan() -> None:
    prometheus = Prometheus()
    # by workflow type: types without observations are NaN, the others have a number
    prometheus.answers[P95] = ["NaN", "0.31"]
    result = check(prometheus)
    assert (result.status, result.detail) == (Status.PASS, f"{TOTAL}/{TOTAL} queries return data")


def test_an_infinite_quantile_is_data() -> None:
    prometheus = Prometheus()
    prometheus.answers[P95] = ["+Inf"]  # above the highest bucket: a number, shown as such
    assert check(prometheus).status is Status.PASS


def test_nan_without_observations_in_the_window_is_a_warning() -> None:
    prometheus = Prometheus()
    prometheus.answers |= {P95: ["NaN"], OBSERVED: ["0"], FINISHED: ["0"]}
    result = check(prometheus)
    assert result.status is Status.WARN
    assert result.detail == (
        f"{TOTAL - 1}/{TOTAL} queries return data; idle, not broken: {P95_PANEL}: "
        f"no observations of {WORKFLOWS} in the last 1h"
    )
    assert result.hint == ""
    only_this_check_differs(prometheus)


def test_nan_although_there_were_observations_fails() -> None:
    """Observations counted by _count, yet a NaN quantile: the buckets do not count them."""
    prometheus = Prometheus()
    prometheus.answers |= {P95: ["NaN"], OBSERVED: ["12"]}
    result = check(prometheus)
    assert result.status is Status.FAIL
    assert result.detail == (
        f"1/{TOTAL} queries without data: {P95_PANEL}: answers only NaN, yet 12 observations "
        f'of {WORKFLOWS} in the last 1h: {WORKFLOWS}_bucket does not count them (no le="+Inf" '
        "bucket?)"
    )
    assert "_bucket" in result.hint


def test_nothing_although_there_were_observations_names_the_missing_buckets() -> None:
    prometheus = Prometheus()
    prometheus.answers |= {P95: [], OBSERVED: ["12"], BUCKETS: []}
    result = check(prometheus)
    assert result.status is Status.FAIL
    assert result.detail.endswith(
        f"answers nothing, yet 12 observations of {WORKFLOWS} in the last 1h: "
        f"no {WORKFLOWS}_bucket series"
    )


def test_observations_counted_but_not_in_the_histogram_fail() -> None:
    """Workflows finished (testboost_workflow_total grew) but the duration histogram's _count
    did not: its first observations were lost (the series appeared already holding them, so
    Prometheus took them as its baseline), or they were not recorded."""
    prometheus = Prometheus()
    prometheus.answers |= {P95: ["NaN"], OBSERVED: ["0"], FINISHED: ["3.37"]}
    result = check(prometheus)
    assert result.status is Status.FAIL
    assert result.detail == (
        f"1/{TOTAL} queries without data: {P95_PANEL}: answers only NaN, yet "
        f"testboost_workflow_total counted 3 in the last 1h and {WORKFLOWS} none: observations "
        "lost (a series that appeared already holding them) or not recorded"
    )


def test_a_histogram_never_observed_is_a_warning() -> None:
    """A fresh, idle API: the histogram has no series yet, the primed counters are there."""
    prometheus = Prometheus()
    prometheus.answers |= {P95: [], OBSERVED: [], FINISHED: ["0"], SERIES: []}
    result = check(prometheus)
    assert result.status is Status.WARN
    assert f"{P95_PANEL}: {WORKFLOWS} never observed" in result.detail


def test_a_histogram_too_new_for_rate_is_a_warning() -> None:
    """One sample of _count in the window: increase() needs two."""
    prometheus = Prometheus()
    prometheus.answers |= {P95: ["NaN"], OBSERVED: [], FINISHED: [], SERIES: ["1"]}
    result = check(prometheus)
    assert result.status is Status.WARN
    assert f"{P95_PANEL}: no observations of {WORKFLOWS} in the last 1h" in result.detail


def test_not_scraped_fails() -> None:
    prometheus = Prometheus()
    prometheus.answers |= {P95: [], OBSERVED: [], FINISHED: [], SERIES: [], PRIMED_SERIES: []}
    result = check(prometheus)
    assert result.status is Status.FAIL
    assert result.detail == (
        f"1/{TOTAL} queries without data: {P95_PANEL}: answers nothing: not scraped, "
        f"no {WORKFLOWS} series nor {PRIMED}"
    )


def test_nan_from_a_query_without_histogram_fails() -> None:
    prometheus = Prometheus()
    prometheus.answers[ACTIVE_SESSIONS_PANEL] = ["NaN"]
    result = check(prometheus)
    assert result.status is Status.FAIL
    assert result.detail == (
        f"1/{TOTAL} queries without data: TestBoost Overview > Active Sessions: answers only NaN"
    )


def test_an_idle_api_warns_once_per_panel_and_a_failure_wins() -> None:
    """No traffic for 5 minutes: every 5m quantile is NaN. p50, p95 and p99 of one panel are
    listed once; a broken panel makes it a failure that still counts the idle ones."""
    prometheus = Prometheus()
    quantiles = [
        q.expr
        for d in load_dashboards()
        for q in d.queries
        if (HTTP, "5m") in histograms_read(q.expr)
    ]
    prometheus.answers |= {expr: ["NaN"] for expr in quantiles}
    prometheus.answers[f"sum(increase({HTTP}_count[5m]))"] = ["0"]
    prometheus.answers["sum(increase(testboost_http_requests_total[5m]))"] = ["0"]
    result = check(prometheus)
    assert result.status is Status.WARN
    assert result.detail.startswith(f"{TOTAL - len(quantiles)}/{TOTAL} queries return data")
    panel = "TestBoost Overview > API Response Time (p50, p95, p99)"
    assert result.detail.count(panel) == 1
    assert len(quantiles) == 6  # the overview's panel and the by-route panel, 3 each

    prometheus.answers[ACTIVE_SESSIONS_PANEL] = []
    result = check(prometheus)
    assert result.status is Status.FAIL
    assert result.detail == (
        f"1/{TOTAL} queries without data: TestBoost Overview > Active Sessions: answers nothing"
        f" (and {len(quantiles)} without observations in their window)"
    )


@pytest.mark.parametrize(
    ("expr", "read"),
    [
        (P95, [(WORKFLOWS, "1h")]),
        (
            f'histogram_quantile(0.5, sum by (le) (rate({HTTP}_bucket{{path!="/x"}}[5m])))',
            [(HTTP, "5m")],
        ),
        (f"rate({HTTP}_bucket[5m]) / rate({HTTP}_bucket[5m])", [(HTTP, "5m")]),
        ("sum(rate(testboost_llm_calls_total[5m]))", []),
        (f"{HTTP}_bucket", []),  # no window: not a rate of buckets
    ],
)
def test_histograms_read(expr: str, read: list[tuple[str, str]]) -> None:
    assert histograms_read(expr) == read


def test_each_histogram_has_its_counter_in_the_catalog() -> None:
    """A renamed family must not silently turn the lost-observations rule off."""
    kinds = {family.name: family.kind for family in CATALOG}
    histograms = {name for name, kind in kinds.items() if kind is Kind.HISTOGRAM}
    assert set(COUNTED_BY) == histograms
    assert {kinds[counter] for counter in COUNTED_BY.values()} == {Kind.COUNTER}
