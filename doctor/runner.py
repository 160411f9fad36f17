"""Running the checks so that one component down is one failure, not one per check reading it.

Each component has a gate, the check that says whether it is up at all (the API's /health,
Prometheus' and Alertmanager's /-/ready, Grafana's health, the agent's health URL, Jaeger's
query API). Gates run first. A gate that fails marks its component down, and every check that
depends on it (`Check.depends_on`: its own component, and those it reads through, e.g.
Prometheus' view of the API's target, or the agent the API pushes to) is SKIP with that
component as its `cause`, instead of failing again for the same reason. The failed gate
carries the fix; the exit code stays 1. A gate that is SKIP (no URL) or WARN marks nothing
down: the checks run as they would alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from doctor.context import Context
from doctor.model import Check, Result, Status


def run_all(checks: Sequence[Check], context: Context) -> list[Result]:
    """Every check's result, in the order given: gates first, then the others, each skipped
    when a component it depends on is down."""
    results: dict[int, Result] = {}
    down: dict[str, Result] = {}
    for index, check in enumerate(checks):
        if check.gate:
            results[index] = result = check.run(context)
            if result.status is Status.FAIL:
                down.setdefault(check.component, result)
    for index, check in enumerate(checks):
        if check.gate:
            continue
        cause = next((c for c in check.depends_on(context) if c in down), None)
        if cause is None or check.not_given(context):
            results[index] = check.run(context)  # a SKIP for lack of a URL says so first
        else:
            gate = down[cause].check.name
            results[index] = Result(
                check, Status.SKIP, f"{cause} is down (its {gate!r} check failed)", cause=cause
            )
    return [results[index] for index in range(len(checks))]


def causes(results: Sequence[Result]) -> list[tuple[Result, int]]:
    """Each failed gate, with how many checks were skipped because of it."""
    return [
        (r, sum(1 for other in results if other.cause == r.check.component))
        for r in results
        if r.check.gate and r.status is Status.FAIL
    ]
