"""`testboost`: a command imports only what it runs (the wheel and image ship no devstack, and
`serve` should not pay for doctor's imports)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(sorted({{name.split(".")[0] for name in sys.modules}} & {{"doctor", "devstack"}}))
"""


@pytest.mark.parametrize(
    ("argv", "loaded"),
    [
        (["serve", "--help"], []),
        (["--help"], []),
        (["doctor", "--help"], ["doctor"]),
    ],
)
def test_a_command_imports_only_what_it_runs(argv: list[str], loaded: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[-1] == repr(loaded)
    assert "usage: testboost" in out
