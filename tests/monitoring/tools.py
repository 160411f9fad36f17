"""Where the real monitoring binaries are: `.tools/bin` (scripts/install-tools.sh) or PATH.

A missing tool is an error, never a skip: `make test` installs them first (`make tools`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "bin"


def tool_path(name: str) -> str:
    """Absolute path of the executable `name`, preferring the project-local `.tools/bin`."""
    local = TOOLS_BIN / name
    if local.is_file() and local.stat().st_mode & 0o111:
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"{name} not found in {TOOLS_BIN} nor on PATH: run `make tools` "
        "(scripts/install-tools.sh) first"
    )


def run_tool(
    name: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool from `tool_path`, capturing output; the caller asserts on the result."""
    return subprocess.run(
        [tool_path(name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd or REPO,
        check=False,
    )


def check_generated(generator: Path) -> str:
    """`generator --check`, run as documented from another directory (a generator finds the
    repository itself): its output, once it says every file it writes is up to date."""
    result = subprocess.run(
        [sys.executable, str(generator), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO / "monitoring",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
