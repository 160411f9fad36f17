"""Checks as data: a `Check` names what it verifies, how to fix it, and the components it reads
through; `run()` gives a `Result`. doctor/runner.py runs a list of them, one cause at a time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from doctor.context import Context
from doctor.errors import Failed, Skipped, Unreachable
from doctor.hints import UNREACHABLE, Hint, fill


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"  # nothing broken, but something the check could not see or vouch for
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Outcome:
    """What a probe found: passed or not, and one line saying what was seen. A passed outcome
    with `warning` is a WARN: not a failure (the exit code stays 0), but worth reading."""

    passed: bool
    detail: str
    warning: bool = False
    # What the fix needs that only the probe found (a value to set), as fields of its hint.
    fields: Mapping[str, str] = field(default_factory=dict)


Probe = Callable[[Context], Outcome]
# The components a check reads through, fixed or known only once the topology is (push mode).
Requires = tuple[str, ...] | Callable[[Context], tuple[str, ...]]


@dataclass(frozen=True)
class Check:
    component: str  # "api", "prometheus", "alertmanager", "grafana" or "otlp-agent"
    name: str
    # The fix, one line, from the setup guide's troubleshooting: a template of doctor/hints.py
    # (or one per topology), filled in with the URLs given.
    hint: Hint
    probe: Probe
    # Components whose URL the check needs (SKIP without one); None: its own component's.
    # () lets the probe decide, raising Skipped.
    needs: tuple[str, ...] | None = None
    # The check that says whether its component is up at all (answers, is ready): run first;
    # when it fails, the component is down and the checks that depend on it are not run.
    gate: bool = False
    # Other components this check reads through (Prometheus' view of the API's target needs
    # the API up): when one is down, this check is SKIP naming it, not one more failure. A
    # function of the context when that depends on the topology (the agent, in push mode).
    requires: Requires = ()

    def depends_on(self, context: Context) -> tuple[str, ...]:
        """Every component that must be up for this check to say anything: its own (unless
        it is the gate that tells), then `requires`."""
        own = () if self.gate else (self.component,)
        others = self.requires(context) if callable(self.requires) else self.requires
        return own + tuple(c for c in others if c not in own)

    def not_given(self, context: Context) -> Result | None:
        """SKIP when a URL it needs was not given; None when it can run."""
        for needed in (self.component,) if self.needs is None else self.needs:
            if context.url(needed) is None:
                return Result(self, Status.SKIP, f"no --{needed} URL given")
        return None

    def run(self, context: Context) -> Result:
        skipped = self.not_given(context)
        if skipped is not None:
            return skipped
        try:
            outcome = self.probe(context)
        except Skipped as exc:
            return Result(self, Status.SKIP, str(exc))
        except Unreachable as exc:
            hint = UNREACHABLE[exc.component or self.component]
            return Result(self, Status.FAIL, str(exc), fill(hint, context.options))
        except Failed as exc:
            outcome = Outcome(False, str(exc))
        if outcome.passed:
            return Result(self, Status.WARN if outcome.warning else Status.PASS, outcome.detail)
        hint = fill(self.hint, context.options, outcome.fields)
        return Result(self, Status.FAIL, outcome.detail, hint)


@dataclass(frozen=True)
class Result:
    check: Check
    status: Status
    detail: str
    hint: str = ""  # the fix, on failures only
    # SKIP because this component is down (its gate failed): the one cause, named once.
    cause: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "component": self.check.component,
            "check": self.check.name,
            "status": self.status.value,
            "detail": self.detail,
            "hint": self.hint,
            "cause": self.cause,
        }
