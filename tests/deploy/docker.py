"""Docker and `docker compose` as the tests run them: the engine and plugins that
scripts/docker.sh starts and installs (`make test` runs it), the guide's compose files, and
the stand-in images chosen through the files' image variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The guide's two files, and the OTLP overlay, as docs/setup.md names them from the root.
GUIDE = ("compose/docker-compose.yaml", "compose/docker-compose.monitoring.yaml")
OTEL = (*GUIDE, "compose/docker-compose.otel.yaml")
# Every service of those files but Grafana (AGPL, not packaged: not run here).
SERVICES = ("testboost-api", "postgres", "prometheus", "alertmanager")
OTEL_SERVICES = (*SERVICES, "otel-collector", "jaeger")
# The images the tests run instead of the upstream defaults (scripts/docker.sh builds them).
STANDINS = {
    "TESTBOOST_PYTHON_IMAGE": "testboost-standin/python:3.11-slim",
    "TESTBOOST_POSTGRES_IMAGE": "testboost-standin/postgres:15",
    "TESTBOOST_PROMETHEUS_IMAGE": "testboost-standin/prometheus:v2.53.3",
    "TESTBOOST_ALERTMANAGER_IMAGE": "testboost-standin/alertmanager:v0.28.1",
    "TESTBOOST_COLLECTOR_IMAGE": "testboost-standin/opentelemetry-collector-contrib:0.165.1",
    "TESTBOOST_JAEGER_IMAGE": "testboost-standin/jaeger:2.13.0",
    "TESTBOOST_THANOS_IMAGE": "testboost-standin/thanos:v0.42.4",
    "TESTBOOST_HAPROXY_IMAGE": "testboost-standin/haproxy:3.0",
}
NETWORK = "testboost-network"
# The tests' compose project (COMPOSE_PROJECT_NAME), not the files' `testboost`: their volumes
# are their own, and `down -v` never reaches an operator's.
PROJECT = "testboost-tests"
# The shapes of the documented Docker commands that tests/deploy and tests/monitoring run (docs
# blocks marked "make test runs it on Docker" hold nothing else; tests/docs checks it).
RUN_HERE = re.compile(
    r"TESTBOOST_API_KEY=unused docker compose( -f compose/docker-compose(\.(monitoring|otel))?"
    r"\.yaml)+ config --quiet"
    r"|docker network (create|rm) testboost-network"
    r"|docker compose( -f compose/docker-compose(\.(monitoring|otel|scaled))?\.yaml)+"
    r" (up -d|up -d --build|ps|pull|down|down -v|restart prometheus)"
    r"|docker logs testboost-(api|prometheus|alertmanager)"
    r"|docker cp testboost-(prometheus:/prometheus|alertmanager:/alertmanager) \./\S+-backup"
    r"|docker exec testboost-postgres pg_dump -U testboost -d testboost -Fc > testboost\.pgdump"
    r"|docker exec -i testboost-postgres pg_restore -U testboost -d testboost --clean"
    r" --if-exists < testboost\.pgdump"
)


def environment(**extra: str) -> dict[str, str]:
    """The shell's environment without its TESTBOOST_*/GF_* settings, with the plugins'
    DOCKER_CONFIG, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBOOST_", "GF_"))}
    return env | {"DOCKER_CONFIG": str(REPO / ".tools" / "docker")} | extra


def docker(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`docker ARGS` (the caller asserts on the result)."""
    return subprocess.run(
        ["docker", *args],
        env=env or environment(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def compose(
    files: tuple[str, ...], *args: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`docker compose -f FILE... ARGS` from the repository's root, as docs/setup.md runs it."""
    flags = [a for f in files for a in ("-f", f)]
    return docker("compose", *flags, *args, env=env, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{' '.join(result.args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def config(files: tuple[str, ...], env: dict[str, str]) -> dict[str, Any]:
    """The merged configuration, as compose resolves it."""
    loaded: dict[str, Any] = json.loads(ok(compose(files, "config", "--format", "json", env=env)))
    return loaded


def services(files: tuple[str, ...], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`docker compose ps` of the running services, by service name."""
    out = ok(compose(files, "ps", "--all", "--format", "json", env=env))
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["Service"]: row for row in rows}


class Registry:
    """Debian's docker-registry on loopback (scripts/docker.sh unpacks it): images pushed
    there are pulled by the engine as from an operator's mirror."""

    BINARY = REPO / ".tools" / "root-registry" / "usr" / "bin" / "docker-registry"

    def __init__(self, workdir: Path, port: int) -> None:
        self.address = f"127.0.0.1:{port}"  # loopback: the engine allows it over plain HTTP
        config = workdir / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
            f"http:\n  addr: {self.address}\n"
        )
        self.log = (workdir / "registry.log").open("w")
        self.process = subprocess.Popen(
            [str(self.BINARY), "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )

    def __enter__(self) -> Registry:
        import httpx

        from tests.support.waiting import until

        def ready() -> bool:
            try:
                return httpx.get(f"http://{self.address}/v2/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            until(ready, timeout=30, interval=0.2, message="the registry")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()

    def push(self, image: str) -> str:
        """Push `image` as <registry>/<image>; the local tag of that name is removed, so that
        only a pull brings it back."""
        name = f"{self.address}/{image}"
        ok(docker("tag", image, name))
        ok(docker("push", "-q", name))
        ok(docker("image", "rm", name))
        return name
