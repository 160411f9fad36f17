"""The guide's compose stack with the OTLP layer (`-f docker-compose.otel.yaml`), run for real:
the API container pushes metrics and traces to the Collector container, Prometheus scrapes the
Collector, the Collector sends traces to the Jaeger container. The same ground truth as the
pull topology, through the Collector; one trace in Jaeger per request that asked for one;
`testboost doctor` from the wheel, told the Collector's health URL, passes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.deploy.conftest import Installed
from tests.deploy.docker import OTEL, OTEL_SERVICES
from tests.deploy.stack import ComposeStack, assert_counts, compose_stack
from tests.e2e.helpers import SESSIONS, Prometheus, Workload, api_client
from tests.support.waiting import until

pytestmark = pytest.mark.docker

# A new series is held at zero for three export intervals in push mode (15 s each here).
SEEN_S = 150
TRACED = 5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    with compose_stack(OTEL, OTEL_SERVICES, tmp_path_factory.mktemp("otel")) as running:
        yield running


def test_the_collector_answers_and_is_scraped(stack: ComposeStack, prometheus: Prometheus) -> None:
    assert httpx.get(stack.urls["otlp-agent"], timeout=5).status_code == 200
    prometheus.wait('up{job="otel-collector"} == 1', timeout=60)
    # Its own metrics too (OTelCollectorExportFailing reads them).
    prometheus.wait('up{job="otel-collector-telemetry"} == 1', timeout=60)
    accepted = 'otelcol_receiver_accepted_metric_points_total{receiver="otlp"} > 0'
    prometheus.wait(accepted, timeout=60)
    prometheus.wait('up{job="testboost-api"} == 1', timeout=60)  # still scraped for `up`


def test_prometheus_shows_what_was_done_through_the_collector(
    stack: ComposeStack, prometheus: Prometheus, workload: Workload
) -> None:
    assert_counts(prometheus, workload, stack.fake)
    # Pushed, not scraped from the API: the series carry the API's job, from service.name.
    jobs = prometheus.query("count by (job) (testboost_llm_calls_total)")
    assert [s["metric"]["job"] for s in jobs] == ["testboost-api"]


def test_one_trace_per_request_that_asked_for_one(stack: ComposeStack) -> None:
    """Requests with a sampled traceparent are always traced (parentbased sampler); one with
    an unsampled one never is. Jaeger holds exactly the sampled ones, each with the API's
    server span."""
    sampled = [secrets.token_hex(16) for _ in range(TRACED)]
    unsampled = secrets.token_hex(16)
    with api_client(stack) as api:  # type: ignore[arg-type]
        for trace_id in sampled:
            parent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
            assert api.get(SESSIONS, headers={"traceparent": parent}).status_code == 200
        parent = f"00-{unsampled}-{secrets.token_hex(8)}-00"
        assert api.get(SESSIONS, headers={"traceparent": parent}).status_code == 200
    jaeger = httpx.Client(base_url=stack.urls["jaeger"], timeout=10)
    with jaeger:

        def trace(trace_id: str) -> list[dict[str, object]] | None:
            answer = jaeger.get(f"/api/traces/{trace_id}")
            return answer.json()["data"] if answer.status_code == 200 else None

        for trace_id in sampled:
            (found,) = until(lambda t=trace_id: trace(t), timeout=60, message=trace_id)
            assert found["traceID"] == trace_id
            processes = found["processes"]
            assert isinstance(processes, dict)
            services = {p["serviceName"] for p in processes.values()}
            assert services == {"testboost-api"}
            spans = found["spans"]
            assert isinstance(spans, list)
            assert any(s["operationName"] == f"GET {SESSIONS}" for s in spans), spans
        assert trace(unsampled) is None


@pytest.mark.usefixtures("workload")
def test_doctor_from_the_wheel_passes(stack: ComposeStack, installed: Installed) -> None:
    result = installed.run(
        "testboost",
        "doctor",
        "--api-key",
        stack.api_key,
        "--otlp-agent",
        stack.urls["otlp-agent"],
        "--json",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"status": "FAIL"' not in result.stdout
