"""Alertmanager: ready, configuration loaded, cluster state, where critical and warning
alerts are routed, and which alerts fire (compared with Prometheus when it is given).

With clustering on (the upstream image's default), a started Alertmanager reports its cluster
`settling` until its gossip settles: a few seconds alone, at most --cluster.settle-timeout.
That is not a fault: the cluster check polls it for a while
(`Options.settle_wait`), and if it still settles says so as a warning.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import yaml

from doctor.context import Context
from doctor.errors import Failed
from doctor.model import Check, Outcome
from doctor.routing import integrations, receivers_for

SEVERITIES = ("critical", "warning")
# Prometheus sends an alert as it starts firing and re-sends it every minute (its default
# --rules.alert.resend-delay); a send it dropped (Alertmanager not yet discovered at start-up,
# or restarting) arrives with the next, so one firing for less than this may be on its way.
# The always-firing Watchdog meets this race at every start.
SEND_GRACE_S = 90.0
CLUSTER_OK = ("ready", "disabled")
SETTLING = "settling"
SETTLE_POLL_S = 0.5


def ready(context: Context) -> Outcome:
    response = context.get("alertmanager", "/-/ready")
    return Outcome(response.status_code == 200, f"HTTP {response.status_code}")


def _status(context: Context, fresh: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = context.json("alertmanager", "/api/v2/status", fresh=fresh)
    return status


def config(context: Context) -> Outcome:
    status = _status(context)
    if not (status.get("config") or {}).get("original", "").strip():
        return Outcome(False, "no configuration loaded")
    version = (status.get("versionInfo") or {}).get("version", "?")
    return Outcome(True, f"loaded; version {version}, up since {status.get('uptime', '?')}")


def cluster(context: Context) -> Outcome:
    state = _status(context).get("cluster") or {}
    was_settling = state.get("status") == SETTLING
    started = time.monotonic()
    deadline = started + context.options.settle_wait
    while state.get("status") == SETTLING and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        state = _status(context, fresh=True).get("cluster") or {}
    waited = time.monotonic() - started
    name = state.get("status", "?")
    peers = len(state.get("peers") or [])
    if name == SETTLING:
        return Outcome(
            True,
            f"still settling after {waited:.0f} s, {peers} peer(s): a start's transient state, "
            "over within --cluster.settle-timeout (1 min by default); run the doctor again then",
            warning=True,
        )
    settled = f" (settled while the doctor waited {waited:.0f} s)" if was_settling else ""
    return Outcome(name in CLUSTER_OK, f"{name}, {peers} peer(s){settled}")


def receivers(context: Context) -> Outcome:
    try:
        loaded = yaml.safe_load(_status(context)["config"]["original"]) or {}
    except (KeyError, yaml.YAMLError) as exc:
        raise Failed(f"configuration unreadable: {exc}") from None
    if not loaded.get("route"):
        raise Failed("no routing tree loaded")
    defined = {r["name"]: r for r in loaded.get("receivers") or []}
    parts, ok = [], True
    for severity in SEVERITIES:
        labels = {"severity": severity, "alertname": "TestBoostDoctor"}
        for name in receivers_for(loaded.get("route") or {}, labels):
            kinds = integrations(defined.get(name, {}))
            ok = ok and bool(kinds)
            parts.append(f"{severity} → {name} ({', '.join(kinds) or 'no notifier'})")
    return Outcome(ok, "; ".join(parts))


def firing(context: Context) -> Outcome:
    # Every alert Alertmanager holds, silenced and inhibited ones too: those were received (an
    # inhibited one is held back on purpose, e.g. while HealthCheckFailed fires).
    held = context.json("alertmanager", "/api/v2/alerts", {"active": "true"})
    received = {a["labels"].get("alertname", "?") for a in held}
    active = [a for a in held if (a.get("status") or {}).get("state", "active") == "active"]
    listed = ", ".join(
        sorted(
            f"{a['labels'].get('alertname')} ({a['labels'].get('severity', '-')})" for a in active
        )
    )
    detail = f"firing: {listed}" if active else "no alert firing"
    if len(held) > len(active):
        detail += f" ({len(held) - len(active)} silenced or inhibited)"
    if context.url("prometheus") is None:
        return Outcome(True, detail)
    try:
        groups = context.prometheus("/api/v1/rules", {"type": "alert"}).get("groups", [])
    except Failed:
        return Outcome(True, detail + " (Prometheus not reachable to compare)")
    lost = sorted(
        {
            alert["labels"]["alertname"]
            for group in groups
            for rule in group.get("rules", [])
            for alert in rule.get("alerts", [])
            if alert.get("state") == "firing" and _firing_for(alert, rule) > SEND_GRACE_S
        }
        - received
    )
    if lost:
        return Outcome(False, f"{detail}; firing in Prometheus, not here: {', '.join(lost)}")
    return Outcome(True, detail)


def _firing_for(alert: dict[str, Any], rule: dict[str, Any]) -> float:
    """Seconds since the alert went from pending to firing (activeAt + the rule's `for`)."""
    # Prometheus writes nanoseconds; fromisoformat takes at most microseconds.
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", alert.get("activeAt", "")).replace("Z", "+00:00")
    try:
        active = datetime.fromisoformat(stamp)
    except ValueError:
        return 0.0
    return time.time() - active.timestamp() - float(rule.get("duration") or 0)


CHECKS = (
    Check(
        "alertmanager",
        "ready",
        "Start Alertmanager ({start_alertmanager}) and check `curl -i "
        "{alertmanager}/-/ready`; {log_alertmanager} says why it is not ready.",
        ready,
        gate=True,
    ),
    Check(
        "alertmanager",
        "configuration loaded",
        "`amtool check-config monitoring/alertmanager/alertmanager.yml`, fix, then reload: "
        "`curl -X POST {alertmanager}/-/reload`.",
        config,
    ),
    Check(
        "alertmanager",
        "cluster status",
        "Neither ready, disabled nor settling: check the peers (--cluster.peer) reach each other "
        "on the cluster port (9094 by default), as {alertmanager}/#/status shows them; one "
        "Alertmanager alone needs no cluster (--cluster.listen-address=).",
        cluster,
    ),
    Check(
        "alertmanager",
        "receivers for critical and warning",
        "Configure the receivers in alertmanager.yml (docs/setup.md#alertmanager): each "
        "severity must route to a receiver with a notifier (webhook, email, Slack...); "
        "{alertmanager}/#/status shows the configuration loaded.",
        receivers,
    ),
    Check(
        "alertmanager",
        "alerts reaching Alertmanager",
        "Prometheus fires alerts Alertmanager never got: check alerting.alertmanagers in "
        "prometheus.yml and {log_prometheus}; compare {prometheus_alerts} with "
        "{alertmanager}/#/alerts.",
        firing,
    ),
)
