"""bench's instruction verdicts: each goal is reported in every run, as met, not met, or not
measurable when the floor it is measured against is lost in the layouts' noise."""

from __future__ import annotations

from typing import Any

from bench.instructions import section


def report(floor_added: int, pull_added: int) -> str:
    def row(added: int) -> dict[str, Any]:
        return {"ir": 3_000_000 + added, "ratio": 1.0, "added": added, "added_range": [added] * 2}

    rows = {
        "off": {"ir": 3_000_000, "ratio": 1.0},
        "floor": row(floor_added),
        "pull": row(pull_added),
        "pull-traces": row(200_000),
    }
    return section({"rows": rows, "layouts": 2, "requests": 10, "seconds": 1.0})


def test_pull_against_the_floor() -> None:
    assert "`pull` adds 1.5 times what the floor adds: goal ≤ 2 times, met." in report(
        20_000, 30_000
    )
    assert "`pull` adds 3.0 times what the floor adds: goal ≤ 2 times, NOT met." in report(
        10_000, 30_000
    )


def test_a_floor_lost_in_noise_is_said_not_dropped() -> None:
    text = report(-125_000, -158_000)
    assert (
        "- the floor adds -125 k, below the layouts' noise: goal ≤ 2 times, "
        "not measurable in this run." in text
    )
    assert "`pull` adds -158 k: goal ≤ 50 k, met." in text
