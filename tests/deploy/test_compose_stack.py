"""The setup guide's Docker Compose stack, run for real with the guide's own command lines
(`docker network create testboost-network`, `docker compose -f docker-compose.yaml -f
docker-compose.monitoring.yaml up -d | ps | down | down -v`, the `docker cp` backup) on the
Docker engine, pull topology: the API image built from our Dockerfile, PostgreSQL, Prometheus
and Alertmanager from stand-in images of the versions the files name (Grafana is left out:
not packaged, AGPL). What Prometheus in its container shows is compared with what a workload
and the fake LLM provider did; an alert travels the real chain to the API's webhook with the
key Alertmanager reads from its mounted secret; `testboost doctor` from the wheel checks it all.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.processes import free_port
from tests.deploy.conftest import Installed
from tests.deploy.docker import (
    GUIDE,
    PROJECT,
    SERVICES,
    STANDINS,
    Registry,
    docker,
    environment,
    ok,
)
from tests.deploy.stack import ComposeStack, assert_counts, compose_stack
from tests.e2e.helpers import SESSIONS, Prometheus, Workload, api_client
from tests.monitoring.tools import tool_path
from tests.support.waiting import until

pytestmark = pytest.mark.docker

# At the committed 15 s scrape interval, a new series shows zero for 30 s (two intervals).
SEEN_S = 120


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    with compose_stack(GUIDE, SERVICES, tmp_path_factory.mktemp("compose")) as running:
        yield running


@pytest.fixture(scope="module")
def backups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the documented backup commands run (they write into the current directory)."""
    return tmp_path_factory.mktemp("backups")


@pytest.fixture(scope="module")
def dump(stack: ComposeStack, workload: Workload, backups: Path) -> Path:
    """docs/maintenance.md's database backup, of the workload's sessions."""
    _shell(
        "docker exec testboost-postgres pg_dump -U testboost -d testboost -Fc > testboost.pgdump",
        backups,
    )
    path = backups / "testboost.pgdump"
    assert path.stat().st_size > 0
    return path


@pytest.fixture(scope="module")
def counted_at(workload: Workload) -> float:
    """A moment when Prometheus held the workload's counts (before the alert test restarts
    the API, which starts its counters again)."""
    return time.time()


def test_every_service_is_healthy_and_published_on_loopback_only(stack: ComposeStack) -> None:
    rows = stack.wait_healthy()
    for name in SERVICES:
        assert rows[name]["State"] == "running", rows[name]
        assert rows[name]["Health"] == "healthy", rows[name]
        published = [p for p in rows[name]["Publishers"] if p["PublishedPort"]]
        assert all(p["URL"] == "127.0.0.1" for p in published), (name, published)
    assert {p["PublishedPort"] for p in rows["prometheus"]["Publishers"]} >= {9090}
    assert not [p for p in rows["postgres"]["Publishers"] if p["PublishedPort"]]


def test_no_container_runs_as_root(stack: ComposeStack) -> None:
    for name in SERVICES:
        container = f"testboost-{name}".replace("testboost-testboost-", "testboost-")
        out = ok(docker("top", container, "-o", "pid,uid,comm"))
        uids = {line.split()[1] for line in out.splitlines()[1:]}
        assert uids and "0" not in uids and "root" not in uids, (container, out)


def test_alertmanager_alone_reads_the_key(stack: ComposeStack) -> None:
    secret = "/etc/alertmanager/secrets/testboost-api-key"
    mode = ok(docker("exec", "testboost-alertmanager", "stat", "-c", "%u %a", secret)).split()
    assert mode == ["65534", "400"]  # Alertmanager's user, nobody; read-only, no one else
    content = ok(docker("exec", "testboost-alertmanager", "cat", secret))
    assert content == stack.api_key
    env = ok(docker("inspect", "testboost-alertmanager", "-f", "{{json .Config.Env}}"))
    assert stack.api_key not in env


def test_prometheus_scrapes_the_api_over_the_compose_network(
    stack: ComposeStack, prometheus: Prometheus
) -> None:
    up = prometheus.wait('up{job="testboost-api"} == 1', timeout=60)
    assert len(up) == 1
    targets = prometheus.http.get("/api/v1/targets").json()["data"]["activeTargets"]
    (api,) = [t for t in targets if t["labels"]["job"] == "testboost-api"]
    assert api["scrapeUrl"] == "http://testboost-api:8000/metrics"
    assert api["lastError"] == ""


def test_prometheus_shows_what_was_done(
    stack: ComposeStack, prometheus: Prometheus, workload: Workload, counted_at: float
) -> None:
    assert_counts(prometheus, workload, stack.fake)


@pytest.mark.usefixtures("workload")
def test_doctor_from_the_wheel_passes(stack: ComposeStack, installed: Installed) -> None:
    result = installed.run(
        "testboost", "doctor", "--api-key", stack.api_key, "--json", timeout=120
    )  # the default URLs are the compose ports on this host
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"status": "FAIL"' not in result.stdout


def test_an_alert_reaches_the_webhook_with_the_mounted_key(
    stack: ComposeStack, prometheus: Prometheus
) -> None:
    """HealthCheckFailed, for real: the API is recreated requiring a /metrics token that
    Prometheus is not given, so its scrape fails while the API still serves; the shipped rule
    fires after its 1 minute, Alertmanager (its container) posts to the API's webhook with the
    key from its secret file, and the API's inbox holds the alert."""
    try:
        stack.compose("up", "-d", "testboost-api", TESTBOOST_METRICS_TOKEN="not-given")
        stack.wait_healthy()
        prometheus.wait('up{job="testboost-api"} == 0', timeout=60)
        with api_client(stack) as api:  # type: ignore[arg-type]

            def received() -> list[dict[str, object]]:
                alerts = api.get("/api/v1/alerts").json()
                return [a for a in _items(alerts) if a.get("alertname") == "HealthCheckFailed"]

            (alert,) = until(received, timeout=180, interval=2, message="HealthCheckFailed")
        assert alert["status"] == "firing"
        assert alert["severity"] == "critical"
    finally:
        stack.compose("up", "-d", "testboost-api")
        stack.wait_healthy()
    prometheus.wait('up{job="testboost-api"} == 1', timeout=60)


def test_the_pipeline_watches_itself(stack: ComposeStack, prometheus: Prometheus) -> None:
    """Prometheus scrapes itself and Alertmanager (pipeline-alerts.yml reads them), and the
    Watchdog travels its own route to its receiver: the API's inbox, as shipped."""
    for job in ("prometheus", "alertmanager"):
        prometheus.wait(f'up{{job="{job}"}} == 1', timeout=60)
    with api_client(stack) as api:  # type: ignore[arg-type]

        def received() -> list[dict[str, object]]:
            alerts = api.get("/api/v1/alerts", params={"alertname": "Watchdog"}).json()
            return _items(alerts)

        (watchdog,) = until(received, timeout=120, interval=2, message="the Watchdog")
    assert (watchdog["receiver"], watchdog["status"]) == ("watchdog", "firing")


def _items(body: object) -> list[dict[str, object]]:
    items = body["items"] if isinstance(body, dict) else body
    return [dict(item) for item in items]  # type: ignore[union-attr]


def test_logs_and_a_prometheus_restart_as_the_docs_say(
    stack: ComposeStack, prometheus: Prometheus, workload: Workload, counted_at: float
) -> None:
    """docs/troubleshooting.md's logs, and docs/maintenance.md's restart after a rules
    change: Prometheus comes back healthy with its data."""
    for container in ("testboost-alertmanager", "testboost-prometheus", "testboost-api"):
        logs = docker("logs", container)
        assert logs.returncode == 0 and (logs.stdout + logs.stderr).strip(), container
    stack.compose("restart", "prometheus")
    stack.wait_healthy()
    value = prometheus.wait(f"sum(testboost_workflow_total @ {counted_at:.3f})", timeout=60)
    assert float(value[0]["value"][1]) == workload.sessions


# --- lifecycle: the guide's down / up, down -v, and its backup --------------------------------


def test_down_then_up_keeps_the_database_and_prometheus_data(
    stack: ComposeStack,
    prometheus: Prometheus,
    workload: Workload,
    counted_at: float,
    backups: Path,
    dump: Path,
) -> None:
    with api_client(stack) as api:  # type: ignore[arg-type]
        ids = [s["id"] for s in api.get(SESSIONS).json()["items"]]
    assert len(ids) == workload.sessions
    at = counted_at
    before = prometheus.value(f"sum(testboost_workflow_total @ {at:.3f})")
    assert before == workload.sessions

    stack.compose("down")
    assert not stack.compose("ps", "-q").strip()
    stack.up()

    with api_client(stack) as api:  # type: ignore[arg-type]
        until(lambda: _answers(api), timeout=60, message="the API back")
        assert sorted(s["id"] for s in api.get(SESSIONS).json()["items"]) == sorted(ids)
    prometheus.wait(f"sum(testboost_workflow_total @ {at:.3f})", timeout=60)
    assert prometheus.value(f"sum(testboost_workflow_total @ {at:.3f})") == before

    # The guide's backup, restored into a Prometheus of the same version: the old data is there.
    ok(docker("cp", "testboost-prometheus:/prometheus", "./prometheus-backup", cwd=backups))
    restored = _prometheus_on(backups / "prometheus-backup", backups)
    try:
        value = restored.wait(f"sum(testboost_workflow_total @ {at:.3f})", timeout=60)
        assert float(value[0]["value"][1]) == before
    finally:
        restored.close()
    # docs/maintenance.md's other copy: Alertmanager's state (the database's is `dump`).
    ok(docker("cp", "testboost-alertmanager:/alertmanager", "./alertmanager-backup", cwd=backups))
    assert (backups / "alertmanager-backup" / "nflog").is_file()


def test_down_v_removes_the_data(
    stack: ComposeStack, prometheus: Prometheus, workload: Workload, counted_at: float, dump: Path
) -> None:
    at = counted_at
    assert prometheus.value(f"sum(testboost_workflow_total @ {at:.3f})")
    volumes = f"label=com.docker.compose.project={PROJECT}"
    assert ok(docker("volume", "ls", "-q", "--filter", volumes)).split()
    stack.compose("down", "-v")
    assert not ok(docker("volume", "ls", "-q", "--filter", volumes)).split()
    stack.up()
    with api_client(stack) as api:  # type: ignore[arg-type]
        until(lambda: _answers(api), timeout=60, message="the API back")
        assert api.get(SESSIONS).json()["items"] == []
        prometheus.wait("up", timeout=60)
        assert prometheus.query(f"testboost_workflow_total @ {at:.3f}") == []
        # The database dump made before, restored as docs/maintenance.md says.
        _shell(
            "docker exec -i testboost-postgres pg_restore -U testboost -d testboost --clean"
            " --if-exists < testboost.pgdump",
            dump.parent,
        )
        restored = [s["id"] for s in api.get(SESSIONS).json()["items"]]
        assert len(restored) == workload.sessions


def test_pull_then_up_updates_from_the_registry(stack: ComposeStack, tmp_path: Path) -> None:
    """The guide's update: `pull`, then `up -d`, with the images named by their variables on a
    registry (a mirror): each is pulled, the containers are recreated on it, the data stays."""
    with api_client(stack) as api:  # type: ignore[arg-type]
        created = api.post(SESSIONS, json={"session_type": "test_generation", "project_path": "/u"})
        assert created.status_code == 201, created.text
    with Registry(tmp_path, free_port()) as registry:
        images = {
            variable: registry.push(STANDINS[variable])
            for variable in (
                "TESTBOOST_POSTGRES_IMAGE",
                "TESTBOOST_PROMETHEUS_IMAGE",
                "TESTBOOST_ALERTMANAGER_IMAGE",
            )
        }
        stack.env |= images
        stack.compose("pull", *SERVICES)
        for image in images.values():
            ok(docker("image", "inspect", image))
        stack.up()
    rows = stack.wait_healthy()
    assert {rows[s]["Image"] for s in ("postgres", "prometheus", "alertmanager")} == set(
        images.values()
    )
    with api_client(stack) as api:  # type: ignore[arg-type]
        until(lambda: _answers(api), timeout=60, message="the API back")
        assert api.get(f"{SESSIONS}/{created.json()['id']}").status_code == 200


def _shell(command: str, cwd: Path) -> None:
    """A documented command with a redirection, run by bash."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{command}:\n{result.stderr}"


def _answers(api: httpx.Client) -> bool:
    try:
        return api.get(SESSIONS).status_code == 200
    except httpx.TransportError:
        return False


class _Restored(Prometheus):
    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        super().__init__(url)
        self.process = process

    def close(self) -> None:
        super().close()
        self.process.terminate()
        self.process.wait(timeout=30)


def _prometheus_on(data: Path, workdir: Path) -> _Restored:
    """Prometheus 2.53 (the binary the stand-in image carries) on a copy of the data."""
    config = workdir / "restore.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    port = free_port()
    process = subprocess.Popen(
        [
            tool_path("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    restored = _Restored(f"http://127.0.0.1:{port}", process)
    try:
        until(lambda: _ready(restored), timeout=60, message="the restored Prometheus ready")
    except BaseException:
        restored.close()
        raise
    return restored


def _ready(prometheus: Prometheus) -> bool:
    try:
        return prometheus.http.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False
