"""What users install: the wheel built from this checkout, in a virtualenv of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Prometheus, Workload, run_workload

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"  # the Makefile installs uv into .venv


def uv(*args: str, cwd: Path = REPO, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(UV), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"uv {' '.join(args)}:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--wheel", "-o", str(out), "-q")
    (built,) = out.glob("*.whl")
    return built


@dataclass(frozen=True)
class Installed:
    """The wheel in a clean virtualenv, and an empty directory to run it from (no checkout)."""

    venv: Path
    workdir: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    @property
    def env(self) -> dict[str, str]:
        """The environment of a user's shell: nothing of this checkout or its .venv."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        keep = {k: v for k, v in keep.items() if not k.startswith(("TESTBOOST_", "OTEL_"))}
        path = [p for p in keep.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
        return keep | {"PATH": os.pathsep.join([str(self.venv / "bin"), *path])}

    def run(self, *argv: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.bin(argv[0]), *argv[1:]],
            cwd=self.workdir,
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """`pip install testboost-*.whl` into a new virtualenv, its dependencies at the lock's
    versions (the lock as constraints: the same set the image installs)."""
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    constraints = root / "constraints.txt"
    constraints.write_text(
        uv("export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "-q")
    )
    uv(
        "pip",
        "install",
        "-q",
        "--python",
        str(venv / "bin" / "python"),
        "-c",
        str(constraints),
        str(wheel),
    )
    workdir = root / "work"
    workdir.mkdir()
    yield Installed(venv=venv, workdir=workdir)


@pytest.fixture(scope="module")
def prometheus(stack: Any) -> Iterator[Prometheus]:
    """The module's compose stack's Prometheus (its `stack` fixture)."""
    client = Prometheus(stack.urls["prometheus"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def workload(stack: Any, prometheus: Prometheus, request: pytest.FixtureRequest) -> Workload:
    """The e2e workload against the module's compose stack, each of Prometheus' views waited
    for up to the module's SEEN_S (the committed intervals are 15 s)."""
    seen_s: float = request.module.SEEN_S
    return run_workload(stack, stack.fake, prometheus, timeout=seen_s)
