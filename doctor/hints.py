"""The fix under a failed check, filled in with where this run looks: every address and command
in it is one to paste as it is, whatever ports the stack was moved to.

A hint is a template (`str.format` fields):

- `{api}`, `{prometheus}`, `{alertmanager}`, `{grafana}`, `{otlp_agent}`, `{jaeger}`: the URL
  given for that component, or read from the local stack (`<api URL>` when there is none);
- `{api_port}`: the port the API answers on here;
- `{trace_service}`: the API's service.name, as Jaeger lists it;
- `{start_X}`, `{log_X}` (X one of the above): how to start that component and where its log
  is, in the topology checked (doctor/topology.py): compose's services and containers, the
  local stack's command and log files, or Kubernetes' kubectl with docs/kubernetes.md's names
  (namespace and release `testboost`); `{restart_stack}`: the local stack's down and up;
- `{prometheus_targets}`, `{prometheus_rules}`, `{prometheus_alerts}`: where to see them, and
  `{run_query}`: how to run a query. The local stack runs Debian's Prometheus, whose 2.53 serves
  its pages under /classic/ and whose 3.5 has no web UI: its HTTP API, which every build answers.

A check whose fix differs by topology gives one template per topology (`Hint`); a probe may add
fields only it knows (`Outcome.fields`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from doctor.context import Options
from doctor.local_stack import DEFAULT_WORKDIR, command, log_file, up_command
from doctor.topology import Topology

Hint = str | Mapping[Topology, str]

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
# Kubernetes (docs/kubernetes.md): the chart's API in namespace `testboost`, the rest
# kube-prometheus-stack's (the operator labels its pods app.kubernetes.io/name) or yours.
KUBERNETES_START = {
    "api": "`kubectl -n testboost rollout status deployment/testboost`",
    "prometheus": "kube-prometheus-stack's: `kubectl get prometheus -A`",
    "alertmanager": "kube-prometheus-stack's: `kubectl get alertmanager -A`",
    "grafana": "kube-prometheus-stack's: `kubectl get deployment -A -l "
    "app.kubernetes.io/name=grafana`",
    "otlp-agent": "the collector you run, with the chart's testboost-otel-collector ConfigMap",
    "jaeger": "the Jaeger your collector sends traces to",
}
KUBERNETES_LOG = {
    "api": "`kubectl -n testboost logs deployment/testboost`",
    "prometheus": "`kubectl logs -n <namespace> -l app.kubernetes.io/name=prometheus`",
    "alertmanager": "`kubectl logs -n <namespace> -l app.kubernetes.io/name=alertmanager`",
    "grafana": "`kubectl logs -n <namespace> -l app.kubernetes.io/name=grafana`",
    "otlp-agent": "the collector pod's log (`kubectl logs`)",
    "jaeger": "the Jaeger pod's log (`kubectl logs`)",
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


def topology(options: Options) -> Topology:
    if options.topology is not None:
        return options.topology
    return Topology.LOCAL if options.stack is not None else Topology.COMPOSE


def fill(hint: Hint, options: Options, extra: Mapping[str, str] | None = None) -> str:
    """`hint` (its template for the topology checked) with the fields of `options`, and
    `extra`: the values a probe found."""
    template = hint if isinstance(hint, str) else hint[topology(options)]
    return template.format_map({**fields(options), **(extra or {})})


def fields(options: Options) -> dict[str, str]:
    where = topology(options)
    workdir = options.stack or DEFAULT_WORKDIR.resolve()
    values: dict[str, str] = {}
    for component in COMPONENTS:
        field = component.replace("-", "_")
        url: str | None = getattr(options, field)
        values[field] = url.rstrip("/") if url else f"<{component} URL>"
        process = STACK_PROCESSES.get(component)
        if where is Topology.LOCAL and process is not None:
            values[f"start_{field}"] = f"`{up_command(workdir)}`"
            values[f"log_{field}"] = f"`{log_file(workdir, process)}`"
        elif where is Topology.KUBERNETES:
            values[f"start_{field}"] = KUBERNETES_START[component]
            values[f"log_{field}"] = KUBERNETES_LOG[component]
        else:
            values[f"start_{field}"] = COMPOSE_START[component]
            values[f"log_{field}"] = f"`docker logs {CONTAINERS[component]}`"
    prometheus = values["prometheus"]
    if where is Topology.LOCAL:
        for page in ("targets", "rules", "alerts"):
            values[f"prometheus_{page}"] = f"{prometheus}/api/v1/{page}"
        values["run_query"] = (
            f"run the query with `curl -s {prometheus}/api/v1/query --data-urlencode query=...`"
        )
    else:
        for page in ("targets", "rules", "alerts"):
            values[f"prometheus_{page}"] = f"{prometheus}/{page}"
        values["run_query"] = f"run the query at {prometheus}/graph"
    again = up_command(workdir, options.stack_up_options)
    values["restart_stack"] = f"`{command('down', workdir)}`, then `{again}`"
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
