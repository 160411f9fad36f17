"""docs/configuration.md names every variable the code reads."""

from __future__ import annotations

import re

from app.core.config import Settings
from telemetry.config import TelemetryEnvironment
from tests.docs.doc_blocks import REPO

REFERENCE = (REPO / "docs" / "configuration.md").read_text()
SOURCES = ["app", "telemetry", "doctor", "devstack", "compose", "scripts"]
VARIABLE = re.compile(r"\b(?:TESTBOOST|OTEL|GF)_[A-Z0-9_]*[A-Z0-9]\b")


def documented(name: str) -> bool:
    return f"`{name}`" in REFERENCE


def test_every_settings_field_is_documented() -> None:
    missing = [
        f"TESTBOOST_{field.upper()}"
        for field in Settings.model_fields
        if not documented(f"TESTBOOST_{field.upper()}")
    ]
    assert missing == []


def test_every_otel_variable_telemetry_honours_is_documented() -> None:
    names = list(TelemetryEnvironment.model_fields)
    assert len(names) >= 8
    assert [n for n in names if not documented(n)] == []


def test_every_variable_named_in_code_and_configs_is_documented() -> None:
    files = [p for d in SOURCES for p in (REPO / d).rglob("*") if p.is_file()]
    files += [REPO / "Makefile", REPO / "Dockerfile"]
    names = {
        name
        for path in files
        if path.suffix in {".py", ".yaml", ".yml", ".sh", ""} and "__pycache__" not in path.parts
        for name in VARIABLE.findall(path.read_text(errors="ignore"))
    }
    assert "TESTBOOST_DATABASE_URL" in names
    assert sorted(n for n in names if not documented(n)) == []


def test_documented_defaults_match_the_settings() -> None:
    for field, info in Settings.model_fields.items():
        if info.default is None or not isinstance(info.default, (int, float, str)):
            continue
        row = next(
            line for line in REFERENCE.splitlines() if f"`TESTBOOST_{field.upper()}`" in line
        )
        assert f"`{info.default}`" in row, (field, info.default)
