"""Jaeger, where the API's traces go (`--jaeger URL`, or the local stack's Jaeger with --stack
when it was started with --traces): its query API answers, and a request the doctor traces
reaches it under the API's service name.

Jaeger v2's query API (the HTTP JSON its UI reads; .tools/bin/jaeger is v1.76.0, configured by
otel-collector/jaeger.yaml):

- GET /api/services: `{"data": ["testboost-api", ...]}` (`null` while it knows none);
- GET /api/traces/TRACE_ID: `{"data": [trace]}`, 404 until the trace is stored;
- GET /api/traces?service=S&start=T&end=T&limit=N: traces of S with a span between start and
  end (microseconds). `lookback` is the UI's field: the API ignores it.

Why the doctor traces a request of its own: a trace in Jaeger says traces arrived once, not
that they still do (an idle API sends none; compose samples a tenth of the requests). The API
honours a sampled `traceparent` (parent-based samplers: the SDK's default and compose's), so
a read of the alert inbox (the API key check's; /health and /metrics are not traced) sent with
one must show in Jaeger within the API's export delay (batches every 5 s) and the collector's.
When it does not, the detail says what Jaeger holds instead: no such service, or its newest
trace's age.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from doctor.checks.api import ALERT_INBOX, PUSH, exporter
from doctor.context import Context
from doctor.errors import Failed, Skipped
from doctor.model import Check, Outcome

JAEGER = "jaeger"
SERVICES = "/api/services"
POLL_S = 0.5
LOOKBACK_S = 3600  # what "no recent trace" means when the doctor's own did not arrive
NEWEST_OF = 20  # traces asked for to find the newest (Jaeger does not promise an order)


def _services(context: Context, fresh: bool = False) -> list[str]:
    body = context.json(JAEGER, SERVICES, fresh=fresh)
    if not isinstance(body, dict) or "data" not in body:
        raise Failed(f"GET {SERVICES}: not Jaeger's query API (no `data`): {str(body)[:80]}")
    return [str(name) for name in body["data"] or []]


def answers(context: Context) -> Outcome:
    if context.url(JAEGER) is None:
        if context.options.stack is not None:
            raise Skipped("no Jaeger in the local stack (started without --traces)")
        pushing = exporter(context) == PUSH
        raise Skipped(
            "no --jaeger URL given"
            + (" (the API pushes: pass --jaeger URL if its traces go to Jaeger)" if pushing else "")
        )
    services = _services(context)
    return Outcome(True, f"{SERVICES}: {', '.join(services) or 'no service yet'}")


def traces(context: Context) -> Outcome:
    service = context.options.trace_service
    if context.url("api") is None:
        held, age = _held(context, service)
        if age is None:
            return Outcome(False, held)
        return Outcome(True, f"{held} (no --api: the doctor traced no request)", warning=True)
    trace_id = secrets.token_hex(16)
    started = time.monotonic()
    traced = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    context.get("api", ALERT_INBOX, {"limit": "1"}, headers=traced)
    found = _poll(context, trace_id, started + context.options.trace_wait)
    waited = time.monotonic() - started
    request = f"a request the doctor traced (GET {ALERT_INBOX})"
    if found is None:
        held, _ = _held(context, service)
        return Outcome(
            False, f"{request} not in Jaeger after {waited:.0f} s (trace {trace_id}); {held}"
        )
    processes = found.get("processes") or {}
    names = sorted({str(p.get("serviceName")) for p in processes.values()})
    if service not in names:
        return Outcome(
            False, f"{request} reached Jaeger as {', '.join(names) or '?'}, not as {service}"
        )
    return Outcome(True, f"{request} reached Jaeger as {service} in {waited:.1f} s")


def _poll(context: Context, trace_id: str, deadline: float) -> dict[str, Any] | None:
    """The trace once Jaeger holds it; None if it does not by `deadline`."""
    path = f"/api/traces/{trace_id}"
    while True:
        response = context.get(JAEGER, path, fresh=True)
        if response.status_code == 200:
            found = (response.json().get("data") or [None])[0]
            if isinstance(found, dict):
                return found
        elif response.status_code != 404:
            raise Failed(f"GET {path}: HTTP {response.status_code} {response.text[:80]}")
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S)


def _held(context: Context, service: str) -> tuple[str, float | None]:
    """What Jaeger holds of `service`, said in one line, and its newest trace's age (None:
    none in the last LOOKBACK_S)."""
    services = _services(context, fresh=True)
    if service not in services:
        known = ", ".join(services) or "none"
        return f"Jaeger knows no service {service!r} (it knows: {known})", None
    now = time.time()
    window = {
        "service": service,
        "start": str(int((now - LOOKBACK_S) * 1e6)),
        "end": str(int(now * 1e6)),
        "limit": str(NEWEST_OF),
    }
    body = context.json(JAEGER, "/api/traces", window, fresh=True)
    starts = [
        int(span.get("startTime") or 0)
        for trace in (body.get("data") if isinstance(body, dict) else None) or []
        for span in trace.get("spans") or []
    ]
    if not starts:
        return f"no trace of {service} in the last {LOOKBACK_S // 60} min", None
    age = max(0.0, now - max(starts) / 1e6)
    return f"the newest trace of {service} is {age:.0f} s old", age


CHECKS = (
    Check(
        JAEGER,
        "query API answers",
        "Start Jaeger ({start_jaeger}) and check `curl -s {jaeger}/api/services`; {log_jaeger} "
        "says why it does not answer. --jaeger is its query API (compose: port 16686), not "
        "its OTLP or health port.",
        answers,
        needs=(),
        gate=True,
    ),
    Check(
        JAEGER,
        "the API's traces arrive",
        "The API must export traces (OTEL_TRACES_EXPORTER=otlp, to OTEL_EXPORTER_OTLP_ENDPOINT) "
        "to the collector ({log_otlp_agent}), which sends them on to Jaeger's OTLP port "
        "(OTELCOL_TRACES_ENDPOINT); the API's OTEL_SERVICE_NAME must be {trace_service} "
        "(--trace-service): `curl -s {jaeger}/api/services` lists what Jaeger received.",
        traces,
        requires=("api", "otlp-agent"),
    ),
)
