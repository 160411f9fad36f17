"""From what a request, an LLM attempt or a pool reports to the contract's label values.

Pure functions, tested table-style. Nothing here may pass through a value the client chose:
the HTTP method is folded onto the known set and the path is the route template.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from telemetry._compat import map_unit, sanitize_full_name
from telemetry.catalog import UNMATCHED_PATH, LLMOutcome

# HTTP semantic conventions, `http.request.method`: anything else is reported as `_OTHER`.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER_METHOD = "_OTHER"


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


def path_label(scope: Mapping[str, Any], endpoint_paths: Mapping[Any, str]) -> str:
    """The route template the router matched (`http.route`), or one fixed value.

    FastAPI puts its own routes in `scope["route"]`; for plain Starlette routes (/docs,
    /metrics) only the endpoint is left in the scope, so `endpoint_paths` maps it back.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    endpoint = scope.get("endpoint")
    return endpoint_paths.get(endpoint, UNMATCHED_PATH) if endpoint else UNMATCHED_PATH


def endpoint_paths(routes: Iterable[Any]) -> dict[Any, str]:
    """Endpoint → route template, for `path_label`."""
    return {
        route.endpoint: route.path
        for route in routes
        if getattr(route, "endpoint", None) is not None and isinstance(route.path, str)
    }


def route_label_sets(routes: Iterable[Any]) -> list[tuple[str, str]]:
    """(method, path) of every route and method the app serves: the HTTP label sets that can
    be known before the first request."""
    return sorted(
        {
            (method_label(method), route.path)
            for route in routes
            if isinstance(getattr(route, "path", None), str)
            for method in getattr(route, "methods", None) or ()
        }
    )


def status_label(status_code: int) -> str:
    return str(status_code)


def llm_error_type(outcome: str) -> str | None:
    """`error_type` for a failed attempt, None for a success: outcomes are the contract's own
    values (catalog.LLMOutcome)."""
    return None if outcome == LLMOutcome.SUCCESS else outcome


def pool_max(pool_size: int, max_overflow: int) -> int:
    """SQLAlchemy's QueuePool hands out at most size + overflow (overflow -1 means no cap,
    which we report as the size alone: the alert then compares against the steady pool)."""
    return pool_size + max(max_overflow, 0)


def prometheus_name(otel_name: str, unit: str, kind: str) -> str:
    """The exposed Prometheus name of an instrument, as the SDK's Prometheus exporter and the
    OTLP path name it: sanitised, the unit's suffix (`s` -> `_seconds`, `By` -> `_bytes`)
    unless already there, and `_total` last for counters. The one naming rule: the renderer
    (telemetry/exposition.py) calls it, and the catalog's instrument names are checked
    against it."""
    name = sanitize_full_name(otel_name)
    if kind == "counter":
        name = name.removesuffix("_total")
    suffix = map_unit(unit)
    if suffix and not name.endswith("_" + suffix):
        name = f"{name}_{suffix}"
    return name + "_total" if kind == "counter" else name
