"""tools/k8s pins Helm v4 and the API types k8s-validate decodes into, at one Kubernetes
release; the binaries scripts/build-go-tools.sh built are those versions."""

from __future__ import annotations

import re

import pytest

from tests.monitoring.tools import REPO, run_tool

GO_MOD = (REPO / "tools" / "k8s" / "go.mod").read_text()
PINS = {
    "helm.sh/helm/v4": "v4.3.2",
    "k8s.io/api": "v0.37.2",
    "k8s.io/apimachinery": "v0.37.2",
    "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring": "v0.95.2",
}


def required() -> dict[str, str]:
    return dict(re.findall(r"^\s+(\S+) (v\S+)", GO_MOD, re.M))


def test_go_mod_pins_the_versions_and_one_kubernetes_release() -> None:
    modules = required()
    for module, version in PINS.items():
        assert modules[module] == version, module
    assert "tool helm.sh/helm/v4/cmd/helm" in GO_MOD
    releases = {
        version
        for module, version in modules.items()
        if module.startswith("k8s.io/") and re.fullmatch(r"v0\.\d+\.\d+", version)
        if module not in ("k8s.io/klog/v2",)
    }
    assert releases == {PINS["k8s.io/api"]}, releases


@pytest.mark.tools
def test_the_built_binaries_are_the_pinned_versions() -> None:
    helm = run_tool("helm", "version", "--short")
    assert helm.returncode == 0, helm.stderr
    assert helm.stdout.strip() == PINS["helm.sh/helm/v4"]
    validate = run_tool("k8s-validate", "--version")
    assert validate.returncode == 0, validate.stderr
    for module in (
        "k8s.io/api",
        "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring",
    ):
        assert f"{module} {PINS[module]}" in validate.stdout
