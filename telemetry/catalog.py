"""The metrics contract: every family Prometheus sees from the API, in one table — the
``testboost_*`` families of the setup guide and the process' runtime figures.

Instruments, the docs' metrics reference, the contract tests and the static check of
every PromQL expression in alert rules and dashboards are all derived from ``CATALOG``.
Names here are the *exposed* Prometheus names; ``otel_name`` is the instrument name that the
OpenTelemetry → Prometheus naming rules (counter ``_total``, unit ``s`` → ``_seconds``) turn
into that exposed name, on the in-process exporter and on the OTLP path alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


# Every alert threshold is a boundary, so `histogram_quantile` is exact where it matters:
# 5 s for SlowAPIResponse, 300 s for SlowWorkflowExecution.
# fmt: off
HTTP_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
WORKFLOW_BUCKETS: tuple[float, ...] = (
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
)
LLM_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)
# fmt: on

# The `job` label of every series the API exposes: Prometheus' scrape job in pull mode, and
# the default service.name, which the collector turns into `job`, in push mode.
API_JOB = "testboost-api"

# What every /metrics answer says of the API in its headers (the doctor reads them): how it
# exports its metrics, and how long a new series shows 0 before its first value
# (telemetry/series_start.py), in seconds.
EXPORTER_HEADER = "x-testboost-metrics-exporter"
HOLD_HEADER = "x-testboost-new-series-hold-seconds"

# The exposed suffix of each unit the catalog uses (telemetry.mapping.prometheus_name adds it).
UNIT_SUFFIXES = {"s": "_seconds", "By": "_bytes"}
GC_GENERATIONS = ("0", "1", "2")

# Closed label value sets: defined here once; the API's own types derive from them
# (app/llm/outcomes.py, app/workflows/definitions.py).


class LLMOutcome(StrEnum):
    """How an LLM attempt ends, exactly one per attempt; every value but `success` is an
    `error_type`."""

    SUCCESS = "success"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    AUTH = "auth"
    INVALID_REQUEST = "invalid_request"
    SERVER_ERROR = "server_error"


class WorkflowStatus(StrEnum):
    """How a workflow ends: the `status` label of testboost_workflow_total."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


LLM_ERROR_TYPES = tuple(o.value for o in LLMOutcome if o is not LLMOutcome.SUCCESS)
WORKFLOW_STATUSES = tuple(s.value for s in WorkflowStatus)
# The `path` label of requests that matched no route: one fixed value, whatever the client sent.
UNMATCHED_PATH = "<unmatched>"


@dataclass(frozen=True)
class MetricFamily:
    name: str  # exposed Prometheus family name (counters include `_total`)
    kind: Kind
    labels: tuple[str, ...]
    description: str
    unit: str = ""  # OpenTelemetry unit: "s" for seconds; never "1" (becomes `_ratio` on OTLP)
    buckets: tuple[float, ...] = ()
    # How a gauge of several pull-mode workers is merged into the one series a scrape shows
    # (telemetry/multiprocess.py): "sum" over live workers, or "max" for a value every worker
    # reads alike. Counters and histograms are always summed.
    across_workers: str = "sum"
    # Read by a callback at each collection (telemetry/runtime.py) rather than recorded.
    observed: bool = False

    @property
    def otel_name(self) -> str:
        """Instrument name whose Prometheus translation is ``name`` (checked against the one
        naming rule, telemetry.mapping.prometheus_name, by tests/unit/test_mapping.py)."""
        base = self.name
        if self.kind is Kind.COUNTER:
            base = base.removesuffix("_total")
        return base.removesuffix(UNIT_SUFFIXES.get(self.unit, "\0"))

    @property
    def series_names(self) -> tuple[str, ...]:
        """Every sample name this family produces in the exposition."""
        if self.kind is Kind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


# Each family once, by the name the code records it under.
LLM_CALLS = MetricFamily(
    "testboost_llm_calls_total",
    Kind.COUNTER,
    ("provider", "model"),
    "LLM attempts, each counted once whatever its outcome.",
)

LLM_ERRORS = MetricFamily(
    "testboost_llm_errors_total",
    Kind.COUNTER,
    ("provider", "error_type"),
    "Failed LLM attempts, each counted once, by error type.",
)

LLM_RATE_LIMITS = MetricFamily(
    "testboost_llm_rate_limit_total",
    Kind.COUNTER,
    ("provider",),
    "LLM attempts answered 429 (also counted in testboost_llm_errors_total).",
)

WORKFLOWS = MetricFamily(
    "testboost_workflow_total",
    Kind.COUNTER,
    ("workflow_type", "status"),
    "Finished workflows by type and final status.",
)

HTTP_REQUESTS = MetricFamily(
    "testboost_http_requests_total",
    Kind.COUNTER,
    ("method", "path", "status"),
    "HTTP requests served, by route template and status code.",
)

ACTIVE_SESSIONS = MetricFamily(
    "testboost_active_sessions",
    Kind.GAUGE,
    (),
    "Sessions pending, in progress or paused, as the database says.",
    across_workers="max",
)

DB_POOL_SIZE = MetricFamily(
    "testboost_db_connection_pool_size",
    Kind.GAUGE,
    (),
    "Database connections currently checked out of the pool (summed over workers).",
)

DB_POOL_MAX = MetricFamily(
    "testboost_db_connection_pool_max",
    Kind.GAUGE,
    (),
    "Most connections the pool will hand out (pool_size + max_overflow; summed over workers).",
)

WORKFLOW_DURATION = MetricFamily(
    "testboost_workflow_duration_seconds",
    Kind.HISTOGRAM,
    ("workflow_type",),
    "Duration of finished workflows, from start (or creation if never started) to end.",
    unit="s",
    buckets=WORKFLOW_BUCKETS,
)

LLM_DURATION = MetricFamily(
    "testboost_llm_request_duration_seconds",
    Kind.HISTOGRAM,
    ("provider",),
    "Duration of each LLM attempt.",
    unit="s",
    buckets=LLM_BUCKETS,
)

HTTP_DURATION = MetricFamily(
    "testboost_http_request_duration_seconds",
    Kind.HISTOGRAM,
    ("method", "path"),
    "Duration of HTTP requests, by route template.",
    unit="s",
    buckets=HTTP_BUCKETS,
)

# The process' own figures, under the names every Prometheus client library uses (what
# operators' process dashboards and alerts already query), read at each collection.
PROCESS_CPU = MetricFamily(
    "process_cpu_seconds_total",
    Kind.COUNTER,
    (),
    "User and system CPU time spent by the process (summed over workers).",
    unit="s",
    observed=True,
)

PROCESS_MEMORY = MetricFamily(
    "process_resident_memory_bytes",
    Kind.GAUGE,
    (),
    "Resident memory of the process (summed over workers).",
    unit="By",
    observed=True,
)

PROCESS_OPEN_FDS = MetricFamily(
    "process_open_fds",
    Kind.GAUGE,
    (),
    "Open file descriptors of the process (summed over workers).",
    observed=True,
)

PROCESS_MAX_FDS = MetricFamily(
    "process_max_fds",
    Kind.GAUGE,
    (),
    "The process' file descriptor limit (summed over workers).",
    observed=True,
)

GC_COLLECTIONS = MetricFamily(
    "python_gc_collections_total",
    Kind.COUNTER,
    ("generation",),
    "Garbage collector runs, by generation.",
    observed=True,
)

GC_COLLECTED = MetricFamily(
    "python_gc_objects_collected_total",
    Kind.COUNTER,
    ("generation",),
    "Objects the garbage collector freed, by generation.",
    observed=True,
)

GC_UNCOLLECTABLE = MetricFamily(
    "python_gc_objects_uncollectable_total",
    Kind.COUNTER,
    ("generation",),
    "Objects the garbage collector found uncollectable, by generation.",
    observed=True,
)

CATALOG: tuple[MetricFamily, ...] = (
    LLM_CALLS,
    LLM_ERRORS,
    LLM_RATE_LIMITS,
    WORKFLOWS,
    HTTP_REQUESTS,
    ACTIVE_SESSIONS,
    DB_POOL_SIZE,
    DB_POOL_MAX,
    WORKFLOW_DURATION,
    LLM_DURATION,
    HTTP_DURATION,
    PROCESS_CPU,
    PROCESS_MEMORY,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    GC_COLLECTIONS,
    GC_COLLECTED,
    GC_UNCOLLECTABLE,
)

BY_NAME: dict[str, MetricFamily] = {family.name: family for family in CATALOG}
BY_OTEL_NAME: dict[str, MetricFamily] = {family.otel_name: family for family in CATALOG}


def family_for_series(series_name: str) -> MetricFamily | None:
    """The catalog family a sample name (``x_bucket``, ``x_total``…) belongs to, if any."""
    for family in CATALOG:
        if series_name in family.series_names:
            return family
    return None


# The setup guide's seven preconfigured alerts (its table: name, threshold, severity): defined
# in monitoring/prometheus/alert_rules.py, checked present by the doctor.
GUIDE_ALERTS: tuple[str, ...] = (
    "HighLLMErrorRate",
    "LLMRateLimitHit",
    "SlowWorkflowExecution",
    "TooManyActiveSessions",
    "DBConnectionPoolExhausted",
    "HealthCheckFailed",
    "SlowAPIResponse",
)
