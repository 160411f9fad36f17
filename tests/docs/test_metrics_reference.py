"""docs/metrics.md is generated from telemetry/catalog.py and cannot drift from it."""

from __future__ import annotations

import runpy

from telemetry.catalog import CATALOG
from tests.docs.doc_blocks import REPO

GENERATOR = REPO / "docs" / "gen_metrics.py"
REFERENCE = REPO / "docs" / "metrics.md"


def test_committed_reference_is_what_the_catalog_generates() -> None:
    render = runpy.run_path(str(GENERATOR))["render"]
    assert REFERENCE.read_text() == render(), (
        "docs/metrics.md is out of date: run .venv/bin/python docs/gen_metrics.py"
    )


def test_every_family_and_label_is_documented() -> None:
    text = REFERENCE.read_text()
    for family in CATALOG:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{family.name}` "))
        for label in family.labels:
            assert f"`{label}`" in row, (family.name, label)
