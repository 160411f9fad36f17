"""`Stack`: start the chain API → Prometheus → rules → Alertmanager → API webhook (and, in push
mode, API → OTLP → our OpenTelemetry Collector → Prometheus, which scrapes the collector's
`prometheus` exporter or receives its remote writes; with traces, collector → Jaeger) as local
processes, and stop exactly what was started."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from devstack.configs import (
    REPO,
    StackError,
    alertmanager_instances,
    prometheus_config,
    write_configs,
)
from devstack.ports import DEFAULT_PORTS, check, choose, component_ports
from devstack.processes import (
    Process,
    find_tool,
    prometheus_web_assets,
    wait_ready,
)
from doctor.local_stack import SECTION, Recorded

# Start order (receivers first, so nothing the API sends is lost); stop order is the reverse.
# With `alertmanagers=N`, "alertmanager" stands for N instances: alertmanager, alertmanager-2, …
COMPONENTS = ("alertmanager", "prometheus", "jaeger", "otel-collector", "api")
# Where each component answers "ready": (port name, path).
READY = {
    "api": ("api", "/health"),
    "prometheus": ("prometheus", "/-/ready"),
    "alertmanager": ("alertmanager", "/-/ready"),
    "otel-collector": ("otel-collector-health", "/status"),
    "jaeger": ("jaeger-health", "/status"),
}
COLLECTOR = REPO / "otel-collector"
# Variables the stack sets for the API; inherited ones would silently change what it tests.
OWNED_ENV_PREFIXES = ("TESTBOOST_", "OTEL_")


@dataclass
class StackConfig:
    workdir: Path
    mode: Literal["pull", "push"] = "pull"
    # 0: pick a free port. A component's other ports sit at fixed offsets from this one
    # (devstack/ports.py). Chosen ports are kept across stop()/start().
    api_port: int = 0
    prometheus_port: int = 0
    alertmanager_port: int = 0
    otel_collector_port: int = 0  # the collector's OTLP/HTTP receiver (compose: 4318)
    jaeger_port: int = 0  # Jaeger's query API and UI (compose: 16686)
    # Push mode: how the collector hands metrics to Prometheus. "scrape": its `prometheus`
    # exporter, scraped as job otel-collector (the default, as compose runs it);
    # "remote-write": otel-collector/remote-write.yaml merged in.
    push_via: Literal["scrape", "remote-write"] = "scrape"
    # Traces: the API sends them (every request sampled) to the collector, which sends them to
    # Jaeger. In pull mode the collector runs for the traces alone (Prometheus still scrapes
    # the API, OpenMetrics with exemplars); in push mode it carries the metrics too.
    traces: bool = False
    # How the API is served: `testboost serve` (the default), or plain `uvicorn --workers N`
    # with TESTBOOST_METRICS_DIR, the documented way for servers other than ours.
    server: Literal["testboost", "uvicorn"] = "testboost"
    # Tests: 1 s scrape/evaluation/export intervals, `for` and Alertmanager group timings.
    fast: bool = False
    # The key the API requires and Alertmanager's webhook presents; None: a random one.
    api_key: str | None = None
    # Extra environment for the API (TESTBOOST_*, OTEL_*), applied last.
    api_env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    # The Prometheus binary in .tools/bin (or on PATH): `prometheus` (the 2.x series) or
    # `prometheus3`, both installed by `make tools`.
    prometheus_binary: str = "prometheus"
    # More Prometheus flags (tests), after the stack's own.
    prometheus_args: tuple[str, ...] = ()
    # Alertmanager instances. 1: clustering off, as the stack always ran it. N > 1: an HA
    # cluster as operators run one, gossiping on loopback (components alertmanager,
    # alertmanager-2, …, each with its own data), every instance a target of Prometheus.
    alertmanagers: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("pull", "push"):
            raise StackError(f"mode must be 'pull' or 'push', not {self.mode!r}")
        if self.workers < 1:
            raise StackError("workers must be at least 1")
        if self.alertmanagers < 1:
            raise StackError("alertmanagers must be at least 1")
        if self.push_via not in ("scrape", "remote-write"):
            raise StackError(f"push_via must be 'scrape' or 'remote-write', not {self.push_via!r}")
        self.workdir = Path(self.workdir).resolve()
        self.prometheus_args = tuple(self.prometheus_args)  # a list when read from state


def new_api_key() -> str:
    """Hex: never a leading '-', which the CLIs the key is handed to would take for an option."""
    return secrets.token_hex(24)


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.workdir = config.workdir
        self.api_key = config.api_key or new_api_key()
        wanted = {
            "api": config.api_port,
            "prometheus": config.prometheus_port,
            "alertmanager": config.alertmanager_port,
            "otel-collector": (
                config.otel_collector_port if config.mode == "push" or config.traces else None
            ),
            "jaeger": config.jaeger_port if config.traces else None,
        }
        self.alertmanagers = alertmanager_instances(config.alertmanagers)
        self.components = tuple(
            instance
            for name in COMPONENTS
            if wanted[name] is not None
            for instance in (self.alertmanagers if name == "alertmanager" else (name,))
        )
        # Every port each component listens on, by name (devstack/ports.py).
        # Those asked for first, so that ports chosen for the others (port 0) avoid them all.
        self.ports: dict[str, int] = {}
        for name, port in wanted.items():
            if port:
                self.ports.update(component_ports(name, port, self.alertmanagers))
        for name, port in wanted.items():
            if port == 0:
                self.ports.update(choose(name, self.ports.values(), self.alertmanagers))
        if config.push_via == "remote-write":
            self.ports.pop("otel-collector-metrics", None)  # the overlay drops its exporter
        self.processes: dict[str, Process] = {}

    # --- public surface -------------------------------------------------------------------

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    @property
    def clustered(self) -> bool:
        """Several Alertmanagers, clustered (an HA pair or more)."""
        return len(self.alertmanagers) > 1

    @property
    def database_url(self) -> str:
        return self.api_environment()["TESTBOOST_DATABASE_URL"]

    def up(self, timeout: float = 60) -> None:
        """Start every component, wait until each answers its readiness check and Prometheus
        holds the API's first metrics; on any failure, stop what was started and raise."""
        check(self.ports)
        self.workdir.mkdir(parents=True, exist_ok=True)
        scrape_collector = self.config.mode == "push" and self.config.push_via == "scrape"
        write_configs(
            self.workdir,
            self.ports,
            self.api_key,
            self.config.fast,
            scrape_collector,
            self.alertmanagers,
            collector="otel-collector" in self.components,
            # Until Prometheus has scraped the API: `up` is absent or 0 before, which pages
            # HealthCheckFailed at every start in fast mode (`for: 1s`).
            rules=False,
        )
        deadline, since = time.monotonic() + timeout, time.time()
        try:
            for name in self.components:
                self._spawn(name)
            for name in self.components:
                self._wait_ready(name, deadline)
            self._wait_first_data(since, deadline)
            self._evaluate_rules(deadline)
        except BaseException:
            self.down()
            raise

    def start(self, name: str, timeout: float = 60) -> None:
        """(Re)start one component with the same ports and configuration."""
        self._known(name)
        if name in self.processes and self.processes[name].alive():
            raise StackError(f"{name} is already running (pid {self.processes[name].pid})")
        self._spawn(name)
        self._wait_ready(name, time.monotonic() + timeout)

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop one component (SIGKILL to simulate a crash); the others keep running."""
        self._known(name)
        process = self.processes.get(name)
        if process is not None:
            process.stop(sig)

    def down(self) -> None:
        """Stop everything this stack started, API first. Data and logs stay in workdir."""
        for name in reversed(self.components):
            process = self.processes.get(name)
            if process is not None:
                process.stop()

    def status(self) -> dict[str, bool]:
        return {
            name: name in self.processes and self.processes[name].alive()
            for name in self.components
        }

    def log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def __enter__(self) -> Stack:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- state, for `testboost stack down|status` from another shell -----------------------

    def state(self) -> dict[str, Any]:
        """What `from_state` needs to act on this stack from another shell, restarts included
        (the API key stays in <workdir>/secrets/)."""
        config = self.config
        return {
            "mode": config.mode,
            "workdir": str(self.workdir),
            "urls": self.urls,
            "ports": self.ports,
            "config": {
                "fast": config.fast,
                "workers": config.workers,
                "push_via": config.push_via,
                "traces": config.traces,
                "prometheus_binary": config.prometheus_binary,
                "server": config.server,
                "api_env": config.api_env,
                "alertmanagers": config.alertmanagers,
                "prometheus_args": list(config.prometheus_args),
            },
            "processes": {
                name: {"pid": p.pid, "started": p.started, "log": str(p.log)}
                for name, p in self.processes.items()
            },
            # What `testboost doctor --stack` reads (it does not import devstack).
            SECTION: self.recorded().to_state(),
        }

    def recorded(self) -> Recorded:
        environment = self.api_environment()
        return Recorded(
            workdir=self.workdir,
            api_key=self.api_key,
            mode=self.config.mode,
            api=self.urls["api"],
            prometheus=self.urls["prometheus"],
            alertmanager=self.urls["alertmanager"],
            otlp_agent=(  # where the metrics go: push mode's collector
                self.ready_url("otel-collector") if self.config.mode == "push" else None
            ),
            jaeger=self.urls.get("jaeger"),
            metrics_token=environment.get("TESTBOOST_METRICS_TOKEN") or None,
            export_interval=float(environment["OTEL_METRIC_EXPORT_INTERVAL"]) / 1000,
            up_options=" ".join(self.up_options()),
        )

    def up_options(self) -> list[str]:
        """`testboost stack up`'s options that start this stack again as it runs (what `down`
        then a bare `up` would not): the doctor's fix that restarts it repeats them."""
        config = self.config
        options = ["--push"] if config.mode == "push" else []
        options += ["--remote-write"] if config.push_via == "remote-write" else []
        options += ["--traces"] if config.traces else []
        options += ["--fast"] if config.fast else []
        options += [f"--workers {config.workers}"] if config.workers != 1 else []
        return options + [
            f"--{name}-port {self.ports[name]}"
            for name, default in DEFAULT_PORTS.items()
            if name in self.ports and self.ports[name] != default
        ]

    @classmethod
    def from_state(cls, state: dict[str, Any], api_key: str | None = None) -> Stack:
        ports = state["ports"]
        stack = cls(
            StackConfig(
                workdir=Path(state["workdir"]),
                mode=state["mode"],
                api_key=api_key,
                **{
                    f"{name.replace('-', '_')}_port": port
                    for name, port in ports.items()
                    if name in COMPONENTS
                },
                **state.get("config", {"traces": "jaeger" in ports}),
            )
        )
        stack.ports.update(ports)
        stack.processes = {
            name: Process(name, info["pid"], info["started"], Path(info["log"]))
            for name, info in state["processes"].items()
        }
        return stack

    # --- components ------------------------------------------------------------------------

    def api_environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(OWNED_ENV_PREFIXES)}
        env.update(
            TESTBOOST_DATABASE_URL=f"sqlite:///{self.workdir / 'testboost.db'}",
            TESTBOOST_API_KEY=self.api_key,
            OTEL_METRICS_EXPORTER="prometheus",
            OTEL_TRACES_EXPORTER="none",
            # Agrees with the scrape interval, as in compose/docker-compose.otel.yaml; in pull
            # mode it sets how long a new series shows zero (telemetry/series_start.py).
            OTEL_METRIC_EXPORT_INTERVAL="1000" if self.config.fast else "15000",
        )
        if self.config.mode == "push":
            env.update(
                OTEL_METRICS_EXPORTER="otlp",
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_EXPORTER_OTLP_ENDPOINT=self.urls["otel-collector"],
            )
        if self.config.traces:
            env.update(
                OTEL_TRACES_EXPORTER="otlp",
                OTEL_TRACES_SAMPLER="parentbased_always_on",
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_EXPORTER_OTLP_ENDPOINT=self.urls["otel-collector"],
            )
        if self.config.server == "uvicorn" and self.config.mode == "pull":
            env.update(TESTBOOST_METRICS_DIR=str(self.workdir / "metrics"))
        env.update(self.config.api_env)
        return env

    def _argv(self, name: str) -> list[str]:
        work, ports = self.workdir, self.ports
        if name == "api":
            if self.config.server == "uvicorn":
                # How docs/architecture.md says to run several workers without `testboost
                # serve`: uvicorn itself, TESTBOOST_METRICS_DIR set (api_environment).
                return [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "app.main:app",
                    "--host=127.0.0.1",
                    f"--port={ports['api']}",
                    f"--workers={self.config.workers}",
                ]
            return [
                sys.executable,
                "-m",
                "cli",
                "serve",
                "--host=127.0.0.1",
                f"--port={ports['api']}",
                f"--workers={self.config.workers}",
            ]
        if name == "prometheus":
            binary = find_tool(self.config.prometheus_binary)
            argv = [
                binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                # As compose runs it: the OpenMetrics scrapes' exemplars are kept.
                "--enable-feature=exemplar-storage",
            ]
            if self.config.mode == "push" and self.config.push_via == "remote-write":
                argv.append("--web.enable-remote-write-receiver")  # the collector writes here
            if (assets := prometheus_web_assets(binary)) is not None:
                argv.append(f"--web.local-assets={assets}/")
            return [*argv, *self.config.prometheus_args]
        if name in self.alertmanagers:
            binary = find_tool("alertmanager")
            argv = [
                binary,
                f"--config.file={work / 'alertmanager.yml'}",  # one config for all instances
                f"--storage.path={work / f'{name}-data'}",
                f"--web.listen-address=127.0.0.1:{ports[name]}",
            ]
            if not self.clustered:
                # No gossip port: one instance, nothing to share.
                return [*argv, "--cluster.listen-address="]
            # Alertmanager's own defaults otherwise (peer timeout, gossip and settle times).
            gossip = f"127.0.0.1:{ports[f'{name}-cluster']}"
            peers = [
                f"--cluster.peer=127.0.0.1:{ports[f'{peer}-cluster']}"
                for peer in self.alertmanagers
                if peer != name
            ]
            return [
                *argv,
                f"--cluster.listen-address={gossip}",
                f"--cluster.advertise-address={gossip}",
                *peers,
            ]
        if name == "otel-collector":
            # The shipped config as it is: only its ${env:...} addresses differ (_env).
            argv = [find_tool("otelcol"), f"--config={COLLECTOR / 'config.yaml'}"]
            if self.config.push_via == "remote-write":
                argv.append(f"--config={COLLECTOR / 'remote-write.yaml'}")
            return argv
        return [find_tool("jaeger"), f"--config={COLLECTOR / 'jaeger.yaml'}"]

    def _env(self, name: str) -> dict[str, str]:
        if name == "api":
            return self.api_environment()
        env = dict(os.environ)
        local = {key: f"127.0.0.1:{port}" for key, port in self.ports.items()}
        if name == "otel-collector":
            env.update(
                OTELCOL_OTLP_HTTP_ENDPOINT=local["otel-collector"],
                OTELCOL_OTLP_GRPC_ENDPOINT=local["otel-collector-grpc"],
                # Unused with remote write (no port): any valid address will do.
                OTELCOL_PROMETHEUS_ENDPOINT=local.get("otel-collector-metrics", "127.0.0.1:9"),
                OTELCOL_REMOTE_WRITE_URL=f"{self.urls['prometheus']}/api/v1/write",
                # No Jaeger in this stack: the traces pipeline has nowhere to go, and no trace
                # is sent (the API's OTEL_TRACES_EXPORTER is none).
                OTELCOL_TRACES_ENDPOINT=local.get("jaeger-otlp", "127.0.0.1:9"),
                OTELCOL_HEALTH_ENDPOINT=local["otel-collector-health"],
                # Its own metrics, scraped as job otel-collector-telemetry (scrape.d/).
                OTELCOL_TELEMETRY_HOST="127.0.0.1",
                OTELCOL_TELEMETRY_PORT=str(self.ports["otel-collector-telemetry"]),
            )
            if self.config.fast:
                # A span batch Jaeger refuses counts as failed after 30 s instead of 5 min
                # (the least the exporter's retry intervals allow).
                env.update(OTELCOL_RETRY_MAX_ELAPSED="30s")
        elif name == "jaeger":
            env.update(
                JAEGER_OTLP_GRPC_ENDPOINT=local["jaeger-otlp"],
                JAEGER_OTLP_HTTP_ENDPOINT=local["jaeger-otlp-http"],
                JAEGER_QUERY_HTTP_ENDPOINT=local["jaeger"],
                JAEGER_QUERY_GRPC_ENDPOINT=local["jaeger-query-grpc"],
                JAEGER_HEALTH_ENDPOINT=local["jaeger-health"],
                JAEGER_UI_ASSETS=str(REPO / "devstack" / "jaeger-ui"),  # what this build lacks
                JAEGER_TELEMETRY_LEVEL="none",  # and so no port for its own metrics
            )
        return env

    def _spawn(self, name: str) -> None:
        metrics_dir = self.api_environment().get("TESTBOOST_METRICS_DIR") if name == "api" else None
        if metrics_dir:
            # Empty at each server start, as the docs ask of a deployment.
            shutil.rmtree(metrics_dir, ignore_errors=True)
            Path(metrics_dir).mkdir(parents=True)
        self.processes[name] = Process.spawn(
            name, self._argv(name), self._env(name), self.log(name), REPO
        )

    def ready_url(self, name: str) -> str:
        """Where component `name` answers 200 once it is ready."""
        if name in self.alertmanagers:
            return f"{self.urls[name]}/-/ready"
        port, path = READY[name]
        return self.urls[port] + path

    def _wait_ready(self, name: str, deadline: float) -> None:
        wait_ready(self.processes[name], self.ready_url(name), deadline)
        if self.clustered and name in self.alertmanagers:
            self._wait_clustered(name, deadline)

    def _wait_clustered(self, name: str, deadline: float) -> None:
        """Alertmanager `name` sees every instance as a peer and its gossip has settled (until
        then it holds its notifications back)."""
        process, wanted = self.processes[name], len(self.alertmanagers)
        cluster: Any = None
        with httpx.Client(base_url=self.urls[name], timeout=2.0) as client:
            while True:
                try:
                    cluster = client.get("/api/v2/status").json().get("cluster")
                except (httpx.HTTPError, ValueError):
                    cluster = None
                if (
                    isinstance(cluster, dict)
                    and cluster.get("status") == "ready"
                    and len(cluster.get("peers") or ()) == wanted
                ):
                    return
                if not process.alive() or time.monotonic() > deadline:
                    raise StackError(
                        f"{name} is not in a settled cluster of {wanted} in time (its "
                        f"/api/v2/status cluster: {cluster}); last lines of {process.log}:\n"
                        f"{process.log_tail()}"
                    )
                time.sleep(0.2)

    def _wait_first_data(self, since: float, deadline: float) -> None:
        """Up means the chain works: Prometheus has scraped the API (`up` = 1) and holds its
        primed counters (scraped, or pushed through the collector), in samples newer than `since`
        (the data directory may hold a previous run's). Prometheus' first scrape comes
        a few seconds after its start (target updates are batched every 5 s); until then a
        workload's first events would be the series' baseline, invisible to increase()."""
        env = self.api_environment()
        metrics_on = env.get("OTEL_SDK_DISABLED", "").lower() != "true" and env.get(
            "OTEL_METRICS_EXPORTER"
        ) in ("prometheus", "otlp")
        queries = [f'timestamp(up{{job="testboost-api"}} == 1) > {since:.3f}']
        if metrics_on:
            queries.append(f"timestamp(testboost_llm_calls_total) > {since:.3f}")
        with httpx.Client(base_url=self.urls["prometheus"], timeout=5) as prometheus:
            for query in queries:
                while not _answers(prometheus, query):
                    if time.monotonic() > deadline:
                        raise StackError(
                            f"Prometheus has no answer to {query!r} in time; its view of the "
                            f"API target: {_api_target(prometheus)}; logs in {self.log('api')} "
                            f"and {self.log('prometheus')}"
                        )
                    time.sleep(0.2)

    def _evaluate_rules(self, deadline: float) -> None:
        """Give Prometheus its rule files (the committed config as it is) and wait until it
        has loaded them."""
        config = prometheus_config(self.ports, self.config.fast, self.alertmanagers)
        (self.workdir / "prometheus.yml").write_text(config)
        os.kill(self.processes["prometheus"].pid, signal.SIGHUP)  # Prometheus' reload signal
        with httpx.Client(base_url=self.urls["prometheus"], timeout=5) as prometheus:
            while not _rule_groups(prometheus):
                if time.monotonic() > deadline:
                    raise StackError(
                        f"Prometheus has not loaded its rules in time; see {self.log('prometheus')}"
                    )
                time.sleep(0.2)

    def _known(self, name: str) -> None:
        if name not in self.components:
            raise StackError(f"no component {name!r} in this stack ({', '.join(self.components)})")


def _answers(prometheus: httpx.Client, query: str) -> bool:
    try:
        body = prometheus.get("/api/v1/query", params={"query": query}).json()
    except (httpx.HTTPError, ValueError):
        return False
    return body.get("status") == "success" and bool(body["data"]["result"])


def _rule_groups(prometheus: httpx.Client) -> bool:
    try:
        return bool(prometheus.get("/api/v1/rules").json()["data"]["groups"])
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def _api_target(prometheus: httpx.Client) -> str:
    try:
        targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
    except (httpx.HTTPError, ValueError, KeyError):
        return "unknown (/api/v1/targets does not answer)"
    for target in targets:
        if target["labels"].get("job") == "testboost-api":
            return f"{target['scrapeUrl']} {target['health']} {target['lastError']!r}"
    return "no testboost-api target"
