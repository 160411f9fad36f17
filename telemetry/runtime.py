"""The process' runtime figures (CPU, resident memory, file descriptors, garbage collector),
read at each collection under the names every Prometheus client library uses.

Why not prometheus_client's ProcessCollector and GCCollector: they feed prometheus_client's
own registry, which neither /metrics (rendered from the OpenTelemetry collection) nor the OTLP
path reads; and opentelemetry-instrumentation-system-metrics names them the semantic
conventions' way (`process.cpu.time`, ...), which Prometheus dashboards do not query. These are
a few observable instruments on the API's own meter, so both paths carry them and several
workers add up like every other family. Linux reads /proc; elsewhere a figure /proc would give
is skipped rather than guessed.
"""

from __future__ import annotations

import gc
import os
import resource
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from telemetry.catalog import (
    GC_COLLECTED,
    GC_COLLECTIONS,
    GC_GENERATIONS,
    GC_UNCOLLECTABLE,
    PROCESS_CPU,
    PROCESS_MAX_FDS,
    PROCESS_MEMORY,
    PROCESS_OPEN_FDS,
    Kind,
    MetricFamily,
)

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
Callback = Callable[[CallbackOptions], Iterable[Observation]]


def _one(read: Callable[[], float | None]) -> Callback:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        value = read()
        return [] if value is None else [Observation(value)]

    return callback


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def resident_bytes(pid: int | None = None) -> float | None:
    """Resident memory of process `pid` (None: this one), from /proc; None where unreadable.
    The benchmarks and the reliability tests read other processes' with it too."""
    try:
        with open(f"/proc/{pid or 'self'}/statm", "rb") as statm:
            return float(int(statm.read().split()[1]) * PAGE_SIZE)
    except (OSError, IndexError, ValueError):
        return None


def _open_fds() -> float | None:
    try:
        return float(len(os.listdir("/proc/self/fd")))
    except OSError:
        return None


def _max_fds() -> float:
    return float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _gc(stat: str) -> Callback:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(generation[stat], {"generation": label})
            for label, generation in zip(GC_GENERATIONS, gc.get_stats(), strict=False)
        ]

    return callback


CALLBACKS: dict[MetricFamily, Callback] = {
    PROCESS_CPU: _one(_cpu_seconds),
    PROCESS_MEMORY: _one(resident_bytes),
    PROCESS_OPEN_FDS: _one(_open_fds),
    PROCESS_MAX_FDS: _one(_max_fds),
    GC_COLLECTIONS: _gc("collections"),
    GC_COLLECTED: _gc("collected"),
    GC_UNCOLLECTABLE: _gc("uncollectable"),
}


def observe(meter: Meter) -> None:
    """Register the runtime families' instruments on `meter`."""
    for family, callback in CALLBACKS.items():
        create = (
            meter.create_observable_counter
            if family.kind is Kind.COUNTER
            else meter.create_observable_gauge
        )
        create(
            family.otel_name,
            callbacks=[callback],
            unit=family.unit,
            description=family.description,
        )
