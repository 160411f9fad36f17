"""`testboost doctor`: the setup guide's troubleshooting as checks that say what failed and
how to fix it. `doctor.checks.CHECKS` is the list; `doctor.cli` runs and prints it."""

from __future__ import annotations

from doctor.cli import DESCRIPTION, add_arguments, main, run, run_checks
from doctor.model import Check, Outcome, Result, Status

__all__ = [
    "DESCRIPTION",
    "Check",
    "Outcome",
    "Result",
    "Status",
    "add_arguments",
    "main",
    "run",
    "run_checks",
]
