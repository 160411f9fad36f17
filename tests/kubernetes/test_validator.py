"""k8s-validate (tools/k8s/k8s-validate) refuses what the API server or the Prometheus Operator
would refuse or silently drop: the chart's checks mean something only if it can fail."""

from __future__ import annotations

import pytest

from .chart import validate

pytestmark = pytest.mark.tools

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: api, labels: {app: api}}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8000, targetPort: http}]
"""

BAD = {
    "unknown field": SERVICE.replace("targetPort: http", "targetPort: http, protocl: TCP"),
    "field in the wrong case": SERVICE.replace("targetPort", "targetport"),
    "wrong type": SERVICE.replace("port: 8000", "port: eight-thousand"),
    "duplicate field": SERVICE.replace("selector: {app: api}", "selector: {app: api, app: b}"),
    "unknown kind": SERVICE.replace("kind: Service", "kind: Servise"),
    "no apiVersion": SERVICE.replace("apiVersion: v1\n", ""),
    "a CRD we do not know": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    "bad label value": SERVICE.replace("labels: {app: api}", "labels: {app: 'api server'}"),
    "bad name": SERVICE.replace("name: api,", "name: Api_1,"),
    "bad quantity": """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: [{name: c, image: x, resources: {limits: {memory: 1 gigabyte}}}]}
""",
    "ServiceMonitor unknown field": """\
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: m}
spec: {selector: {}, endpoints: [{port: http, bearerTokenSecrett: {name: s, key: k}}]}
""",
    "PrometheusRule duration as a number": """\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: r}
spec: {groups: [{name: g, rules: [{alert: A, expr: up == 0, for: 5}]}]}
""",
    "Deployment selecting other pods": """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: x}]}
""",
    "ConfigMap key with a slash": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    "data: {a/b.json: '{}'}\n",
}


def test_a_valid_stream_passes_and_every_object_is_listed() -> None:
    result, decoded = validate(f"# a comment-only document\n---\n{SERVICE}---\n{SERVICE}")
    assert result.returncode == 0, result.stderr
    assert decoded == [{"apiVersion": "v1", "kind": "Service", "name": "api", "ok": True}] * 2


@pytest.mark.parametrize("name", BAD)
def test_it_refuses(name: str) -> None:
    result, decoded = validate(f"{SERVICE}---\n{BAD[name]}")
    assert result.returncode == 1, f"{name} passed: {result.stdout}"
    assert "document 2" in result.stderr, result.stderr
    # The good object is still listed as such; the bad one, when it decodes at all, is not.
    assert decoded[0]["ok"] is True
    assert all(item["ok"] is False for item in decoded[1:])


def test_an_empty_stream_is_an_error() -> None:
    result, _ = validate("# nothing rendered\n")
    assert result.returncode == 1
    assert "no objects" in result.stderr
