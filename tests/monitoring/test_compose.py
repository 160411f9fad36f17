"""Compose layers validated and merged by docker-compose 1.29 (`config`, offline), and the
Dockerfile they build checked against the lock and the Makefile."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .tools import REPO, run_tool

COMPOSE = REPO / "compose"
BASE = COMPOSE / "docker-compose.yaml"
MONITORING = COMPOSE / "docker-compose.monitoring.yaml"
OTEL = COMPOSE / "docker-compose.otel.yaml"
LAYERS = {
    "base": (BASE,),
    "base+monitoring": (BASE, MONITORING),
    "base+monitoring+otel": (BASE, MONITORING, OTEL),
}


def compose_config(*files, **env: str) -> dict:
    args = [a for f in files for a in ("-f", str(f))]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBOOST_", "GF_"))}
    result = run_tool("docker-compose", *args, "config", env=environ | env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.tools
@pytest.mark.parametrize("layers", LAYERS.values(), ids=LAYERS.keys())
def test_layers_are_valid(layers) -> None:
    config = compose_config(*layers, TESTBOOST_API_KEY="k")
    api = config["services"]["testboost-api"]
    assert api["environment"]["TESTBOOST_API_KEY"] == "k"
    assert api["environment"]["TESTBOOST_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert config["networks"]["testboost-network"]["external"] is True


@pytest.mark.tools
def test_api_key_is_required() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TESTBOOST_")}
    result = run_tool("docker-compose", "-f", str(BASE), "config", env=environ)
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
    ports = {s: services[s]["ports"][0]["published"] for s in names}
    assert {s: int(p) for s, p in ports.items()} == {
        "prometheus": 9090,
        "grafana": 3000,
        "alertmanager": 9093,
    }
    grafana_env = services["grafana"]["environment"]
    assert (grafana_env["GF_SECURITY_ADMIN_USER"], grafana_env["GF_SECURITY_ADMIN_PASSWORD"]) == (
        "admin",
        "testboost",
    )
    (secret,) = services["alertmanager"]["secrets"]
    assert secret["target"] == "/etc/alertmanager/secrets/testboost-api-key"
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    assert "monitoring/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert "monitoring/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert "monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
    assert "--web.enable-remote-write-receiver" not in services["prometheus"]["command"]


@pytest.mark.tools
def test_secrets_and_passwords_come_from_the_environment(tmp_path) -> None:
    key = tmp_path / "key"
    config = compose_config(
        BASE,
        MONITORING,
        TESTBOOST_API_KEY="k",
        TESTBOOST_API_KEY_FILE=str(key),
        GF_ADMIN_PASSWORD="other",
    )
    assert config["secrets"]["testboost-api-key"]["file"] == str(key)
    assert config["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "other"
    default = compose_config(BASE, MONITORING, TESTBOOST_API_KEY="k")
    assert default["secrets"]["testboost-api-key"]["file"] == str(
        REPO / "secrets/testboost-api-key"
    )


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
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    job = mounts["/etc/prometheus/scrape.d/otel-collector.yml"]
    assert job == str(REPO / "monitoring/prometheus/scrape.d/otel-collector.yml")
    collector = services["otel-collector"]
    ports = sorted(int(p["published"]) for p in collector["ports"])
    assert ports == [4317, 4318, 8889, 13133]
    assert services["jaeger"]["ports"][0]["published"] == 16686


def test_images_are_the_releases_the_tests_build() -> None:
    """The collector image is the release our own build pins; Jaeger's is the v2 release of
    the Go module version that `make tools` builds."""
    services = yaml.safe_load(OTEL.read_text())["services"]
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


def test_image_versions_match_the_checked_tools() -> None:
    services = yaml.safe_load(MONITORING.read_text())["services"]
    assert services["prometheus"]["image"] == "prom/prometheus:v2.53.3"
    assert services["alertmanager"]["image"] == "prom/alertmanager:v0.28.1"


# --- Dockerfile ----------------------------------------------------------------------------

DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_dockerfile_uses_the_makefile_uv() -> None:
    makefile_uv = re.search(r"^UV_VERSION := (\S+)", (REPO / "Makefile").read_text(), re.M)
    assert makefile_uv
    assert f"uv=={makefile_uv.group(1)}" in DOCKERFILE
    assert DOCKERFILE.startswith("# ") and "FROM python:3.11-slim" in DOCKERFILE
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
