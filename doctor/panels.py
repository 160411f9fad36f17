"""Does a dashboard query show something, and if not, why. The rule (docs/troubleshooting.md):

- at least one number (±Inf included: a quantile above the highest bucket) → data;
- nothing, or only NaN, from a query over a histogram's buckets (`H_bucket[W]`): the answer
  is in `H_count`, which counts every observation, and in the counter recorded with each one,
  - `H_count` grew in W → broken: there were observations, so the quantile must be a number;
    the buckets are missing or do not count what `_count` counts;
  - the counter grew in W, `H_count` did not → broken: observations lost (a series that
    appeared already holding them adds nothing to increase()) or not recorded;
  - neither grew in W → idle, not broken: no observations in the last W (histogram_quantile of
    zero rates is NaN);
  - no `H_count` series, but the API's primed counter is stored → idle: never observed (a
    histogram appears with its first observation);
  - neither → broken: not scraped (nor pushed);
- nothing, or only NaN, from any other query → broken.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from doctor.context import Context

# Counters are primed at 0 at start-up, in pull and push alike: this one always exists.
PRIMED = "testboost_llm_calls_total"
# The counter incremented with each observation of a histogram (telemetry/instruments.py).
COUNTED_BY = {
    "testboost_workflow_duration_seconds": "testboost_workflow_total",
    "testboost_llm_request_duration_seconds": "testboost_llm_calls_total",
    "testboost_http_request_duration_seconds": "testboost_http_requests_total",
}
# `H_bucket` (label matchers allowed) under a range `[W]`: what histogram_quantile reads.
BUCKETS_READ = re.compile(r"\b([A-Za-z_:][A-Za-z0-9_:]*)_bucket\s*(?:\{[^}]*\})?\s*\[([^\]:]+)\]")


class State(Enum):
    DATA = "data"
    IDLE = "idle"  # nothing happened in the window: shown as a warning
    BROKEN = "broken"


@dataclass(frozen=True)
class Verdict:
    state: State
    reason: str = ""


def histograms_read(expr: str) -> list[tuple[str, str]]:
    """(histogram, window) pairs an expression reads buckets of, in order, without repeats."""
    return list(dict.fromkeys((m[1], m[2].strip()) for m in BUCKETS_READ.finditer(expr)))


def values(data: dict[str, Any]) -> list[float]:
    """The sample values of an instant query's `data` (a vector, or a scalar)."""
    if data.get("resultType") == "scalar":
        return [float(data["result"][1])]
    return [float(sample["value"][1]) for sample in data.get("result") or []]


def verdict(context: Context, expr: str, data: dict[str, Any]) -> Verdict:
    numbers = values(data)
    if any(not math.isnan(v) for v in numbers):
        return Verdict(State.DATA)
    answer = "only NaN" if numbers else "nothing"
    read = histograms_read(expr)
    if not read:
        return Verdict(State.BROKEN, f"answers {answer}")
    found = [_histogram(context, name, window, answer) for name, window in read]
    broken = [v for v in found if v.state is State.BROKEN]
    return broken[0] if broken else found[0]


def _histogram(context: Context, name: str, window: str, answer: str) -> Verdict:
    observed = _value(context, f"sum(increase({name}_count[{window}]))")
    if observed is not None and observed > 0:
        if _value(context, f"count({name}_bucket)") is None:
            why = f"no {name}_bucket series"
        else:
            why = f'{name}_bucket does not count them (no le="+Inf" bucket?)'
        return Verdict(
            State.BROKEN,
            f"answers {answer}, yet {_amount(observed)} observations of {name} in the last "
            f"{window}: {why}",
        )
    counter = COUNTED_BY.get(name)
    counted = _value(context, f"sum(increase({counter}[{window}]))") if counter else None
    if counted is not None and counted > 0:
        return Verdict(
            State.BROKEN,
            f"answers {answer}, yet {counter} counted {_amount(counted)} in the last {window} "
            f"and {name} none: observations lost (a series that appeared already holding them) "
            "or not recorded",
        )
    if observed is not None or _value(context, f"count({name}_count)") is not None:
        return Verdict(State.IDLE, f"no observations of {name} in the last {window}")
    if _value(context, f"count({PRIMED})") is not None:
        return Verdict(State.IDLE, f"{name} never observed (it appears with its first observation)")
    return Verdict(State.BROKEN, f"answers {answer}: not scraped, no {name} series nor {PRIMED}")


def _amount(value: float) -> str:
    """increase() extrapolates to the window's edges: whole numbers read better."""
    return f"{value:.0f}" if value >= 1 else f"{value:.2g}"


def _value(context: Context, expr: str) -> float | None:
    """The single value of an aggregating query; None when it answers nothing."""
    found = values(context.prometheus("/api/v1/query", {"query": expr}))
    return found[0] if found else None
