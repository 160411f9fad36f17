"""The push path, when the API pushes OTLP (its /metrics answers `x-testboost-metrics-exporter:
otlp`): the agent it pushes to answers its health endpoint, and Prometheus holds fresh samples.

The agent is known only by its health URL (`--otlp-agent`): the OpenTelemetry Collector's
healthcheckv2 extension answers `:13133/status` (otel-collector/config.yaml) with 200 and
JSON, vmagent `/health` with 200 "OK"; anything else than a 200 is a failure. Without the
URL, push mode is a warning: nothing checked the agent. The checks of what the agent carries
depend on it (doctor/runner.py): Prometheus' series in push mode (`metrics_path`), and traces.

Freshness: Prometheus shows a remote-written series for 5 minutes (its lookback) after its
last sample, so a series being there proves nothing; its newest timestamp does. The API
primes its counters at 0, so `testboost_llm_calls_total` is pushed at every export; its
newest sample may be an export interval old, plus delivery: more than two intervals and
DELIVERY_SLACK_S means nothing arrives. A collector that Prometheus scrapes (its prometheus
exporter) keeps series fresh as long as it holds them, even when the API stopped pushing:
that is why the agent's health and `up` of the API target are checked too.

Only pushed series count (`PUSHED_AGE`). Both paths label the API's series job="testboost-api"
(the collector keeps the API's job), but a scraped series has the `up` of its target, same job
and instance (the target's address), while a pushed one's instance is the API's
service.instance.id (`<host>:<port>/<slot>`), which no target has. A pull run that wrote into
the same Prometheus data leaves series visible for 5 minutes: never taken for pushed ones.
"""

from __future__ import annotations

from doctor.checks.api import PUSH, exporter
from doctor.context import Context
from doctor.errors import Skipped, Unreachable
from doctor.model import Check, Outcome
from doctor.panels import PRIMED
from telemetry.catalog import API_JOB

AGENT = "otlp-agent"
DELIVERY_SLACK_S = 5.0  # batching in the agent, remote write, a slow export
# Seconds since the newest pushed sample. `unless` outside timestamp(): of anything but a plain
# selector, timestamp() gives the evaluation time.
PUSHED_AGE = f'time() - max(timestamp({PRIMED}{{job="{API_JOB}"}}) unless on (job, instance) up)'


def push_mode(context: Context) -> bool | None:
    """True: the API pushes; False: it does not; None: unknown (the API was not asked, or
    did not answer)."""
    found = exporter(context)
    return None if found is None else found == PUSH


def metrics_path(context: Context) -> tuple[str, ...]:
    """What the API's series reach Prometheus through: the agent too when the API pushes (or
    when that is unknown and an agent was given, as `agent` takes it)."""
    return ("api",) if push_mode(context) is False else ("api", AGENT)


def agent(context: Context) -> Outcome:
    push = push_mode(context)
    url = context.url(AGENT)
    if url is None:
        if push:
            return Outcome(
                True,
                "push mode, but the agent the API pushes to is not checked: pass "
                "--otlp-agent URL (its health endpoint)",
                warning=True,
            )
        raise Skipped("pull mode: nothing is pushed" if push is False else "no --otlp-agent URL")
    try:
        response = context.get(AGENT, "")
    except Unreachable as exc:
        raise Unreachable(f"OTLP agent {exc}", AGENT) from None
    body = " ".join(response.text.split())[:80]
    if response.status_code != 200:
        return Outcome(False, f"OTLP agent {url} answers HTTP {response.status_code} {body}")
    mode = "" if push else " (the API does not push: not in its path)"
    return Outcome(True, f"{url} answers 200 {body}{mode}")


def freshness(context: Context) -> Outcome:
    push = push_mode(context)
    if push is False:
        raise Skipped("pull mode: Prometheus scrapes the API")
    if push is None and context.url(AGENT) is None:
        raise Skipped("push mode unknown: no answer from the API's /metrics, no --otlp-agent")
    interval = context.options.export_interval
    data = context.prometheus("/api/v1/query", {"query": PUSHED_AGE})
    result = data.get("result") or []
    every = f"export interval {interval:g} s"
    not_delivering = "the agent or the API's exporter is not delivering"
    if not result:
        # Scraped from a collector: stale at its first failed scrape. Remote-written: after
        # Prometheus' lookback (5 min by default) without a sample.
        return Outcome(
            False,
            f"no pushed {PRIMED} in Prometheus now (stale, or none for 5 min; {every}): "
            f"{not_delivering}",
        )
    age = float(result[0]["value"][1])
    if age > 2 * interval + DELIVERY_SLACK_S:
        return Outcome(False, f"pushed samples are {age:.0f} s old ({every}): {not_delivering}")
    return Outcome(True, f"newest pushed sample {age:.1f} s old ({every})")


CHECKS = (
    Check(
        AGENT,
        "agent answers",
        "Start the agent the API pushes to (OTEL_EXPORTER_OTLP_ENDPOINT) and check `curl -i "
        "{otlp_agent}`; {log_otlp_agent} says why it fails.",
        agent,
        needs=(),
        gate=True,
    ),
    Check(
        AGENT,
        "pushed samples fresh",
        "Check the agent (`curl -i {otlp_agent}`, {log_otlp_agent}), the API's log for export "
        "errors, OTEL_EXPORTER_OTLP_ENDPOINT, and the agent's delivery to {prometheus} "
        "(scraped, or remote write: --web.enable-remote-write-receiver); --export-interval "
        "must be the API's OTEL_METRIC_EXPORT_INTERVAL.",
        freshness,
        needs=("prometheus",),
        requires=("prometheus", "api"),
    ),
)
