"""Compose layers validated and merged by `docker compose config` (v2, offline), and the
Dockerfile they build checked against the lock and the Makefile. tests/deploy runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.docker import STANDINS, compose, environment
from tests.deploy.docker import config as merged

from .tools import REPO

COMPOSE = REPO / "compose"
BASE = COMPOSE / "docker-compose.yaml"
MONITORING = COMPOSE / "docker-compose.monitoring.yaml"
OTEL = COMPOSE / "docker-compose.otel.yaml"
SCALED = COMPOSE / "docker-compose.scaled.yaml"
LAYERS = {
    "base": (BASE,),
    "base+monitoring": (BASE, MONITORING),
    "base+monitoring+otel": (BASE, MONITORING, OTEL),
    "base+monitoring+scaled": (BASE, MONITORING, SCALED),
}


def compose_config(*files: Path, **env: str) -> dict[str, Any]:
    return merged(tuple(str(f) for f in files), environment(**env))


def published(service: dict[str, Any]) -> dict[int, str]:
    """Published port -> the host address it binds."""
    return {int(p["published"]): p.get("host_ip", "0.0.0.0") for p in service.get("ports", [])}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of each bind mount."""
    return {v["target"]: v["source"] for v in service["volumes"] if v["type"] == "bind"}


@pytest.mark.tools
@pytest.mark.parametrize("layers", LAYERS.values(), ids=LAYERS.keys())
def test_layers_are_valid(layers) -> None:
    config = compose_config(*layers, TESTBOOST_API_KEY="k")
    api = config["services"]["testboost-api"]
    assert api["environment"]["TESTBOOST_API_KEY"] == "k"
    assert api["environment"]["TESTBOOST_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert config["networks"]["testboost-network"]["external"] is True
    assert config["name"] == "testboost"
    for name, service in config["services"].items():
        # Loopback only: docker-compose.public.yaml is the opt-in beyond.
        assert set(published(service).values()) <= {"127.0.0.1"}, name


@pytest.mark.tools
def test_api_key_is_required() -> None:
    result = compose((str(BASE),), "config", env=environment())
    assert result.returncode != 0
    assert "set TESTBOOST_API_KEY" in result.stderr


@pytest.mark.tools
def test_monitoring_stack() -> None:
    services = compose_config(BASE, MONITORING, TESTBOOST_API_KEY="k")["services"]
    names = {s: services[s]["container_name"] for s in ("prometheus", "grafana", "alertmanager")}
    assert names == {
        "prometheus": "testboost-prometheus",
        "grafana": "testboost-grafana",
        "alertmanager": "testboost-alertmanager",
    }
    ports = {s: published(services[s]) for s in names}
    assert ports == {
        "prometheus": {9090: "127.0.0.1"},
        "grafana": {3000: "127.0.0.1"},
        "alertmanager": {9093: "127.0.0.1"},
    }
    grafana_env = services["grafana"]["environment"]
    assert (grafana_env["GF_SECURITY_ADMIN_USER"], grafana_env["GF_SECURITY_ADMIN_PASSWORD"]) == (
        "admin",
        "testboost",
    )
    (secret,) = services["alertmanager"]["secrets"]
    assert secret["target"] == "/etc/alertmanager/secrets/testboost-api-key"
    # Alertmanager's user (nobody) reads it, no one else.
    assert (secret["uid"], secret["gid"], secret["mode"]) == ("65534", "65534", 0o400)
    volumes = mounts(services["prometheus"]) | mounts(services["grafana"])
    assert volumes["/etc/prometheus/prometheus.yml"] == str(
        REPO / "monitoring/prometheus/prometheus.yml"
    )
    assert volumes["/etc/prometheus/alerts.yml"] == str(REPO / "monitoring/prometheus/alerts.yml")
    # Every rule file prometheus.yml names (relative to it) is mounted beside it, the SLO rules
    # Sloth generates included: a missing one would load no rules, silently.
    config = yaml.safe_load((REPO / "monitoring/prometheus/prometheus.yml").read_text())
    assert "slo-rules.yml" in config["rule_files"]
    for name in config["rule_files"]:
        assert volumes[f"/etc/prometheus/{name}"] == str(REPO / "monitoring/prometheus" / name)
    assert volumes["/var/lib/grafana/dashboards"] == str(REPO / "monitoring/grafana/dashboards")
    assert "--web.enable-remote-write-receiver" not in services["prometheus"]["command"]
    # Exemplars of the OpenMetrics scrapes are kept (a latency bucket links to its trace).
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]
    for name in ("prometheus", "alertmanager", "grafana"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


@pytest.mark.tools
def test_secrets_and_passwords_come_from_the_environment() -> None:
    config = compose_config(BASE, MONITORING, TESTBOOST_API_KEY="k", GF_ADMIN_PASSWORD="other")
    # The key Alertmanager presents is the API's own: one variable, copied into a file.
    assert config["secrets"]["testboost-api-key"]["environment"] == "TESTBOOST_API_KEY"
    assert config["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "other"


@pytest.mark.tools
def test_image_variables_choose_the_stand_ins_of_the_same_versions() -> None:
    """Upstream images by default; each TESTBOOST_*_IMAGE picks another (the tests' stand-ins
    are tagged with the upstream version they stand in for)."""
    layers = (BASE, MONITORING, OTEL)
    default = compose_config(*layers, TESTBOOST_API_KEY="k")["services"]
    chosen = compose_config(*layers, TESTBOOST_API_KEY="k", **STANDINS)["services"]
    python = "PYTHON_IMAGE"
    assert default["testboost-api"]["build"]["args"][python] == "python:3.11-slim"
    assert chosen["testboost-api"]["build"]["args"][python] == STANDINS["TESTBOOST_PYTHON_IMAGE"]
    for name in ("postgres", "prometheus", "alertmanager", "otel-collector", "jaeger"):
        upstream, standin = default[name]["image"], chosen[name]["image"]
        assert standin in STANDINS.values(), name
        assert standin.split("/")[-1] == upstream.split("/")[-1], (upstream, standin)


@pytest.mark.tools
def test_otel_overlay_pushes_to_the_collector_and_keeps_the_scrape() -> None:
    services = compose_config(BASE, MONITORING, OTEL, TESTBOOST_API_KEY="k")["services"]
    env = services["testboost-api"]["environment"]
    assert env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["TESTBOOST_API_KEY"] == "k"  # base environment kept by the merge
    assert services["testboost-api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    prometheus = services["prometheus"]
    # Scraped, not remote-written: no receiver flag, and the collector's job is mounted where
    # prometheus.yml's scrape_config_files looks.
    assert "--web.enable-remote-write-receiver" not in prometheus["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    for name in ("otel-collector.yml", "otel-collector-telemetry.yml"):  # its own metrics too
        job = mounts(prometheus)[f"/etc/prometheus/scrape.d/{name}"]
        assert job == str(REPO / "monitoring/prometheus/scrape.d" / name)
    collector = services["otel-collector"]
    assert sorted(published(collector)) == [4317, 4318, 8889, 13133]
    assert published(services["jaeger"]) == {16686: "127.0.0.1"}


@pytest.mark.tools
def test_scaled_overlay_is_replicas_behind_one_entry_and_two_prometheus_with_thanos() -> None:
    """docs/scaling.md: the API has no fixed name or port (replicas), the load balancer has the
    API's port; two Prometheus replicas with their own data, replica labels from the
    environment and Thanos' block bounds; every Thanos component runs as nobody."""
    services = compose_config(BASE, MONITORING, SCALED, TESTBOOST_API_KEY="k")["services"]
    api = services["testboost-api"]
    assert api["deploy"]["replicas"] == 3
    assert "container_name" not in api and not api.get("ports")
    assert published(services["lb"]) == {8000: "127.0.0.1"}
    assert mounts(services["lb"])["/usr/local/etc/haproxy/haproxy.cfg"] == str(
        COMPOSE / "haproxy.cfg"
    )
    replicas = {}
    for name in ("prometheus", "prometheus-b"):
        prometheus = services[name]
        command = prometheus["command"]
        assert "--config.file=/etc/prometheus/prometheus-ha.yml" in command
        assert "--enable-feature=expand-external-labels" in command
        assert "--enable-feature=exemplar-storage" in command
        assert "--storage.tsdb.min-block-duration=2h" in command
        assert "--storage.tsdb.max-block-duration=2h" in command
        replicas[name] = prometheus["environment"]["PROMETHEUS_REPLICA"]
        data = [v["source"] for v in prometheus["volumes"] if v["target"] == "/prometheus"]
        assert data == [
            {"prometheus": "prometheus-data", "prometheus-b": "prometheus-b-data"}[name]
        ]
    assert replicas == {"prometheus": "prometheus-a", "prometheus-b": "prometheus-b"}
    assert published(services["prometheus-b"]) == {9091: "127.0.0.1"}
    assert published(services["alertmanager-b"]) == {9094: "127.0.0.1"}
    assert "--cluster.peer=alertmanager-b:9094" in services["alertmanager"]["command"]
    assert "--cluster.peer=alertmanager:9094" in services["alertmanager-b"]["command"]
    thanos = [n for n in services if n.startswith("thanos-") and n != "thanos-bucket-init"]
    assert sorted(thanos) == [
        "thanos-compact",
        "thanos-query",
        "thanos-sidecar",
        "thanos-sidecar-b",
        "thanos-store",
    ]
    for name in thanos:
        assert services[name]["user"] == "65534:65534", name
        assert services[name]["image"] == "thanosio/thanos:v0.42.4", name
    assert "--query.replica-label=replica" in services["thanos-query"]["command"]
    assert "--deduplication.replica-label=replica" in services["thanos-compact"]["command"]
    assert "--deduplication.func=penalty" in services["thanos-compact"]["command"]
    # Grafana reads the global view under the uid the dashboards name.
    datasource = mounts(services["grafana"])["/etc/grafana/provisioning/datasources/prometheus.yml"]
    scaled = yaml.safe_load(Path(datasource).read_text())["datasources"]
    single = yaml.safe_load(
        (REPO / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert [d | {"url": "-"} for d in scaled] == [d | {"url": "-"} for d in single]
    assert scaled[0]["url"] == "http://thanos-query:10902"
    assert published(services["thanos-query"]) == {10902: "127.0.0.1"}


@pytest.mark.tools
def test_thanos_image_is_the_release_the_tests_build() -> None:
    services = compose_config(BASE, MONITORING, SCALED, TESTBOOST_API_KEY="k")["services"]
    go_mod = (REPO / "tools/thanos/go.mod").read_text()
    version = re.search(r"github.com/thanos-io/thanos (v\S+)", go_mod)
    assert version
    assert services["thanos-query"]["image"] == f"thanosio/thanos:{version[1]}"
    assert STANDINS["TESTBOOST_THANOS_IMAGE"].endswith(f"thanos:{version[1]}")


@pytest.mark.tools
def test_images_are_the_releases_the_tests_build() -> None:
    """The collector image is the release our own build pins; Jaeger's is the v2 release of
    the Go module version that `make tools` builds."""
    services = compose_config(BASE, MONITORING, OTEL, TESTBOOST_API_KEY="k")["services"]
    manifest = yaml.safe_load((REPO / "otel-collector/builder-config.yaml").read_text())
    contrib = {
        line["gomod"].split()[1].lstrip("v")
        for kind in ("receivers", "processors", "exporters", "extensions")
        for line in manifest[kind]
        if "opentelemetry-collector-contrib" in line["gomod"]
    }
    assert services["otel-collector"]["image"] == (
        f"otel/opentelemetry-collector-contrib:{contrib.pop()}"
    )
    assert not contrib  # one contrib release
    jaeger_mod = (REPO / "tools/jaeger/go.mod").read_text()
    assert "github.com/jaegertracing/jaeger v1.76.0" in jaeger_mod
    assert services["jaeger"]["image"] == "jaegertracing/jaeger:2.13.0"  # v1.76.0 = v2.13.0


def test_export_interval_matches_scrape_interval() -> None:
    otel = yaml.safe_load(OTEL.read_text())
    prometheus = yaml.safe_load((REPO / "monitoring/prometheus/prometheus.yml").read_text())
    interval_ms = int(
        otel["services"]["testboost-api"]["environment"]["OTEL_METRIC_EXPORT_INTERVAL"]
    )
    assert f"{interval_ms // 1000}s" == prometheus["global"]["scrape_interval"]


@pytest.mark.tools
def test_image_versions_match_the_checked_tools() -> None:
    services = compose_config(BASE, MONITORING, TESTBOOST_API_KEY="k")["services"]
    assert services["prometheus"]["image"] == "prom/prometheus:v2.53.3"
    assert services["alertmanager"]["image"] == "prom/alertmanager:v0.28.1"


# --- Dockerfile ----------------------------------------------------------------------------

DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_dockerfile_uses_the_makefile_uv() -> None:
    makefile_uv = re.search(r"^UV_VERSION := (\S+)", (REPO / "Makefile").read_text(), re.M)
    assert makefile_uv
    assert f"uv=={makefile_uv.group(1)}" in DOCKERFILE
    assert DOCKERFILE.startswith("# ") and "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE
    assert "uv sync --frozen --no-dev" in DOCKERFILE


def test_dockerfile_command_exists() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    cmd = re.search(
        r'^CMD \["(\w+)", "serve", "--host", "0.0.0.0", "--port", "8000"\]', DOCKERFILE, re.M
    )
    assert cmd, "CMD runs the project's CLI on 0.0.0.0:8000"
    assert re.search(rf'^{cmd.group(1)} = "cli:main"', pyproject, re.M)


def test_dockerignore_keeps_what_the_image_needs() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "app",
        "telemetry",
    ):
        assert needed not in ignored
    for secret in (".venv", ".tools", "secrets", ".git"):
        assert secret in ignored


@pytest.mark.tools
def test_lock_installs_without_dev_dependencies(tmp_path) -> None:
    """What the image's first `uv sync` does, resolved by uv itself (dry run, no download)."""
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        (tmp_path / name).write_text((REPO / name).read_text())
    env = os.environ | {"UV_PROJECT_ENVIRONMENT": str(tmp_path / ".venv")}
    uv = Path(sys.executable).parent / "uv"  # the Makefile installs uv into the venv
    assert uv.exists(), f"{uv} missing: run `make install`"
    result = subprocess.run(
        [str(uv), "sync", "--frozen", "--no-dev", "--no-install-project", "--dry-run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "uvicorn" in result.stderr + result.stdout
    assert "pytest" not in result.stderr + result.stdout


PUBLIC = COMPOSE / "docker-compose.public.yaml"


@pytest.mark.tools
def test_publishing_beyond_loopback_is_an_overlay_that_needs_a_grafana_password() -> None:
    refused = compose(
        (str(BASE), str(MONITORING), str(PUBLIC)),
        "config",
        env=environment(TESTBOOST_API_KEY="k"),
    )
    assert refused.returncode != 0
    assert "set GF_ADMIN_PASSWORD" in refused.stderr
    config = compose_config(
        BASE, MONITORING, PUBLIC, TESTBOOST_API_KEY="k", GF_ADMIN_PASSWORD="their-own"
    )
    services = config["services"]
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "their-own"
    # Replaced, not added to: each service publishes its one port, on every interface.
    for name, port in {"testboost-api": 8000, "prometheus": 9090, "alertmanager": 9093}.items():
        assert published(services[name]) == {port: "0.0.0.0"}, name
    assert published(services["grafana"]) == {3000: "0.0.0.0"}
    chosen = compose_config(
        BASE,
        MONITORING,
        PUBLIC,
        TESTBOOST_API_KEY="k",
        GF_ADMIN_PASSWORD="their-own",
        TESTBOOST_PUBLISH_ADDRESS="192.0.2.10",
    )
    assert published(chosen["services"]["prometheus"]) == {9090: "192.0.2.10"}
