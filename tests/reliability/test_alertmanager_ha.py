"""An Alertmanager high-availability pair (issue 14): two real Alertmanagers clustered on
loopback, both targets of Prometheus, with the shipped routing and Alertmanager's own cluster
defaults (`--cluster.peer-timeout` 15 s), as operators run them; the API's inbox stores each
alert once per (fingerprint, startsAt) and counts every delivery.

The pair deduplicates through its gossiped notification log, as far as its timing allows: the
second instance decides one peer timeout after the first, on the alerts it held when its
flush began. Seen in every run here (timing, so not required by the test): the first
instance delivers the firing and the resolved notification; the second, whose flush began
while the alert still fired, finds the resolved entry in the log and delivers a stale
*firing* notification some seconds after the resolution, then, on its next flush, the
resolution again (prometheus/alertmanager#4008). So one alert may arrive four times, a firing
after the resolved: the inbox must keep one row, resolved, counting all four.
"""

from __future__ import annotations

import difflib
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import Stack, StackConfig
from devstack.configs import alertmanager_instances, write_configs
from tests.e2e.helpers import Prometheus, api_client, cancel_sessions, create_sessions
from tests.monitoring.tools import run_tool
from tests.support.exposition import Exposition
from tests.support.waiting import until

ALERT = "TooManyActiveSessions"  # max(testboost_active_sessions) > 50: one series, one group
WEBHOOK = "/api/v1/alerts/webhook"
# Alertmanager's default, which devstack keeps: the second instance waits this long.
PEER_TIMEOUT_S = 15.0
PAIR = alertmanager_instances(2)


def test_the_prometheus_copy_targets_every_alertmanager(tmp_path: Path) -> None:
    """The generated prometheus.yml differs from the single-instance copy only by the second
    target, in the same list; one instance changes nothing."""
    ports = {"api": 18000, "prometheus": 19090, "alertmanager": 19093, "alertmanager-2": 19094}
    single, pair = tmp_path / "single", tmp_path / "pair"
    for workdir, instances in ((single, PAIR[:1]), (pair, PAIR)):
        write_configs(workdir, ports, "k3y", True, scrape_collector=False, alertmanagers=instances)
    before = (single / "prometheus.yml").read_text().splitlines()
    after = (pair / "prometheus.yml").read_text().splitlines()
    diff = [
        line
        for line in difflib.unified_diff(before, after, n=0)
        if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))
    ]
    # Both lists that name Alertmanager: `alerting` and its own scrape job.
    assert diff == [
        '-        - targets: ["127.0.0.1:19093"]',
        '+        - targets: ["127.0.0.1:19093", "127.0.0.1:19094"]',
        '-      - targets: ["127.0.0.1:19093"]',
        '+      - targets: ["127.0.0.1:19093", "127.0.0.1:19094"]',
    ]
    for name in ("alerts.yml", "alertmanager.yml"):  # the instances share alertmanager.yml
        copy = (pair / name).read_text().replace(str(pair), str(single))
        assert copy == (single / name).read_text()


@pytest.mark.tools
def test_promtool_accepts_the_pair_copy(tmp_path: Path) -> None:
    ports = {"api": 18000, "prometheus": 19090, "alertmanager": 19093, "alertmanager-2": 19094}
    write_configs(tmp_path, ports, "k3y", True, scrape_collector=False, alertmanagers=PAIR)
    for promtool in ("promtool", "promtool3"):
        result = run_tool(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
        assert result.returncode == 0, result.stdout + result.stderr


def test_one_alertmanager_is_not_clustered_two_are_peers(tmp_path: Path) -> None:
    """One instance runs exactly as before (gossip off); a pair gossips on loopback, each
    instance with its own data and the other as its peer."""
    one = Stack(StackConfig(workdir=tmp_path / "one"))
    assert one.components == ("alertmanager", "prometheus", "api")
    assert not any(name.endswith("-cluster") for name in one.ports)
    argv = one._argv("alertmanager")
    assert argv[-1] == "--cluster.listen-address="
    assert argv[2] == f"--storage.path={tmp_path / 'one' / 'alertmanager-data'}"

    two = Stack(StackConfig(workdir=tmp_path / "two", alertmanagers=2))
    assert two.components == ("alertmanager", "alertmanager-2", "prometheus", "api")
    gossip = {name: f"127.0.0.1:{two.ports[f'{name}-cluster']}" for name in PAIR}
    for name, other in (PAIR, PAIR[::-1]):
        argv = two._argv(name)
        assert f"--storage.path={tmp_path / 'two' / f'{name}-data'}" in argv
        assert f"--web.listen-address=127.0.0.1:{two.ports[name]}" in argv
        assert f"--cluster.listen-address={gossip[name]}" in argv
        assert f"--cluster.advertise-address={gossip[name]}" in argv
        assert [a for a in argv if a.startswith("--cluster.peer=")] == [
            f"--cluster.peer={gossip[other]}"
        ]
    assert two.state()["config"]["alertmanagers"] == 2
    again = Stack.from_state(two.state())
    assert again.components == two.components and again.ports == two.ports


@pytest.mark.e2e
def test_an_ha_pair_stores_each_alert_once_and_counts_every_delivery(tmp_path: Path) -> None:
    config = StackConfig(workdir=tmp_path / "stack", mode="pull", fast=True, alertmanagers=2)
    with Stack(config) as stack, api_client(stack) as api:
        prometheus = Prometheus(stack.urls["prometheus"])
        managers = {name: httpx.Client(base_url=stack.urls[name], timeout=10) for name in PAIR}
        try:
            _assert_clustered(stack, managers)
            baseline = _silence_the_others(api, managers)
            assert _row(api, "firing", datetime.min.replace(tzinfo=UTC)) is None
            since = datetime.now(UTC) - timedelta(seconds=1)
            ids = create_sessions(api, 51, mode="interactive")  # each pauses: 51 active
            try:
                prometheus.wait(
                    f'ALERTS{{alertname="{ALERT}", alertstate="firing"}}',
                    message=f"Prometheus fires {ALERT}",
                )
                held = {
                    name: until(partial(_active, manager), 20, message=f"{name} holds it")
                    for name, manager in managers.items()
                }
                # Both received it from Prometheus: the same alert on each.
                (fingerprint, starts_at), *rest = {
                    (a["fingerprint"], _time(a["startsAt"]))
                    for alerts in held.values()
                    for a in alerts
                }
                assert not rest and all(len(alerts) == 1 for alerts in held.values()), held
                firing = until(
                    lambda: _row(api, "firing", since), timeout=20, message="the firing delivery"
                )
                assert (firing["fingerprint"], _time(firing["starts_at"])) == (
                    fingerprint,
                    starts_at,
                )
                counted = until(
                    lambda: _settled(api, managers, baseline),
                    timeout=10,
                    message="counts that agree",
                )
                assert counted["row"]["notifications"] >= 1
            finally:
                cancel_sessions(api, ids)
            resolved = until(
                lambda: _row(api, "resolved", since), timeout=30, message="the resolution"
            )
            assert resolved["id"] == firing["id"] and resolved["ends_at"] is not None
            # The second instance decides a peer timeout after the first, on the alerts of
            # a flush that may have begun before the resolution, then flushes again: its
            # last delivery comes within two peer timeouts of the resolution. (Counting the
            # dispatcher's groups no longer tells: the Watchdog's, silenced, never empties,
            # and the shipped inhibitor alerts keep theirs too.)
            time.sleep(2 * (PEER_TIMEOUT_S + 1))
            final = until(
                lambda: _settled(api, managers, baseline), timeout=10, message="final counts"
            )
        finally:
            prometheus.close()
            for manager in managers.values():
                manager.close()
    row = final["row"]
    # Resolved in place: the same row, never reopened by a late firing notification.
    assert row["id"] == firing["id"] and row["status"] == "resolved", row
    assert row["ends_at"] == resolved["ends_at"]
    # A firing and a resolved delivery at least; each counted once, by whichever instance.
    assert final["deliveries"] == row["notifications"] >= 2, final
    assert _time(row["last_received_at"]) >= _time(row["first_received_at"]), row
    # Every delivery authenticated and stored: no webhook answer but 200.
    assert final["rejected"] == 0, final
    sent = ", ".join(f"{name} {count:g}" for name, count in final["sent"].items())
    print(
        f"\nHA pair: {final['deliveries']:g} deliveries received (sent: {sent}), "
        f"notifications={row['notifications']}, one row, {row['status']}"
    )


def _assert_clustered(stack: Stack, managers: dict[str, httpx.Client]) -> None:
    """Each instance answers `ready` with both instances as peers, at their gossip addresses."""
    gossip = {f"127.0.0.1:{stack.ports[f'{name}-cluster']}" for name in PAIR}
    names = []
    for manager in managers.values():
        cluster = manager.get("/api/v2/status").json()["cluster"]
        assert cluster["status"] == "ready", cluster
        assert {peer["address"] for peer in cluster["peers"]} == gossip, cluster
        names.append({peer["name"] for peer in cluster["peers"]})
    assert names[0] == names[1] and len(names[0]) == 2, names


def _active(manager: httpx.Client) -> list[dict[str, Any]]:
    alerts = manager.get("/api/v2/alerts", params={"filter": f'alertname="{ALERT}"'}).json()
    return [a for a in alerts if a["status"]["state"] == "active"]


def _row(api: httpx.Client, status: str, since: datetime) -> Any:
    """The alert's row in `status` (None until there is one)."""
    page = api.get("/api/v1/alerts", params={"alertname": ALERT, "status": status}).json()
    rows = [r for r in page["items"] if _time(r["starts_at"]) >= since]
    return dict(rows[0]) if rows else None


def _counts(api: httpx.Client, managers: dict[str, httpx.Client]) -> Any:
    """The API's webhook answers and each instance's successful webhook requests, read between
    two equal readings of the API's count (no delivery in between); None otherwise."""
    before = _webhook(api)
    sent = {name: _sent(manager) for name, manager in managers.items()}
    after = _webhook(api)
    return {"webhook": after, "sent": sent} if before == after else None


def _silence_the_others(api: httpx.Client, managers: dict[str, httpx.Client]) -> Any:
    """Every alert but ALERT silenced (the silence gossips to the peer): the shipped Watchdog
    always fires, and the pipeline alerts may flicker while the fast stack starts, all to the
    same webhook. The counts they already caused, once they settle, are the baseline every
    later delivery is counted from."""
    first = next(iter(managers.values()))
    silence = {
        "matchers": [
            {"name": "alertname", "value": ".+", "isRegex": True, "isEqual": True},
            {"name": "alertname", "value": ALERT, "isRegex": False, "isEqual": False},
        ],
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "createdBy": "tests",
        "comment": "only the alert under test reaches the webhook",
    }
    first.post("/api/v2/silences", json=silence).raise_for_status()
    for name, manager in managers.items():
        until(
            lambda m=manager: m.get("/api/v2/silences").json(), 20, 0.5, f"{name} has the silence"
        )
    time.sleep(2)  # a Watchdog delivery already under way lands
    return until(lambda: _counts(api, managers), timeout=10, message="settled baseline counts")


def _settled(api: httpx.Client, managers: dict[str, httpx.Client], baseline: Any) -> Any:
    """The alert's one row and the deliveries counted on both sides since `baseline` (the
    other alerts silenced), when they all agree: the API's webhook answers 200, each instance's
    successful webhook requests, the row's `notifications`. Every delivery since carried
    this alert."""
    counts = _counts(api, managers)
    page = api.get("/api/v1/alerts", params={"alertname": ALERT}).json()
    if counts is None or page["total"] != 1:
        return None
    row = page["items"][0]
    ok = counts["webhook"]["ok"] - baseline["webhook"]["ok"]
    sent = {name: n - baseline["sent"][name] for name, n in counts["sent"].items()}
    if not ok == sum(sent.values()) == row["notifications"]:
        return None
    rejected = counts["webhook"]["rejected"] - baseline["webhook"]["rejected"]
    return {"row": row, "deliveries": ok, "rejected": rejected, "sent": sent}


def _webhook(api: httpx.Client) -> dict[str, float]:
    metrics = Exposition(api.get("/metrics").text)
    requests = [
        s for s in metrics.series("testboost_http_requests_total") if s.labels["path"] == WEBHOOK
    ]
    ok = sum(s.value for s in requests if s.labels["status"] == "200")
    return {"ok": ok, "rejected": sum(s.value for s in requests) - ok}


def _sent(manager: httpx.Client) -> float:
    """Webhook requests this instance made that succeeded (retries included, each once)."""
    metrics = Exposition(manager.get("/metrics").text)
    made = metrics.value("alertmanager_notification_requests_total", integration="webhook")
    failed = metrics.value("alertmanager_notification_requests_failed_total", integration="webhook")
    return made - failed


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
