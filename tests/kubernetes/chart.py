"""The Helm chart under test, rendered with the real Helm v4 and checked with our strict decoder
(`.tools/bin/helm`, `.tools/bin/k8s-validate`, built by scripts/build-go-tools.sh).

Helm's own state (cache, config, data) goes to a private directory, never the user's home.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.tools import REPO, tool_path

CHART = REPO / "charts" / "testboost"
PRODUCTION = CHART / "values-production.yaml"
RELEASE = "testboost"
NAMESPACE = "testboost"
# Values that turn the optional parts on: push mode (and so the collector's ConfigMap), the
# metrics token, and secrets given as values (the chart's own Secret).
PUSH = ("telemetry.metricsExporter=otlp", "telemetry.otlpEndpoint=http://otel-collector:4318")
OWN_SECRETS = (
    "apiKey.value=k-123",
    "databaseUrl.value=postgresql+psycopg://u:p@db:5432/testboost",
    "metricsToken.enabled=true",
    "metricsToken.value=t-456",
)
# Helm makes these only when a command needs them (none of ours does, so far).
HELM_HOME = Path(tempfile.gettempdir()) / f"testboost-helm-{os.getuid()}"


def helm_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{name}_HOME"] = str(HELM_HOME / name.lower())
    return env


def helm(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool_path("helm"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=helm_env(),
        cwd=cwd,
        check=False,
    )


def template_args(values: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values:
        args += ["--values", path]
    for item in sets:
        args += ["--set", item]
    return args


@cache
def rendered(values: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> str:
    """`helm template` of the chart (cached per arguments); fails the test on an error."""
    result = helm(*template_args(values, sets))
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects(values: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered(values, sets)) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def all_of(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def validate(text: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """k8s-validate -json on a YAML stream: the process, and the objects it decoded."""
    result = subprocess.run(
        [tool_path("k8s-validate"), "-json"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    decoded = json.loads(result.stdout) if result.stdout.strip() else []
    return result, decoded or []


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["api"]
    return containers[0]


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The API container's environment by name (each entry whole: value or valueFrom)."""
    entries = container(deployment)["env"]
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"duplicate variables: {names}"
    return {entry["name"]: entry for entry in entries}
