"""The API: /health answers, the API key given is accepted where Alertmanager's webhook
presents it, /metrics answers, and /metrics shows the contract (pull mode)."""

from __future__ import annotations

from doctor.context import Context
from doctor.contract import exposition_findings
from doctor.errors import Failed, Skipped
from doctor.model import Check, Outcome
from telemetry.catalog import EXPORTER_HEADER, HOLD_HEADER

ALERT_INBOX = "/api/v1/alerts"  # Alertmanager's webhook posts to its /webhook
PUSH = "otlp"
OFF = ("none", "disabled")


def health(context: Context) -> Outcome:
    response = context.get("api", "/health")
    if response.status_code == 200:
        return Outcome(True, "healthy")
    try:
        checks = response.json().get("checks", {})
        failing = [name for name, c in checks.items() if c.get("status") != "ok"]
    except (ValueError, AttributeError):
        failing = []
    detail = f"failing: {', '.join(failing)}" if failing else response.text[:100]
    return Outcome(False, f"HTTP {response.status_code}; {detail}")


def api_key(context: Context) -> Outcome:
    """Alertmanager's webhook presents the key of its credentials_file as a bearer token; the
    alert inbox refuses deliveries with any other. A GET on the inbox (same guard, nothing
    stored) tells whether the API takes the key given."""
    if not context.options.api_key:
        raise Skipped("no --api-key given")
    response = context.get("api", ALERT_INBOX, {"limit": "1"})
    if response.status_code == 200:
        return Outcome(True, f"GET {ALERT_INBOX} with the key: 200")
    refused = " (the key given is refused)" if response.status_code == 401 else ""
    return Outcome(False, f"GET {ALERT_INBOX} with the key: HTTP {response.status_code}{refused}")


def _metrics(context: Context) -> tuple[str, str]:
    """(exporter, body) of a 200 /metrics; anything else fails with the reason."""
    # testboost_http_requests_total gets its first series from a request: make sure there was
    # one (answered from the memo when the /health check already ran).
    context.get("api", "/health")
    response = context.get("api", "/metrics")
    if response.status_code == 401:
        given = "the token given was refused" if context.options.metrics_token else "no token given"
        raise Failed(f"HTTP 401: /metrics needs a bearer token ({given})")
    if response.status_code != 200:
        raise Failed(f"HTTP {response.status_code}")
    return response.headers.get(EXPORTER_HEADER, "unknown"), response.text


def exporter(context: Context) -> str | None:
    """How the API exports its metrics (`prometheus`, `otlp`, ...), from its /metrics header;
    None when that cannot be known (no API URL, no answer, not a 200)."""
    if context.url("api") is None:
        return None
    try:
        return _metrics(context)[0]
    except Failed:  # Unreachable included
        return None


def new_series_hold(context: Context) -> float | None:
    """The API's new-series hold in seconds, from its /metrics header; None when the API does
    not send it (older than the header). Fails like `_metrics` when /metrics does not answer."""
    _metrics(context)
    value = context.get("api", "/metrics").headers.get(HOLD_HEADER)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise Failed(f"{HOLD_HEADER}: {value!r} is not a number of seconds") from None


def metrics(context: Context) -> Outcome:
    exporter, body = _metrics(context)
    if exporter in OFF:
        return Outcome(False, f"metrics turned off ({EXPORTER_HEADER}: {exporter})")
    if exporter == PUSH:
        return Outcome(True, "push mode (OTLP): the API pushes its metrics, /metrics is empty")
    samples = sum(1 for line in body.splitlines() if line.startswith("testboost_"))
    return Outcome(True, f"pull mode ({exporter}): {samples} testboost_* samples")


def families(context: Context) -> Outcome:
    exporter, body = _metrics(context)
    if exporter == PUSH:
        return Outcome(True, "push mode: families are checked in Prometheus instead")
    if exporter in OFF:
        return Outcome(False, f"metrics turned off ({exporter})")
    try:
        findings, seen = exposition_findings(body)
    except ValueError as exc:
        return Outcome(False, f"exposition does not parse: {exc}")
    return Outcome(not findings.problems, findings.summary(seen))


CHECKS = (
    Check(
        "api",
        "/health",
        "Start the API ({start_api}); a 503 names the failing dependency (database: "
        "TESTBOOST_DATABASE_URL): `curl -i {api}/health`, and {log_api}.",
        health,
        gate=True,
    ),
    Check(
        "api",
        "API key accepted",
        "--api-key must be the API's TESTBOOST_API_KEY, and so must the key Alertmanager's "
        "webhook presents (its credentials_file, the testboost-api-key secret), or alerts never "
        'reach the inbox: `curl -H "Authorization: Bearer $KEY" {api}/api/v1/alerts`.',
        api_key,
    ),
    Check(
        "api",
        "/metrics reachable",
        "`curl -i {api}/metrics` must answer 200: start the API; for 401 pass --metrics-token "
        "(TESTBOOST_METRICS_TOKEN); for none/disabled unset OTEL_METRICS_EXPORTER=none / "
        "OTEL_SDK_DISABLED.",
        metrics,
    ),
    Check(
        "api",
        "catalog families and labels",
        "`curl -s {api}/metrics` does not show the contract of telemetry/catalog.py "
        "(docs/metrics.md): deploy the API and the monitoring configs from the same version.",
        families,
    ),
)
