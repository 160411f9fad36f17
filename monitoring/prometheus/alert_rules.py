"""The alert rules as configuration, the way kubernetes-mixin keeps them: named thresholds, one
runbook URL base, the recording rule the HTTP alerts share, and every alert, defined once here.

gen_alerts.py, beside it (`make rules`), writes monitoring/prometheus/alerts.yml (and the
pipeline's own alerts, pipeline-alerts.yml) from this module, and
tests/monitoring/test_rules_source.py fails when a committed file differs. The setup guide's
seven alert names are telemetry.catalog.GUIDE_ALERTS (the doctor ships without monitoring/).
To change a threshold: the constant below, `make rules`, then the promtool cases around it
(docs/maintenance.md).

Rules that hold in both topologies (scrape, or OTLP push through a collector) and with 1 or N
API replicas:
- aggregate with sum/max, never alert on raw series: every replica is its own `instance`, push
  mode adds one per worker process; the per-replica alerts (HealthCheckFailed,
  DBConnectionPoolExhausted) say so and name the instance, and APIReplicasMissing sees the
  replicas that service discovery no longer lists;
- ratio alerts need MIN_TRAFFIC requests or calls in their 5m window, so 1 failure out of 3
  cannot page anyone; with zero traffic the ratio is NaN or absent, never true;
- /metrics (the scrapes themselves: 20 per 5m at a 15s interval) is left out of HTTP ratios,
  or scraping alone would satisfy MIN_TRAFFIC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# API_JOB: the scrape job whose `up` says whether the API answers.
from telemetry.catalog import API_JOB, GUIDE_ALERTS

# --- Configuration ----------------------------------------------------------------------------

# Where the runbooks can be opened from an Alertmanager, Slack or Grafana link: every alert's
# runbook_url is this base + "#" + its name in lower case (a section of docs/runbooks.md).
# "testboost/testboost" is a placeholder: set your repository's (or docs site's) address.
RUNBOOK_BASE_URL = "https://github.com/testboost/testboost/blob/main/docs/runbooks.md"

MIN_TRAFFIC = 20  # requests or LLM calls in a ratio's 5m window before it may alert
MIN_WORKFLOWS = 5  # finished workflows of a type in 1h before its p95 may alert
# Failed (or slow) requests in the last hour before an SLO burn-rate alert may page: on a quiet
# night one 500 among 5 requests is a 20 % error ratio, far above any page's burn rate.
MIN_SLO_ERRORS = 5

# The setup guide's thresholds.
LLM_ERROR_RATIO = 0.05  # HighLLMErrorRate: failed LLM attempts / all attempts
LLM_RATE_LIMITS_PER_HOUR = 10  # LLMRateLimitHit
WORKFLOW_P95_SECONDS = 300  # SlowWorkflowExecution (a bucket boundary of the histogram)
ACTIVE_SESSIONS = 50  # TooManyActiveSessions
DB_POOL_RATIO = 0.9  # DBConnectionPoolExhausted: checked out / capacity, per process
API_P95_SECONDS = 5  # SlowAPIResponse (a bucket boundary of the histogram)
# The HTTP alerts added to the guide's.
HTTP_5XX_RATIO = 0.01
HTTP_4XX_RATIO = 0.10  # 404 excluded
HTTP_422_RATIO = 0.05
AUTH_FAILURES_PER_SECOND = 1  # 401 and 403, /metrics included

# The pipeline's own scrape jobs (prometheus.yml, scrape.d/otel-collector.yml).
COLLECTOR_JOB = "otel-collector"  # the collector's prometheus exporter: the pushed series
WATCHDOG = "Watchdog"  # always fires; Alertmanager routes it to a dead man's switch
API_UNAVAILABLE = "APIUnavailable"  # no replica answers: the inhibit rule's source
SLO_ERRORS_TOO_FEW = "SLOErrorsTooFewToPage"  # holds back the SLO pages of a quiet hour
NOT_SCRAPES = 'path!~"/metrics/?"'  # the HTTP ratios leave Prometheus' own scrapes out
# The non-/metrics request rate by status, shared by the HTTP ratio alerts
# (Prometheus' level:metric:operations naming).
API_REQUESTS_RATE = "status:testboost_http_requests:rate5m"

# --- Text helpers -----------------------------------------------------------------------------

VALUE = "{{ $value | humanize }}"
VALUE_PERCENT = "{{ $value | humanizePercentage }}"
VALUE_DURATION = "{{ $value | humanizeDuration }}"
_UNITS = (("h", 3600, "h"), ("m", 60, "min"), ("s", 1, "s"))


def label(name: str) -> str:
    """The alert's `name` label, as an annotation template."""
    return "{{ $labels." + name + " }}"


def percent(ratio: float) -> str:
    """0.05 -> "5 %"."""
    return f"{ratio * 100:g} %"


def duration(seconds: int, human: bool = False) -> str:
    """300 -> "5m" (Prometheus), or "5 min" when `human`; the largest unit that divides it."""
    for unit, size, word in _UNITS:
        if seconds % size == 0:
            return f"{seconds // size} {word}" if human else f"{seconds // size}{unit}"
    raise ValueError(f"not a whole number of seconds: {seconds}")


# --- Rules ------------------------------------------------------------------------------------

# "none": an alert that exists only to hold others back (Alertmanager routes it nowhere), as
# kube-prometheus' InfoInhibitor.
Severity = Literal["critical", "warning", "none"]


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    comment: str = ""


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str  # Prometheus' `for`
    severity: Severity
    summary: str
    description: str
    comment: str = ""

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_BASE_URL}#{self.name.lower()}"


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Recording | Alert, ...]


def _api_ratio(statuses: str, threshold: float) -> str:
    """Share of the API's requests (scrapes excluded) answering `statuses`, above `threshold`,
    with at least MIN_TRAFFIC requests in the 5m window (the rate times 300 s)."""
    return (
        "(\n"
        f"  sum({API_REQUESTS_RATE}{{{statuses}}})\n"
        f"    / sum({API_REQUESTS_RATE})\n"
        f") > {threshold:g}\n"
        f"and sum({API_REQUESTS_RATE}) * 300 >= {MIN_TRAFFIC}"
    )


LLM = Group(
    "testboost-llm",
    (
        Alert(
            "HighLLMErrorRate",
            comment=f"Failed LLM attempts / all attempts > {percent(LLM_ERROR_RATIO)}, over at "
            f"least {MIN_TRAFFIC} attempts (MIN_TRAFFIC).",
            expr="(\n"
            "  sum(rate(testboost_llm_errors_total[5m]))\n"
            "    / sum(rate(testboost_llm_calls_total[5m]))\n"
            f") > {LLM_ERROR_RATIO:g}\n"
            f"and sum(increase(testboost_llm_calls_total[5m])) >= {MIN_TRAFFIC}",
            for_="5m",
            severity="critical",
            summary=f"LLM error rate above {percent(LLM_ERROR_RATIO)}",
            description=f"{VALUE_PERCENT} of LLM calls failed over the last 5 minutes "
            f"(threshold {percent(LLM_ERROR_RATIO)}).",
        ),
        Alert(
            "LLMRateLimitHit",
            comment=f'More than {LLM_RATE_LIMITS_PER_HOUR} answers "429" from LLM providers '
            "within one hour.",
            expr=f"sum(increase(testboost_llm_rate_limit_total[1h])) > {LLM_RATE_LIMITS_PER_HOUR}",
            for_="5m",
            severity="warning",
            summary="LLM providers are rate-limiting TestBoost",
            description=f"{VALUE} LLM rate limits in the last hour "
            f"(threshold {LLM_RATE_LIMITS_PER_HOUR}/hour).",
        ),
    ),
)

WORKFLOWS = Group(
    "testboost-workflows",
    (
        Alert(
            "SlowWorkflowExecution",
            comment=f"p95 duration per workflow type > {duration(WORKFLOW_P95_SECONDS, True)} "
            f"({WORKFLOW_P95_SECONDS} s is a bucket boundary in the catalog, so the comparison "
            "is exact), over 1h because workflows are few, and at least "
            f"{MIN_WORKFLOWS} finished workflows of that type so one slow run alone does not "
            "alert.",
            expr="histogram_quantile(0.95,\n"
            "  sum by (le, workflow_type) (rate(testboost_workflow_duration_seconds_bucket[1h]))\n"
            f") > {WORKFLOW_P95_SECONDS}\n"
            "and on (workflow_type)\n"
            "sum by (workflow_type) (increase(testboost_workflow_duration_seconds_count[1h])) "
            f">= {MIN_WORKFLOWS}",
            for_="5m",
            severity="warning",
            summary=f"Slow {label('workflow_type')} workflows "
            f"(p95 above {duration(WORKFLOW_P95_SECONDS, True)})",
            description=f"p95 duration of {label('workflow_type')} workflows is "
            f"{VALUE_DURATION} over the last hour "
            f"(threshold {duration(WORKFLOW_P95_SECONDS)}).",
        ),
        Alert(
            "TooManyActiveSessions",
            comment="The gauge is a database count: every worker process reports the same "
            "number, so max.",
            expr=f"max(testboost_active_sessions) > {ACTIVE_SESSIONS}",
            for_="5m",
            severity="warning",
            summary=f"More than {ACTIVE_SESSIONS} active sessions",
            description=f"{VALUE} sessions are pending, in progress or paused "
            f"(threshold {ACTIVE_SESSIONS}).",
        ),
    ),
)

DATABASE = Group(
    "testboost-database",
    (
        Alert(
            "DBConnectionPoolExhausted",
            comment="Per process (each worker has its own pool; size and max carry identical "
            f'labels, so the division matches series one to one). ">= {DB_POOL_RATIO:g}" so a '
            f"pool exactly {percent(DB_POOL_RATIO)} checked out alerts; "
            '"max > 0" drops pools that report no capacity instead of dividing by zero.',
            expr="testboost_db_connection_pool_size\n"
            "  / (testboost_db_connection_pool_max > 0)\n"
            f">= {DB_POOL_RATIO:g}",
            for_="5m",
            severity="warning",
            summary="Database connection pool nearly exhausted",
            description=f"{VALUE_PERCENT} of the database connection pool is checked out on "
            f"{label('instance')} (threshold {percent(DB_POOL_RATIO)}).",
        ),
    ),
)

API = Group(
    "testboost-api",
    (
        Recording(
            API_REQUESTS_RATE,
            comment="The API's request rate by status, scrapes of /metrics excluded: what the "
            "HTTP ratio alerts below divide. In their group and before them, so each "
            "evaluation reads the value just recorded.",
            expr=f"sum by (status) (rate(testboost_http_requests_total{{{NOT_SCRAPES}}}[5m]))",
        ),
        Alert(
            "HealthCheckFailed",
            comment="Per replica: only the scrape of the API itself says whether it is up (see "
            "prometheus.yml), one alert per instance that does not answer. `absent`: with "
            "service discovery, replicas that are gone leave no `up` at all.",
            expr=f'up{{job="{API_JOB}"}} == 0\nor absent(up{{job="{API_JOB}"}})',
            for_="1m",
            severity="critical",
            summary="TestBoost API is down",
            description="{{ if $labels.instance }}Prometheus cannot scrape the API replica "
            f"{label('instance')} (job {label('job')}, up = {VALUE}){{{{ else }}}}Service "
            f"discovery finds no API replica (job {label('job')}){{{{ end }}}} for more than "
            "1 minute.",
        ),
        Alert(
            "APIReplicasMissing",
            comment="Fewer replicas answer than usually did over the last hour (the median "
            "count): with service discovery, a replica that stops or crash-loops leaves DNS "
            "and has no `up` at all, so HealthCheckFailed cannot see it. The median ignores "
            "the extra pod of a rolling update; after half an hour at the smaller count it "
            "is the new usual and the alert resolves (the orchestrator's desired count, e.g. "
            "kube-state-metrics, says how many should run).",
            expr=f'count(up{{job="{API_JOB}"}} == 1)\n'
            f'< quantile_over_time(0.5, count(up{{job="{API_JOB}"}})[1h:1m])',
            for_="10m",
            severity="warning",
            summary="Fewer TestBoost API replicas than usual",
            description=f"{VALUE} API replicas answer, fewer than over the last hour: one "
            "stopped, crash-loops or left service discovery.",
        ),
        Alert(
            API_UNAVAILABLE,
            comment="No replica answers: the whole API is down. Pages nobody (severity none, "
            "routed nowhere); while it fires, Alertmanager holds back every other TestBoost "
            "alert but HealthCheckFailed (alertmanager.yml, inhibit_rules): they read the "
            "API's own metrics. One replica down among several holds back nothing.",
            expr=f'absent(up{{job="{API_JOB}"}} == 1)',
            for_="1m",
            severity="none",
            summary="No TestBoost API replica answers (holds back the other TestBoost alerts)",
            description=f"No target of job {API_JOB} has answered a scrape for 1 minute "
            f"(absent = {VALUE}).",
        ),
        Alert(
            "SlowAPIResponse",
            comment=f"p95 per route template > {duration(API_P95_SECONDS, True)} (a bucket "
            f"boundary), with at least {MIN_TRAFFIC} requests on it.",
            expr="histogram_quantile(0.95,\n"
            "  sum by (le, path) (rate(testboost_http_request_duration_seconds_bucket[5m]))\n"
            f") > {API_P95_SECONDS}\n"
            "and on (path)\n"
            "sum by (path) (increase(testboost_http_request_duration_seconds_count[5m])) "
            f">= {MIN_TRAFFIC}",
            for_="5m",
            severity="warning",
            summary=f"Slow API responses on {label('path')} "
            f"(p95 above {duration(API_P95_SECONDS, True)})",
            description=f"p95 response time of {label('path')} is {VALUE_DURATION} over the "
            f"last 5 minutes (threshold {duration(API_P95_SECONDS)}).",
        ),
        Alert(
            "HighHTTP5xxErrorRate",
            expr=_api_ratio('status=~"5.."', HTTP_5XX_RATIO),
            for_="5m",
            severity="critical",
            summary=f"API server errors (5xx) above {percent(HTTP_5XX_RATIO)}",
            description=f"{VALUE_PERCENT} of API requests answered 5xx over the last 5 minutes "
            f"(threshold {percent(HTTP_5XX_RATIO)}).",
        ),
        Alert(
            "HighHTTP4xxErrorRate",
            comment="404 is left out: scanners and typos produce it, and it says nothing about "
            "TestBoost.",
            expr=_api_ratio('status=~"4..", status!="404"', HTTP_4XX_RATIO),
            for_="10m",
            severity="warning",
            summary=f"API client errors (4xx except 404) above {percent(HTTP_4XX_RATIO)}",
            description=f"{VALUE_PERCENT} of API requests answered 4xx (404 excluded) over the "
            f"last 5 minutes (threshold {percent(HTTP_4XX_RATIO)}).",
        ),
        Alert(
            "HighHTTPValidationErrorRate",
            expr=_api_ratio('status="422"', HTTP_422_RATIO),
            for_="10m",
            severity="warning",
            summary=f"API validation errors (422) above {percent(HTTP_422_RATIO)}",
            description=f"{VALUE_PERCENT} of API requests were rejected as invalid (422) over "
            f"the last 5 minutes (threshold {percent(HTTP_422_RATIO)}).",
        ),
        Alert(
            "HighHTTPAuthFailureRate",
            comment=f"An absolute rate, not a ratio: {AUTH_FAILURES_PER_SECOND}/s sustained is "
            f"{AUTH_FAILURES_PER_SECOND * 300} failures in 5 min, whatever the legitimate "
            "traffic (credential stuffing or a client with a revoked key). /metrics counts: a "
            "scrape refused for its token is an authentication failure too.",
            expr='sum(rate(testboost_http_requests_total{status=~"401|403"}[5m])) > '
            f"{AUTH_FAILURES_PER_SECOND}",
            for_="5m",
            severity="warning",
            summary="Many authentication failures (401/403)",
            description=f"{VALUE} requests per second are refused with 401/403 "
            f"(threshold {AUTH_FAILURES_PER_SECOND}/s).",
        ),
    ),
)

PIPELINE = Group(
    "testboost-pipeline",
    (
        Alert(
            WATCHDOG,
            comment="Always fires, so that its absence says something: Alertmanager sends it "
            "to a route of its own (alertmanager.yml) every minute, and an outside dead man's "
            "switch pages when it stops arriving (Prometheus, its rules or Alertmanager down, "
            "or their network cut).",
            expr="vector(1)",
            for_="0s",
            severity="none",
            summary="The alerting pipeline works (this alert always fires)",
            description="Prometheus evaluates rules and Alertmanager delivers them. Page when "
            "this heartbeat stops arriving.",
        ),
        Alert(
            "OTelCollectorDown",
            comment="Prometheus cannot scrape the collector: its prometheus exporter, which "
            "holds every pushed TestBoost series (push topology), or its own metrics, scraped "
            "wherever a collector runs (remote write, traces only). No collector, no such "
            "jobs: nothing fires.",
            expr=f'up{{job=~"{COLLECTOR_JOB}|{COLLECTOR_JOB}-telemetry"}} == 0',
            for_="1m",
            severity="critical",
            summary="OpenTelemetry Collector is down",
            description=f"Prometheus cannot scrape the collector at {label('instance')} (job "
            f"{label('job')}): what goes through it, pushed metrics or traces, is lost, and "
            "the TestBoost alerts see frozen values.",
        ),
        Alert(
            "APIMetricsStale",
            comment="The API answers Prometheus' scrapes, yet the count of those very scrapes "
            "(testboost_http_requests_total of /metrics, which advances with every scrape) "
            "stops advancing: the API's numbers no longer reach Prometheus. In push mode they "
            "travel API -> OTLP -> collector -> Prometheus, and the collector keeps serving the "
            "last values (metric_expiration), so a broken push looks like a quiet API. Holds in "
            "pull mode too. Covers a collector that Prometheus no longer scrapes at all, which "
            "OTelCollectorDown cannot see. Only once the API has been scraped for the whole "
            "window (up 5m ago too): a starting API has no rate yet.",
            expr=f'sum(up{{job="{API_JOB}"}}) > 0\n'
            f'and on () sum(up{{job="{API_JOB}"}} offset 5m) > 0\n'
            'unless sum(rate(testboost_http_requests_total{path=~"/metrics/?"}[5m])) > 0',
            for_="5m",
            severity="critical",
            summary="TestBoost's metrics stopped arriving",
            description="The API answers, but its metrics have not advanced for 10 minutes "
            "(a 5 min rate, then 5 min more): every TestBoost alert reads stale values.",
        ),
        Alert(
            "OTelCollectorExportFailing",
            comment="Batches the collector gave up on (send_failed: still failing after "
            "retry_on_failure's max_elapsed_time) or could not queue (enqueue_failed: sending "
            "queue full): data lost, per exporter (the traces to Jaeger, remote write).",
            expr="sum by (exporter) (rate({__name__=~"
            '"otelcol_exporter_(send|enqueue)_failed_(spans|metric_points|log_records)_total"'
            "}[5m])) > 0",
            for_="1m",
            severity="warning",
            summary=f"OpenTelemetry Collector exporter {label('exporter')} is losing data",
            description=f"The collector drops {VALUE} items per second it cannot export "
            f"through {label('exporter')}.",
        ),
        Alert(
            "PrometheusRuleFailures",
            comment="A rule that fails to evaluate cannot fire: whatever it watches goes "
            "unwatched.",
            expr="sum by (rule_group) (increase(prometheus_rule_evaluation_failures_total[5m])) "
            "> 0",
            for_="1m",
            severity="critical",
            summary="Prometheus fails to evaluate rules",
            description=f"{VALUE} rule evaluations failed in the last 5 minutes in "
            f"{label('rule_group')}.",
        ),
        Alert(
            "PrometheusNotificationsFailing",
            comment="Per Alertmanager: with an HA pair one failing still leaves the other. When "
            "none can be reached this alert cannot be delivered either; the Watchdog's dead "
            "man's switch pages then.",
            expr="sum by (alertmanager) (rate(prometheus_notifications_errors_total[5m])) > 0",
            for_="1m",
            severity="warning",
            summary="Prometheus cannot send alerts to an Alertmanager",
            description=f"Prometheus fails to send {VALUE} alerts per second to "
            f"{label('alertmanager')}.",
        ),
        Alert(
            "AlertmanagerNotificationsFailing",
            comment="Alertmanager's receivers (webhook, email, Slack, PagerDuty) are failing: "
            "pages are lost. Delivered through whichever integrations still work.",
            expr="sum by (integration) (rate(alertmanager_notifications_failed_total[5m])) > 0",
            for_="1m",
            severity="critical",
            summary=f"Alertmanager fails to deliver {label('integration')} notifications",
            description=f"{VALUE} {label('integration')} notifications per second fail.",
        ),
    ),
)


def _too_few(slo: str, bad_requests: str) -> str:
    """`slo` (the Sloth SLO's name) when fewer than MIN_SLO_ERRORS requests went bad in 1h."""
    return (
        f"label_replace(\n  ({bad_requests} or vector(0)) < {MIN_SLO_ERRORS},\n"
        f'  "sloth_slo", "{slo}", "", ""\n)'
    )


_SLO_REQUESTS = "testboost_http_request_duration_seconds"

SLO = Group(
    "testboost-slo",
    (
        Alert(
            SLO_ERRORS_TOO_FEW,
            comment="Pages nobody (severity none). While an HTTP SLO had fewer than "
            f"{MIN_SLO_ERRORS} failed (or slow) requests in the last hour, Alertmanager holds "
            "back that SLO's burn-rate page (alertmanager.yml, inhibit_rules; slo-rules.yml "
            "from monitoring/slo/testboost.yml): a quiet night's single 500 is a huge ratio "
            "and no emergency. The budget and the tickets still count every error.",
            expr=_too_few(
                "api-availability",
                f'sum(increase(testboost_http_requests_total{{{NOT_SCRAPES}, status=~"5.."}}[1h]))',
            )
            + "\nor\n"
            + _too_few(
                "api-latency",
                f"sum(increase({_SLO_REQUESTS}_count{{{NOT_SCRAPES}}}[1h]))\n"
                f'  - sum(increase({_SLO_REQUESTS}_bucket{{{NOT_SCRAPES}, le="0.5"}}[1h]))',
            ),
            for_="0s",
            severity="none",
            summary=f"Fewer than {MIN_SLO_ERRORS} bad requests in 1h for "
            f"{label('sloth_slo')} (holds back its page)",
            description=f"{VALUE} bad requests in the last hour for {label('sloth_slo')}: "
            "too few to page for, whatever their ratio.",
        ),
    ),
)

GROUPS: tuple[Group, ...] = (LLM, WORKFLOWS, DATABASE, API, SLO)
# The pipeline's own alerts, in their own file (pipeline-alerts.yml): they watch Prometheus,
# Alertmanager and the collector rather than TestBoost.
PIPELINE_GROUPS: tuple[Group, ...] = (PIPELINE,)
ALERTS: tuple[Alert, ...] = tuple(r for g in GROUPS for r in g.rules if isinstance(r, Alert))
RECORDINGS: tuple[Recording, ...] = tuple(
    r for g in GROUPS for r in g.rules if isinstance(r, Recording)
)
PIPELINE_ALERTS: tuple[Alert, ...] = tuple(
    r for g in PIPELINE_GROUPS for r in g.rules if isinstance(r, Alert)
)
# The setup guide's seven are among them (telemetry.catalog.GUIDE_ALERTS names them for the
# doctor, which ships without this folder).
if _missing := set(GUIDE_ALERTS) - {a.name for a in ALERTS}:
    raise RuntimeError(f"telemetry.catalog.GUIDE_ALERTS names no alert here: {_missing}")
