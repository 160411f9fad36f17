"""`testboost serve` at start-up: an unreachable database is one actionable line (the URL with
its password masked, the driver's reason), exit code 2, no traceback; a normal start logs no
library noise (alembic's plugin registry)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack.configs import REPO
from devstack.processes import free_port
from tests.support.api_process import ApiProcess


def serve(database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBOOST_", "OTEL_"))}
    env["TESTBOOST_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--port", str(free_port())],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unreachable_postgresql_is_one_line_with_the_password_masked() -> None:
    result = serve(f"postgresql+psycopg://bob:s3cret-pw@127.0.0.1:{free_port()}/testboost")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Cannot reach the database at postgresql+psycopg://bob:***@")
    assert "Connection refused" in lines[0] and "TESTBOOST_DATABASE_URL" in lines[0]
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_an_unusable_sqlite_path_is_one_line() -> None:
    result = serve("sqlite:////proc/no-such-folder/testboost.db")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Cannot use the database at sqlite:////proc/no-such-folder/testboost.db "
        "(TESTBOOST_DATABASE_URL): [Errno 2] No such file or directory: '/proc/no-such-folder'"
    ]


def test_a_normal_start_logs_no_alembic_plugin_lines(tmp_path: Path) -> None:
    with ApiProcess({"TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"}) as api:
        output = api.output
    assert "Application startup complete" in output
    assert "alembic.runtime.plugins" not in output
