"""The fix under a failed check, filled in with where this run looks: every address and command
in it is one to paste as it is, whatever ports the stack was moved to.

A hint is a template (`str.format` fields):

- `{api}`, `{prometheus}`, `{alertmanager}`, `{grafana}`, `{otlp_agent}`, `{jaeger}`: the URL
  given for that component, or read from the local stack (`<api URL>` when there is none);
- `{api_port}`: the port the API answers on here;
- `{trace_service}`: the API's service.name, as Jaeger lists it;
- `{start_X}`, `{log_X}` (X one of the above): how to start that component and where its log
  is: compose's way, or the local stack's when the doctor read one (`--stack`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from doctor.context import Options
from doctor.local_stack import log_file, up_command

COMPONENTS = ("api", "prometheus", "alertmanager", "grafana", "otlp-agent", "jaeger")
# compose/*.yaml: how each component is started, and its container.
COMPOSE_START = {
    "api": "`make run`, or compose `up -d testboost-api`",
    "prometheus": "compose `up -d prometheus`",
    "alertmanager": "compose `up -d alertmanager`",
    "grafana": "compose `up -d grafana`",
    "otlp-agent": "compose `up -d otel-collector`",
    "jaeger": "compose `up -d jaeger`, with docker-compose.otel.yaml",
}
CONTAINERS = {
    "api": "testboost-api",
    "prometheus": "testboost-prometheus",
    "alertmanager": "testboost-alertmanager",
    "grafana": "testboost-grafana",
    "otlp-agent": "testboost-otel-collector",
    "jaeger": "testboost-jaeger",
}
# The local stack's process of each component (devstack.stack.COMPONENTS); no Grafana there.
STACK_PROCESSES = {
    "api": "api",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "otlp-agent": "otel-collector",
    "jaeger": "jaeger",
}

# When a component does not answer at all, the fix is the guide's first step for it.
UNREACHABLE = {
    "api": "Start the API ({start_api}) and check `curl -i {api}/health`; {log_api} says why "
    "it stopped.",
    "prometheus": "Start Prometheus ({start_prometheus}) and check `curl -i "
    "{prometheus}/-/ready`; {log_prometheus} says why it stopped.",
    "alertmanager": "Start Alertmanager ({start_alertmanager}) and check `curl -i "
    "{alertmanager}/-/ready`; {log_alertmanager} says why it stopped.",
    "grafana": "Start Grafana ({start_grafana}) and check `curl -i {grafana}/api/health`; "
    "{log_grafana} says why it stopped.",
    "otlp-agent": "Start the agent the API pushes OTLP to (OTEL_EXPORTER_OTLP_ENDPOINT; "
    "{start_otlp_agent}) and check `curl -i {otlp_agent}`; {log_otlp_agent} says why it "
    "stopped.",
    "jaeger": "Start Jaeger ({start_jaeger}) and check `curl -i {jaeger}/api/services`; "
    "{log_jaeger} says why it stopped.",
}


def fill(template: str, options: Options) -> str:
    return template.format_map(fields(options))


def fields(options: Options) -> dict[str, str]:
    values: dict[str, str] = {}
    for component in COMPONENTS:
        field = component.replace("-", "_")
        url: str | None = getattr(options, field)
        values[field] = url.rstrip("/") if url else f"<{component} URL>"
        process = STACK_PROCESSES.get(component)
        if options.stack is not None and process is not None:
            values[f"start_{field}"] = f"`{up_command(options.stack)}`"
            values[f"log_{field}"] = f"`{log_file(options.stack, process)}`"
        else:
            values[f"start_{field}"] = COMPOSE_START[component]
            values[f"log_{field}"] = f"`docker logs {CONTAINERS[component]}`"
    values["api_port"] = _port(options.api) or "<api port>"
    values["trace_service"] = options.trace_service
    return values


def _port(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return None if port is None else str(port)
