"""telemetry/_compat.py: each dependency internal we rely on is still where, and what, it was
when we read it. A failure names the internal: re-read it in the new version, then move the
pin in pyproject.toml."""

from __future__ import annotations

from importlib import metadata

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

from telemetry import _compat

# The versions _compat.py was read against; pyproject.toml pins each to a compatible range.
READ_AGAINST = {
    "opentelemetry-exporter-prometheus": "0.66b2",
    "prometheus-client": "0.26",
    "sqlalchemy": "2.0",
}


@pytest.mark.parametrize("package,version", READ_AGAINST.items())
def test_installed_versions_are_the_ones_read(package: str, version: str) -> None:
    installed = metadata.version(package)
    assert installed.startswith(version), f"{package} {installed}: re-read _compat.py's use"


@pytest.mark.parametrize(
    "name,exposed",
    # Invalid characters become "_", runs of "_" collapse, a leading digit is replaced.
    [("testboost.llm-calls", "testboost_llm_calls"), ("9lives", "_lives"), ("a__b", "a_b")],
)
def test_exporter_name_rules(name: str, exposed: str) -> None:
    assert _compat.sanitize_full_name(name) == exposed


@pytest.mark.parametrize(
    "unit,suffix", [("s", "seconds"), ("By", "bytes"), ("ms", "milliseconds"), ("", "")]
)
def test_exporter_unit_rules(unit: str, suffix: str) -> None:
    assert _compat.map_unit(unit) == suffix


def test_attribute_names_are_sanitised() -> None:
    assert _compat.sanitize_attribute("http.route") == "http_route"


@pytest.mark.parametrize(
    "value,text", [(1.0, "1.0"), (1_500_000, "1.5e+06"), (float("inf"), "+Inf"), (0.25, "0.25")]
)
def test_go_float_formatting(value: float, text: str) -> None:
    assert _compat.floatToGoString(value) == text


def test_queue_pool_overflow_cap() -> None:
    engine = create_engine("sqlite://", poolclass=QueuePool, pool_size=3, max_overflow=7)
    assert isinstance(engine.pool, QueuePool)
    assert _compat.pool_max_overflow(engine.pool) == 7
    engine.dispose()
