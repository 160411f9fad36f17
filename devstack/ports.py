"""Every port the local stack listens on. One flag sets each component's main port (`stack up
--otel-collector-port`, ...); the other ports a component opens sit at fixed offsets from it
(the table in docs/local-stack.md), so moving a component moves all its ports and nothing
binds a port the OS picks (`:0`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from devstack.configs import StackError
from devstack.processes import free_port, is_free

# The setup guide's ports, and compose's for the collector (OTLP/HTTP) and Jaeger (query): each
# component's main port when its flag is not given.
DEFAULT_PORTS = {
    "api": 8000,
    "prometheus": 9090,
    "alertmanager": 9093,
    "otel-collector": 4318,
    "jaeger": 16686,
}


class Listener(NamedTuple):
    name: str  # its key in Stack.ports
    offset: int  # from its component's main port
    what: str
    page: str = ""  # the path a browser opens there; none: not a page (gRPC, OTLP in)


# Each component's ports besides its main one. The collector's gRPC receiver sits below its
# OTLP/HTTP one as in compose (4317/4318); Jaeger's query gRPC below its query HTTP, as Jaeger's
# own defaults (16685/16686).
LISTENERS: dict[str, tuple[Listener, ...]] = {
    "otel-collector": (
        Listener("otel-collector-grpc", -1, "OTLP/gRPC in"),
        Listener("otel-collector-metrics", 1, "the pushed series Prometheus scrapes", "/metrics"),
        Listener("otel-collector-telemetry", 2, "the collector's own metrics", "/metrics"),
        Listener("otel-collector-health", 3, "health check", "/status"),
    ),
    "jaeger": (
        Listener("jaeger-query-grpc", -1, "query gRPC API"),
        Listener("jaeger-otlp", 1, "OTLP/gRPC in (from the collector)"),
        Listener("jaeger-otlp-http", 2, "OTLP/HTTP in"),
        Listener("jaeger-health", 3, "health check", "/status"),
    ),
}
_BY_NAME = {
    listener.name: (component, listener)
    for component, listeners in LISTENERS.items()
    for listener in listeners
}


def component_ports(
    component: str, port: int, alertmanagers: Sequence[str] = ("alertmanager",)
) -> dict[str, int]:
    """Every port of `component` by name, its main `port` first. Alertmanager instances come in
    pairs from `port`: web, then, when clustered, gossip (Alertmanager's own 9093/9094)."""
    if component != "alertmanager":
        extra = {listener.name: port + listener.offset for listener in LISTENERS.get(component, ())}
        return {component: port, **extra}
    ports = {}
    for index, instance in enumerate(alertmanagers):
        ports[instance] = port + 2 * index
        if len(alertmanagers) > 1:
            ports[f"{instance}-cluster"] = port + 2 * index + 1
    return ports


def owner(name: str) -> str:
    """The component whose `--<component>-port` flag moves port `name`."""
    if name in _BY_NAME:
        return _BY_NAME[name][0]
    return "alertmanager" if name.startswith("alertmanager") else name


def page(name: str) -> str:
    """The path a browser opens on port `name` (not a component's main port), or ""."""
    return _BY_NAME[name][1].page if name in _BY_NAME else ""


def what(name: str) -> str:
    """What listens on port `name`, when it is not its component's main port."""
    if name in _BY_NAME:
        return _BY_NAME[name][1].what
    if name.endswith("-cluster"):
        return f"{name.removesuffix('-cluster')}'s cluster gossip (TCP and UDP)"
    return "another Alertmanager of the cluster" if name.startswith("alertmanager-") else ""


def choose(
    component: str, taken: Collection[int], alertmanagers: Sequence[str] = ("alertmanager",)
) -> dict[str, int]:
    """Ports for a component asked on port 0: a free main port whose other ports are free too
    and not in `taken` (free_port never hands any of them out again)."""
    offsets = list(component_ports(component, 0, alertmanagers).values())
    for _ in range(100):
        ports = component_ports(component, free_port(offsets), alertmanagers)
        if not set(ports.values()) & set(taken):
            return ports
    raise StackError(f"no free ports found for {component}")


def check(ports: Mapping[str, int]) -> None:
    """Before a start: every port valid, distinct and free, else a one-line error naming the
    port and the flag that moves it."""
    seen: dict[int, str] = {}
    for name, port in ports.items():
        where = _where(name, ports)
        if not 0 < port < 65536:
            raise StackError(f"port {port} ({where}) is out of range: move it with {_flag(name)}")
        if port in seen:
            raise StackError(
                f"port {port} is both {_where(seen[port], ports)} and {where}: move one with "
                f"{_flag(seen[port])} or {_flag(name)}"
            )
        seen[port] = name
        if not is_free(port):
            raise StackError(
                f"port {port} ({where}) is already in use on 127.0.0.1: stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'`) or move it with {_flag(name)}"
            )


def _flag(name: str) -> str:
    return f"--{owner(name)}-port"


def _where(name: str, ports: Mapping[str, int]) -> str:
    """`prometheus`, or for a derived port `otel-collector-health = --otel-collector-port +3`."""
    main = owner(name)
    if name == main or main not in ports:
        return name
    return f"{name} = {_flag(name)} {ports[name] - ports[main]:+d}"
