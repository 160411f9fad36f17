"""Rendering results: an aligned table for people (colours only on a terminal), JSON for
machines. Both end with the causes: each component down (its gate failed, doctor/runner.py),
how many checks it skipped, and its fix."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from doctor.model import Result, Status
from doctor.runner import causes

COLOURS = {
    Status.PASS: "\033[32m",
    Status.WARN: "\033[1;33m",
    Status.FAIL: "\033[1;31m",
    Status.SKIP: "\033[33m",
}
RESET = "\033[0m"


def use_colour(stream: TextIO) -> bool:
    # https://no-color.org: any non-empty NO_COLOR turns colours off.
    return stream.isatty() and not os.environ.get("NO_COLOR")


def summary(results: Sequence[Result]) -> dict[str, int]:
    counts = Counter(r.status for r in results)
    return {status.value.lower(): counts.get(status, 0) for status in Status}


def table(results: Sequence[Result], colour: bool = False) -> str:
    component_w = max((len(r.check.component) for r in results), default=9)
    name_w = max((len(r.check.name) for r in results), default=5)
    lines = [f"{'STATUS':<6}  {'COMPONENT':<{component_w}}  {'CHECK':<{name_w}}  DETAIL"]
    hinted: set[str] = set()  # a stopped component fails all its checks: one fix is enough
    for r in results:
        status = r.status.value
        if colour:
            status = f"{COLOURS[r.status]}{status}{RESET}"
        lines.append(
            f"{status}{' ' * (6 - len(r.status.value))}  {r.check.component:<{component_w}}  "
            f"{r.check.name:<{name_w}}  {r.detail}"
        )
        if r.status is Status.FAIL and r.hint not in hinted:
            hinted.add(r.hint)
            lines.append(f"{'':6}  {'':<{component_w}}  fix: {r.hint}")
    counts = summary(results)
    failed = [f"{r.check.component} {r.check.name}" for r in results if r.status is Status.FAIL]
    warned = [f"{r.check.component} {r.check.name}" for r in results if r.status is Status.WARN]
    if failed:
        verdict = f"FAILED: {'; '.join(failed)}"
    else:
        verdict = f"OK, with warnings: {'; '.join(warned)}" if warned else "OK"
    lines.append("")
    lines.append(
        f"{counts['pass']} passed, {counts['warn']} warned, {counts['fail']} failed, "
        f"{counts['skip']} skipped — {verdict}"
    )
    for gate, skipped in causes(results):
        lines.append(
            f"cause: {gate.check.component} is down ({gate.detail}), {skipped} check(s) "
            f"skipped; fix: {gate.hint}"
        )
    return "\n".join(lines) + "\n"


def as_json(results: Sequence[Result], urls: dict[str, str | None]) -> str:
    document = {
        "ok": not any(r.status is Status.FAIL for r in results),
        "summary": summary(results),
        "urls": urls,
        "causes": [
            {
                "component": gate.check.component,
                "check": gate.check.name,
                "detail": gate.detail,
                "hint": gate.hint,
                "skipped": skipped,
            }
            for gate, skipped in causes(results)
        ],
        "checks": [r.as_dict() for r in results],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
