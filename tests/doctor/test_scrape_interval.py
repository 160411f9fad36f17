"""The scrape interval check (doctor/checks/scrape_interval.py) on a fake API and Prometheus:
the API's new-series hold (its /metrics header) must cover two scrapes of the job that scrapes
its series, the API's own in pull mode, the collector's in push mode."""

from __future__ import annotations

from typing import Any

import pytest

from doctor.checks.scrape_interval import parse_duration
from doctor.model import Result, Status
from doctor.topology import Topology
from tests.doctor.fake_prometheus import Prometheus
from tests.doctor.support import by_name, results_for
from tests.doctor.test_push_checks import api, servers

CHECK = "scrape interval within the API's new-series hold"


def checked(
    exporter: str = "prometheus",
    hold: str | None = "30",
    api_every: str = "15s",
    collector_every: str | None = "15s",
    **options: Any,
) -> Result:
    """The check against an API exporting by `exporter` with `hold`, Prometheus scraping the
    API every `api_every` and the collector every `collector_every` (None: no such job)."""
    prometheus = Prometheus()
    prometheus.target["scrapeInterval"] = api_every
    if collector_every is None:
        prometheus.collector["labels"]["job"] = "otel-collector-telemetry"
    else:
        prometheus.collector["scrapeInterval"] = collector_every
    with servers(api(exporter, hold), prometheus.routes()) as (api_url, prometheus_url):
        given = {"api": api_url, "prometheus": prometheus_url, "timeout": 2}
        return by_name(results_for("prometheus", **(given | options)))[CHECK]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("1d", 86400)],
)
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "s", "1.5s", "15 s", "1m foo"])
def test_what_is_no_prometheus_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration(text)


def test_pull_a_hold_of_two_scrapes_passes() -> None:
    result = checked(hold="30", api_every="15s")
    assert (result.status, result.detail) == (
        Status.PASS,
        "the API holds new series 30 s; job 'testboost-api' is scraped every 15 s (2 scrapes)",
    )


def test_pull_a_hold_under_two_scrapes_fails_naming_the_interval_to_export_at() -> None:
    result = checked(hold="22.5", api_every="15s")
    assert result.status is Status.FAIL
    assert result.detail == (
        "the API holds new series 22.5 s; job 'testboost-api' is scraped every 15 s: under 2 "
        "scrapes, the first observations of a new series are lost"
    )
    assert "OTEL_METRIC_EXPORT_INTERVAL=15000" in result.hint
    assert "compose `up -d testboost-api`" in result.hint


def test_push_compares_with_the_collectors_job_not_the_apis() -> None:
    """In push mode the API's job only gives `up`; the series come from the collector's."""
    result = checked(exporter="otlp", hold="45", api_every="15s", collector_every="1m")
    assert result.status is Status.FAIL
    assert "job 'otel-collector' is scraped every 60 s" in result.detail
    assert "OTEL_METRIC_EXPORT_INTERVAL=60000" in result.hint
    passes = checked(exporter="otlp", hold="45", api_every="1m", collector_every="15s")
    assert passes.status is Status.PASS


def test_push_by_remote_write_scrapes_nothing_to_compare() -> None:
    result = checked(exporter="otlp", hold="45", collector_every=None)
    assert (result.status, result.detail) == (
        Status.SKIP,
        "push mode, no 'otel-collector' target: remote write (nothing scraped)",
    )


def test_an_api_without_the_header_is_skipped() -> None:
    result = checked(hold=None)
    assert (result.status, result.detail) == (
        Status.SKIP,
        "the API sends no x-testboost-new-series-hold-seconds header (a version before it)",
    )


def test_without_prometheus_or_api_it_is_skipped() -> None:
    assert checked(prometheus=None).detail == "no --prometheus URL given"
    assert checked(api=None).detail == "no --api URL given"


def test_the_operators_scrape_pool_is_found_by_its_job_label() -> None:
    """The Prometheus Operator names the pool after the ServiceMonitor, not the job."""
    prometheus = Prometheus()
    prometheus.target.update(scrapePool="serviceMonitor/testboost/testboost/0", scrapeInterval="1m")
    with servers(api("prometheus", "30"), prometheus.routes()) as (api_url, prometheus_url):
        results = by_name(results_for("prometheus", api=api_url, prometheus=prometheus_url))
    assert results["target testboost-api UP"].status is Status.PASS
    assert "scraped every 60 s" in results[CHECK].detail


SET_IT = "OTEL_METRIC_EXPORT_INTERVAL=15000 (job testboost-api's scrape interval"


@pytest.mark.parametrize(
    ("topology", "what", "where"),
    [
        (Topology.COMPOSE, SET_IT, "the testboost-api service's environment"),
        (Topology.KUBERNETES, SET_IT, "the chart's extraEnv), then `helm upgrade`"),
        # The stack passes no OTEL_* of the shell to its API: it sets both itself.
        (
            Topology.LOCAL,
            "job testboost-api is scraped every 15000 ms",
            "`testboost stack down`, then `testboost stack up`",
        ),
    ],
)
def test_the_fix_says_where_to_set_it_in_each_topology(
    topology: Topology, what: str, where: str
) -> None:
    result = checked(hold="10", topology=topology)
    assert what in result.hint, result.hint
    assert where in result.hint, result.hint
