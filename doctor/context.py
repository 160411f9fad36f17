"""What the checks share: the URLs given, credentials, and one HTTP client whose answers are
memoised, so that checks reading the same endpoint cost one request and a component that
cannot be reached costs one timeout, not one per check."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from doctor.errors import Failed, Unreachable
from doctor.topology import Topology
from telemetry.config import DEFAULT_SERVICE_NAME

COMPONENTS = ("api", "prometheus", "alertmanager", "grafana", "otlp-agent", "jaeger")


@dataclass(frozen=True)
class Options:
    api: str | None = None
    prometheus: str | None = None
    alertmanager: str | None = None
    grafana: str | None = None
    metrics_token: str | None = None
    grafana_token: str | None = None
    grafana_user: str | None = None
    grafana_password: str | None = None
    monitoring_dir: Path | None = None
    timeout: float = 5.0
    # Push mode: the health URL of the agent the API pushes to (its whole URL, path included).
    otlp_agent: str | None = None
    # Push mode: the API's OTEL_METRIC_EXPORT_INTERVAL, in seconds.
    export_interval: float = 15.0
    # The API key (TESTBOOST_API_KEY), sent to the alert inbox as Alertmanager's webhook sends it.
    api_key: str | None = None
    # The local stack's workdir when the doctor read one (--stack): hints name its commands.
    stack: Path | None = None
    # Its `stack up` options as recorded (Recorded.up_options): a restart's fix repeats them.
    stack_up_options: str = ""
    # Where the fixes point (doctor/topology.py); None: the local stack with `stack`, else
    # compose.
    topology: Topology | None = None
    # Jaeger's query API (compose: :16686), when the API's traces go there.
    jaeger: str | None = None
    # The API's service.name (OTEL_SERVICE_NAME), as Jaeger lists it.
    trace_service: str = DEFAULT_SERVICE_NAME
    # How long a request the doctor traced may take to show in Jaeger: the API's batch span
    # processor exports every 5 s (its schedule delay, by default), the collector batches again.
    trace_wait: float = 15.0
    # How long an Alertmanager still settling its cluster is polled before that is a warning.
    # Alone, it settles after a few polls of its peer count; this leaves it a margin.
    settle_wait: float = 12.0


class Context:
    def __init__(self, options: Options, client: httpx.Client | None = None) -> None:
        self.options = options
        self._client = client or httpx.Client(timeout=options.timeout, follow_redirects=False)
        self._responses: dict[tuple[str, str, tuple[tuple[str, str], ...]], httpx.Response] = {}
        self._unreachable: dict[str, str] = {}

    def close(self) -> None:
        self._client.close()

    def url(self, component: str) -> str | None:
        value: str | None = getattr(self.options, component.replace("-", "_"))
        return value.rstrip("/") if value else None

    def get(
        self,
        component: str,
        path: str,
        params: dict[str, str] | None = None,
        fresh: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """GET `path` on `component`; any HTTP status is returned, a transport error raises.
        `fresh`: ask again rather than answer from the memo (a state that changes, polled).
        `headers`: sent besides the credentials; such a request is never memoised."""
        base = self.url(component)
        if base is None:
            raise Failed(f"no {component} URL")
        if component in self._unreachable:
            raise Unreachable(self._unreachable[component], component)
        key = (component, path, tuple(sorted((params or {}).items())))
        if fresh or headers or key not in self._responses:
            try:
                response = self._client.get(
                    base + path,
                    params=params,
                    headers={**self._headers(component, path), **(headers or {})},
                )
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                self._unreachable[component] = f"{base} unreachable: {reason}"
                raise Unreachable(self._unreachable[component], component) from None
            if headers:
                return response
            self._responses[key] = response
        return self._responses[key]

    def json(
        self,
        component: str,
        path: str,
        params: dict[str, str] | None = None,
        fresh: bool = False,
    ) -> Any:
        """The JSON body of a 2xx answer; anything else is a failure naming the status."""
        response = self.get(component, path, params, fresh)
        if not response.is_success:
            raise Failed(f"GET {path}: HTTP {response.status_code} {_excerpt(response.text)}")
        try:
            return response.json()
        except ValueError:
            raise Failed(f"GET {path}: not JSON: {_excerpt(response.text)}") from None

    def prometheus(self, path: str, params: dict[str, str] | None = None) -> Any:
        """`data` of a Prometheus HTTP API answer (`{"status": "success", "data": ...}`)."""
        body = self.json("prometheus", path, params)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise Failed(f"GET {path}: {body.get('error') if isinstance(body, dict) else body}")
        return body.get("data")

    def _headers(self, component: str, path: str) -> dict[str, str]:
        o = self.options
        if component == "api" and path == "/metrics" and o.metrics_token:
            return {"Authorization": f"Bearer {o.metrics_token}"}
        if component == "api" and path.startswith("/api/") and o.api_key:
            return {"Authorization": f"Bearer {o.api_key}"}
        if component == "grafana" and o.grafana_token:
            return {"Authorization": f"Bearer {o.grafana_token}"}
        if component == "grafana" and o.grafana_user:
            pair = f"{o.grafana_user}:{o.grafana_password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}


def _excerpt(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
