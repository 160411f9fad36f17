"""Which deployment the doctor checks, so that each fix names what works there: the local stack
(`testboost stack up`, devstack/: Debian's Prometheus, processes and log files), Docker Compose
(compose/: services, containers, `docker compose`) or Kubernetes (charts/testboost, with
kube-prometheus-stack: kubectl and the chart's names, docs/kubernetes.md).

Nothing in the URLs tells them apart (a `kubectl port-forward` looks like compose's
127.0.0.1), so: `--stack` means the local stack; a doctor running in a pod sees
KUBERNETES_SERVICE_HOST, which the kubelet sets in every container; anything else is compose,
the default ports' topology. `--topology` says it when that guess is wrong (a port-forward from
a laptop).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Topology(StrEnum):
    LOCAL = "local"
    COMPOSE = "compose"
    KUBERNETES = "kubernetes"


def detect(stack: bool, environ: Mapping[str, str]) -> Topology:
    """The topology when `--topology` is not given: `stack` is whether `--stack` was."""
    if stack:
        return Topology.LOCAL
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return Topology.KUBERNETES
    return Topology.COMPOSE
