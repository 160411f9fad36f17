"""The committed files a generator writes from their source (alerts.yml from alert_rules.py,
slo-rules.yml from the Sloth spec, docs/metrics.md from the catalog): its `main` writes them,
or with `--check` only says whether they are up to date, for CI and the drift tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def write_or_check(
    outputs: Mapping[Path, str], argv: Sequence[str], *, source: str, regenerate: str
) -> int:
    """Write each file its text; with `--check` in `argv`, write nothing and return 1 when one
    differs, naming it and `regenerate`, the command that rewrites it."""
    if "--check" not in argv:
        for target, text in outputs.items():
            target.write_text(text)
            print(f"wrote {target}")
        return 0
    stale = [t for t, text in outputs.items() if not t.exists() or t.read_text() != text]
    for target in stale:
        print(f"{target} is out of date: run {regenerate}")
    if stale:
        return 1
    verb = "matches" if len(outputs) == 1 else "match"
    print(f"{', '.join(t.name for t in outputs)} {verb} {source}")
    return 0
