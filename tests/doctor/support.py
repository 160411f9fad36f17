"""Running the doctor's checks of one component against a fake or in-process server."""

from __future__ import annotations

from typing import Any

import httpx

from doctor.checks import CHECKS
from doctor.cli import run_checks
from doctor.context import Context, Options
from doctor.hints import UNREACHABLE, fill
from doctor.model import Result, Status
from doctor.runner import run_all


def results_for(component: str, client: httpx.Client | None = None, **options: Any) -> list[Result]:
    checks = [c for c in CHECKS if c.component == component]
    if client is None:
        return run_checks(Options(**options), checks)
    return run_all(checks, Context(Options(**options), client=client))


def by_name(results: list[Result]) -> dict[str, Result]:
    return {r.check.name: r for r in results}


def statuses(results: list[Result]) -> dict[str, Status]:
    return {r.check.name: r.status for r in results}


def unreachable_hint(component: str, **options: Any) -> str:
    """The fix printed when `component` does not answer, for a run with `options`."""
    return fill(UNREACHABLE[component], Options(**options))
