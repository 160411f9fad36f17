"""The doctor's tests expect the fixes of the topology they set up: none of them runs as if in
a pod because the test run does (doctor/topology.py reads KUBERNETES_SERVICE_HOST)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _not_in_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
