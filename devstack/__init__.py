"""The local stack: the API, Prometheus and Alertmanager (and, in push mode, our OpenTelemetry
Collector, with Jaeger for traces) as local processes on 127.0.0.1, configured from the
committed files.

    with Stack(StackConfig(workdir=tmp, mode="pull", fast=True)) as stack:
        stack.urls["prometheus"]      # http://127.0.0.1:<port>
        stack.stop("api"); stack.start("api")

`testboost stack up|down|status` (devstack/cli.py) drives the same class from a shell.
"""

from __future__ import annotations

from devstack.configs import StackError
from devstack.stack import COMPONENTS, Stack, StackConfig

__all__ = ["COMPONENTS", "Stack", "StackConfig", "StackError"]
