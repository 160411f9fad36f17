"""charts/testboost with the real Helm v4: lint, render with the defaults, the production
example and the optional parts, and decode every object strictly against the Kubernetes and
Prometheus Operator Go types (k8s-validate). No cluster runs here: what a cluster would add
(admission, scheduling, the operator's reconciliation) is not checked."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import Settings
from telemetry.config import TESTBOOST_METRICS_DIR

from .chart import (
    CHART,
    OWN_SECRETS,
    PRODUCTION,
    PUSH,
    REPO,
    all_of,
    container,
    env_of,
    helm,
    objects,
    one,
    rendered,
    template_args,
    validate,
)

pytestmark = pytest.mark.tools

# (values files, --set items) of each rendering every object of which must decode strictly.
RENDERINGS = {
    "defaults": ((), ()),
    "production": ((str(PRODUCTION),), ()),
    "push mode, traces, own secrets": ((), (*PUSH, "telemetry.tracesExporter=otlp", *OWN_SECRETS)),
    "one replica, no monitoring": (
        (),
        (
            "replicaCount=1",
            "serviceMonitor.enabled=false",
            "prometheusRule.enabled=false",
            "dashboards.enabled=false",
        ),
    ),
}
DEFAULT_KINDS = [
    "ConfigMap",
    "ConfigMap",
    "ConfigMap",
    "Deployment",
    "PodDisruptionBudget",
    "PrometheusRule",
    "Service",
    "ServiceAccount",
    "ServiceMonitor",
]


@pytest.mark.parametrize("values", [(), (str(PRODUCTION),)], ids=["defaults", "production"])
def test_helm_lint_strict(values: tuple[str, ...]) -> None:
    args = ["lint", str(CHART), "--strict", "--namespace", "testboost"]
    for path in values:
        args += ["--values", path]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize("name", RENDERINGS)
def test_every_rendered_object_decodes_strictly(name: str) -> None:
    values, sets = RENDERINGS[name]
    result, decoded = validate(rendered(values, sets))
    assert result.returncode == 0, result.stderr
    # Every document Helm printed is an object the validator decoded, and passed.
    assert len(decoded) == len(objects(values, sets)) > 0
    assert all(item["ok"] for item in decoded)


def test_the_default_rendering_has_what_operators_install() -> None:
    assert sorted(doc["kind"] for doc in objects()) == DEFAULT_KINDS
    assert "ConfigMap" not in {
        d["kind"] for d in objects(*RENDERINGS["one replica, no monitoring"])
    }


def test_a_missing_secret_or_endpoint_is_one_clear_error() -> None:
    cases = {
        "apiKey: set existingSecret": ("apiKey.existingSecret=",),
        "databaseUrl: set existingSecret": ("databaseUrl.existingSecret=",),
        "telemetry.otlpEndpoint": ("telemetry.metricsExporter=otlp",),
        # values.schema.json refuses it first.
        "/telemetry/metricsExporter': value must be one of": ("telemetry.metricsExporter=statsd",),
        "additional properties 'replicas' not allowed": ("replicas=3",),
        "/image/pullPolicy': value must be one of": ("image.pullPolicy=Sometimes",),
        # The API server refuses a PodDisruptionBudget with both.
        "set minAvailable or maxUnavailable, not both": ("podDisruptionBudget.maxUnavailable=1",),
    }
    for message, sets in cases.items():
        result = helm(*template_args((), sets))
        assert result.returncode != 0, sets
        assert message in result.stderr, result.stderr


def schema_keys(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The keys a closed (additionalProperties: false) schema object allows, nested."""
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    if schema.get("additionalProperties") is not False:
        return {}
    return {key: schema_keys(sub, root) for key, sub in schema["properties"].items()}


def value_keys(values: dict[str, Any], closed: dict[str, Any]) -> dict[str, Any]:
    return {key: value_keys(values[key], closed[key]) if closed.get(key) else {} for key in values}


def test_the_values_schema_describes_every_value() -> None:
    """values.schema.json closes every object of values.yaml it describes: a misspelt value
    fails the install instead of being ignored; and each default is described."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    closed = schema_keys(schema, schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert value_keys(defaults, closed) == closed
    for section in ("apiKey", "databaseUrl", "metricsToken", "telemetry", "dashboards"):
        assert closed[section], section


def test_pod_labels_match_the_service_and_pdb_selectors() -> None:
    for values, sets in (RENDERINGS["defaults"], RENDERINGS["production"]):
        docs = objects(values, sets)
        deployment = one(docs, "Deployment")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selectors = {
            "Deployment": deployment["spec"]["selector"]["matchLabels"],
            "Service": one(docs, "Service")["spec"]["selector"],
            "PodDisruptionBudget": one(docs, "PodDisruptionBudget")["spec"]["selector"][
                "matchLabels"
            ],
        }
        for spread in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
            selectors[f"spread {spread['topologyKey']}"] = spread["labelSelector"]["matchLabels"]
        for what, selector in selectors.items():
            assert selector, what
            assert selector.items() <= pod_labels.items(), f"{what} {selector} vs {pod_labels}"
        # The selector names this release's API pods, not every TestBoost pod in the namespace.
        assert selectors["Service"]["app.kubernetes.io/instance"] == "testboost"
        assert selectors["Service"]["app.kubernetes.io/component"] == "api"


def test_the_pod_follows_the_restricted_pod_security_standard() -> None:
    deployment = one(objects(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    api = container(deployment)
    uid = int(re.search(r"--uid (\d+)", (REPO / "Dockerfile").read_text())[1])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert api["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # The one place the API writes (worker slots, the shared metrics directory) is writable.
    mounts = {m["mountPath"]: m["name"] for m in api["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["automountServiceAccountToken"] is False
    # The Service is named `testboost` by default: its link variables would be TESTBOOST_*.
    assert pod["enableServiceLinks"] is False
    assert api["resources"]["requests"] and api["resources"]["limits"]


def test_the_container_runs_the_images_server_on_its_port() -> None:
    deployment = one(objects(), "Deployment")
    api = container(deployment)
    dockerfile = (REPO / "Dockerfile").read_text()
    port = int(re.search(r"^EXPOSE (\d+)$", dockerfile, re.M)[1])
    assert api["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert api["args"][:2] == ["testboost", "serve"]
    assert api["args"][api["args"].index("--port") + 1] == str(port)
    assert api["args"][api["args"].index("--host") + 1] == "0.0.0.0"
    assert api["image"] == "testboost-api:0.1.0"
    assert deployment["spec"]["replicas"] == 2


def test_probes_use_the_health_route_and_the_named_port() -> None:
    from app.api.routes import health

    api = container(one(objects(), "Deployment"))
    routes = {route.path for route in health.router.routes}
    assert api["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert api["readinessProbe"]["httpGet"]["path"] in routes
    # Liveness and start-up must not depend on the database (/health reads it): an outage
    # would restart every replica, or kill those starting.
    assert "httpGet" not in api["livenessProbe"] and "httpGet" not in api["startupProbe"]
    assert api["startupProbe"]["tcpSocket"] == {"port": "http"}
    assert api["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert api["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


def test_secrets_come_from_the_named_secret_or_the_charts_own() -> None:
    env = env_of(one(objects(), "Deployment"))
    assert env["TESTBOOST_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "testboost",
        "key": "api-key",
    }
    assert env["TESTBOOST_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "testboost",
        "key": "database-url",
    }
    assert "TESTBOOST_METRICS_TOKEN" not in env
    assert not all_of(objects(), "Secret")

    docs = objects((), OWN_SECRETS)
    secret = one(docs, "Secret")
    # Never the name an existing Secret has by default: a value for one setting and the
    # existing Secret for another would collide.
    assert secret["metadata"]["name"] == "testboost-values"
    assert secret["stringData"] == {
        "api-key": "k-123",
        "database-url": "postgresql+psycopg://u:p@db:5432/testboost",
        "metrics-token": "t-456",
    }
    env = env_of(one(docs, "Deployment"))
    for name, key in (
        ("TESTBOOST_API_KEY", "api-key"),
        ("TESTBOOST_DATABASE_URL", "database-url"),
        ("TESTBOOST_METRICS_TOKEN", "metrics-token"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"] == {
            "name": secret["metadata"]["name"],
            "key": key,
        }
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])
    # No secret value anywhere else in the rendering.
    text = rendered((), OWN_SECRETS)
    assert text.count("k-123") == 1 and text.count("t-456") == 1


def test_every_variable_set_is_one_the_api_reads() -> None:
    """A misspelt TESTBOOST_* variable would be ignored silently (extra="ignore")."""
    settings = {f"TESTBOOST_{name.upper()}" for name in Settings.model_fields}
    documented = (REPO / "docs" / "configuration.md").read_text()
    for values, sets in RENDERINGS.values():
        for name in env_of(one(objects(values, sets), "Deployment")):
            if name in ("POD_NAME", "POD_NAMESPACE"):
                continue  # the downward API, for OTEL_RESOURCE_ATTRIBUTES
            if name.startswith("TESTBOOST_"):
                assert name in settings | {TESTBOOST_METRICS_DIR}, name
            assert f"`{name}`" in documented, f"{name} is not in docs/configuration.md"


def test_the_service_name_and_instance_identity() -> None:
    env = env_of(one(objects((), PUSH), "Deployment"))
    assert env["OTEL_SERVICE_NAME"]["value"] == "testboost-api"
    assert env["OTEL_METRICS_EXPORTER"]["value"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector:4318"
    # Push: `instance` is service.instance.id, the pod's name (+ the worker slot): stable per
    # pod, distinct across replicas.
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    attributes = dict(
        item.split("=", 1) for item in env["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(",")
    )
    assert attributes["service.instance.id"] == "$(POD_NAME)"
    # The variable it refers to is defined before it, as Kubernetes requires for $(VAR).
    names = list(env)
    assert names.index("POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    pull = env_of(one(objects(), "Deployment"))
    assert pull["OTEL_METRICS_EXPORTER"]["value"] == "prometheus"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in pull


def test_the_production_example() -> None:
    docs = objects((str(PRODUCTION),))
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert one(docs, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": deployment["spec"]["selector"],
    }
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert one(docs, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    env = env_of(deployment)
    assert not all_of(docs, "Secret"), "production keeps secrets out of the chart"
    token = env["TESTBOOST_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": token}
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    for dashboard in all_of(docs, "ConfigMap"):
        assert dashboard["metadata"]["namespace"] == "monitoring"
        assert dashboard["metadata"]["annotations"] == {"grafana_folder": "TestBoost"}


def test_a_single_replica_has_no_disruption_budget_to_block_drains() -> None:
    docs = objects(*RENDERINGS["one replica, no monitoring"])
    assert not all_of(docs, "PodDisruptionBudget")
    assert one(docs, "Deployment")["spec"]["replicas"] == 1


def test_app_version_is_the_packages() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pyproject = (REPO / "pyproject.toml").read_text()
    assert chart["appVersion"] == re.search(r'^version = "(.+)"$', pyproject, re.M)[1]


def test_helm_package_carries_the_linked_files(tmp_path: Path) -> None:
    """The symlinks in files/ are followed: the packaged chart holds the files themselves."""
    result = helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("testboost-*.tgz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert all(m.isfile() or m.isdir() for m in members.values()), "a link was packaged"

        def read(name: str) -> str:
            handle = tar.extractfile(members[f"testboost/{name}"])
            assert handle is not None
            return handle.read().decode()

        sources: dict[str, Any] = {
            "files/alerts.yml": REPO / "monitoring" / "prometheus" / "alerts.yml",
            "files/slo-rules.yml": REPO / "monitoring" / "prometheus" / "slo-rules.yml",
            "files/otel-collector.yaml": REPO / "otel-collector" / "config.yaml",
        }
        for path in sorted((REPO / "monitoring" / "grafana" / "dashboards").glob("*.json")):
            sources[f"files/dashboards/{path.name}"] = path
        for name, source in sources.items():
            assert read(name) == source.read_text(), name
        assert "testboost/values-production.yaml" in members
