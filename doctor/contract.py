"""The metrics contract (telemetry/catalog.py) applied to what an API or a Prometheus shows.

Histograms appear with their first observation (a finished workflow, an LLM call), so a
histogram not seen yet is reported, not failed; counters and gauges are primed at start-up,
so a missing one is a defect.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from telemetry.catalog import CATALOG, Kind, MetricFamily


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    not_observed: list[str] = field(default_factory=list)

    def summary(self, seen: int) -> str:
        text = f"{seen}/{len(CATALOG)} families"
        if self.not_observed:
            text += f"; not observed yet: {', '.join(self.not_observed)}"
        return "; ".join([*self.problems, text]) if self.problems else text


def _expected_labels(family: MetricFamily, series: str) -> set[str]:
    extra = {"le"} if series.endswith("_bucket") else set()
    return set(family.labels) | extra


def check_present(family: MetricFamily, series_seen: set[str], findings: Findings) -> bool:
    """Record what is missing of `family`; True when it has samples to look at."""
    present = [name for name in family.series_names if name in series_seen]
    if not present:
        if family.kind is Kind.HISTOGRAM:
            findings.not_observed.append(family.name)
        else:
            findings.problems.append(f"{family.name} missing")
        return False
    missing = [name for name in family.series_names if name not in series_seen]
    if missing:
        findings.problems.append(f"{family.name} without {', '.join(missing)}")
    return True


def exposition_findings(text: str) -> tuple[Findings, int]:
    """Check a /metrics body: every family, its series, exactly its contract labels, and no
    family declared twice (Prometheus rejects the whole scrape then)."""
    findings = Findings()
    types = Counter(
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE ") and len(line.split()) > 2
    )
    findings.problems += [f"{name} declared {n} times" for name, n in types.items() if n > 1]
    labels: dict[str, set[frozenset[str]]] = {}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            labels.setdefault(sample.name, set()).add(frozenset(sample.labels))
    seen = 0
    for family in CATALOG:
        if not check_present(family, set(labels), findings):
            continue
        seen += 1
        for series in family.series_names:
            wrong = {s for s in labels.get(series, set()) if s != _expected_labels(family, series)}
            if wrong:
                got = sorted(next(iter(wrong)))
                findings.problems.append(
                    f"{series} labelled {got}, contract {sorted(_expected_labels(family, series))}"
                )
                break
    return findings, seen


def stored_label_findings(family: MetricFamily, series: str, names: set[str]) -> str | None:
    """A stored series must carry its contract labels; Prometheus adds job/instance and the
    push path resource labels, so extra labels are fine here."""
    missing = _expected_labels(family, series) - names
    return f"{series} lacks labels {sorted(missing)}" if missing else None
