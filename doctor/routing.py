"""Which receiver Alertmanager picks for a set of labels: its routing tree, walked the way
Alertmanager walks it (https://prometheus.io/docs/alerting/latest/configuration/#route).

Pure functions over the loaded configuration, so the doctor answers "where does a critical
alert go?" from `/api/v2/status` without sending one.
"""

from __future__ import annotations

import re
from typing import Any

# name, operator, value: `severity="critical"`, `team=~"db|api"`, `env!=prod`.
MATCHER = re.compile(
    r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*$'
)
Route = dict[str, Any]


def parse_matcher(text: str) -> tuple[str, str, str]:
    found = MATCHER.match(text)
    if found is None:
        raise ValueError(f"not a matcher: {text!r}")
    name, op, quoted, bare = found.groups()
    value = bare if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
    return name, op, value


def _holds(op: str, expected: str, actual: str) -> bool:
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    matched = re.fullmatch(expected, actual) is not None
    return matched if op == "=~" else not matched


def route_matches(route: Route, labels: dict[str, str]) -> bool:
    """Every matcher of the route (`matchers`, and the deprecated `match`/`match_re`) holds."""
    conditions = [parse_matcher(m) for m in route.get("matchers") or []]
    conditions += [(k, "=", str(v)) for k, v in (route.get("match") or {}).items()]
    conditions += [(k, "=~", str(v)) for k, v in (route.get("match_re") or {}).items()]
    return all(_holds(op, value, labels.get(name, "")) for name, op, value in conditions)


def receivers_for(route: Route, labels: dict[str, str], inherited: str = "") -> list[str]:
    """Receivers an alert with `labels` is sent to, starting at a route it already matched."""
    receiver = route.get("receiver") or inherited
    found: list[str] = []
    for child in route.get("routes") or []:
        if route_matches(child, labels):
            found += receivers_for(child, labels, receiver)
            if not child.get("continue", False):
                break
    return found or [receiver]


def integrations(receiver: dict[str, Any]) -> list[str]:
    """Notifier kinds a receiver has (`webhook`, `email`, ...); none means alerts go nowhere."""
    return sorted(
        key.removesuffix("_configs")
        for key, value in receiver.items()
        if key.endswith("_configs") and value
    )
