"""Local copies of the committed monitoring configs: the same files, with only the addresses
(compose service names → 127.0.0.1 ports) and secret file paths rewritten, plus, in fast mode
(tests), 1 s intervals and `for` durations.

Text substitution rather than a YAML round trip: the copy stays line-for-line the committed
file (comments included), and every substitution must match, so a config that changes shape
fails here loudly instead of being half-rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from doctor.local_stack import API_KEY_SECRET

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
COLLECTOR_SCRAPE = MONITORING / "prometheus" / "scrape.d" / "otel-collector.yml"
COLLECTOR_TELEMETRY_SCRAPE = MONITORING / "prometheus" / "scrape.d" / "otel-collector-telemetry.yml"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
PIPELINE_ALERTS = MONITORING / "prometheus" / "pipeline-alerts.yml"
SLO_RULES = MONITORING / "prometheus" / "slo-rules.yml"
ALERTMANAGER_CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"

# Every address the committed configs use, and the component that answers it locally.
ADDRESSES: dict[str, str] = {
    "testboost-api:8000": "api",  # the API's compose service (scrape, webhook)
    "alertmanager:9093": "alertmanager",  # compose service
    "localhost:9090": "prometheus",  # Prometheus scraping itself
    "otel-collector:8889": "otel-collector-metrics",  # the collector's prometheus exporter
    "otel-collector:8888": "otel-collector-telemetry",  # the collector's own metrics
}
FAST = "1s"
# Fast mode's range (and offset) for the pipeline alerts' rates (5m as shipped): at 1 s scrapes
# it holds enough samples, and an alert resolves seconds after its cause is fixed.
FAST_WINDOW = "15s"

# The top-level `rule_files:` list, its comments included.
_RULE_FILES = re.compile(r"^rule_files:\n(?:[ \t]+.*\n)*", re.MULTILINE)
_HOST = re.compile(r"(?:https?://)?([A-Za-z0-9_.-]+:\d+)")
# Where compose mounts secrets; the stack keeps them in <workdir>/secrets/ instead.
_SECRET = re.compile(r"(/etc/(?:alertmanager|prometheus)/secrets/)([A-Za-z0-9_.-]+)")


class StackError(RuntimeError):
    """The stack cannot start or stop as asked; the message says what to do."""


def _live(line: str) -> bool:
    return not line.lstrip().startswith("#")


def _on_live_lines(text: str, change: Callable[[str], str]) -> str:
    """Apply `change` to every line that is not a comment (commented examples stay as they are)."""
    return "".join(change(line) if _live(line) else line for line in text.splitlines(keepends=True))


def rewrite_addresses(text: str, ports: Mapping[str, int], source: str) -> str:
    """`service:port` → `127.0.0.1:<port of the component>`; an unknown address is an error."""

    def change(line: str) -> str:
        def local(match: re.Match[str]) -> str:
            address = match.group(1)
            component = ADDRESSES.get(address)
            if component is None:
                if address.startswith("127.0.0.1:"):
                    return match.group(0)
                raise StackError(
                    f"{source}: no local equivalent for {address!r}; "
                    "add it to devstack.configs.ADDRESSES"
                )
            return match.group(0).replace(address, f"127.0.0.1:{ports[component]}")

        # Only values: keys such as `scrape_interval: 15s` never match host:port.
        return _HOST.sub(local, line)

    rewritten = _on_live_lines(text, change)
    if rewritten == text:
        raise StackError(f"{source}: no address to rewrite; has the file changed shape?")
    return rewritten


def rewrite_secrets(text: str, secrets_dir: Path, available: set[str], source: str) -> str:
    """Secret file paths → `<secrets_dir>/<name>`; a secret the stack does not provide is an
    error (Alertmanager would refuse to start on a missing file, with a less clear message)."""

    def change(line: str) -> str:
        def local(match: re.Match[str]) -> str:
            name = match.group(2)
            if name not in available:
                raise StackError(f"{source}: secret {name!r} is not provided by the stack")
            return str(secrets_dir / name)

        return _SECRET.sub(local, line)

    return _on_live_lines(text, change)


def _set_durations(text: str, keys: tuple[str, ...], value: str, source: str) -> str:
    pattern = re.compile(rf"^(\s*(?:{'|'.join(keys)}):\s*)\S+", re.MULTILINE)
    rewritten, count = pattern.subn(rf"\g<1>{value}", text)
    if count == 0:
        raise StackError(f"{source}: none of {', '.join(keys)} found; has the file changed shape?")
    return rewritten


def header(source: Path, fast: bool) -> str:
    changed = "addresses and secret paths" + (
        f", intervals and `for` set to {FAST} (fast mode, tests only)" if fast else ""
    )
    return (
        f"# Generated by devstack from {source.relative_to(REPO)}: only {changed} differ.\n"
        "# Edit the committed file, not this copy.\n"
    )


def alertmanager_instances(count: int) -> tuple[str, ...]:
    """The stack's Alertmanager components: `alertmanager`, then `alertmanager-2`, ... (a
    cluster when there are several)."""
    return ("alertmanager", *(f"alertmanager-{index}" for index in range(2, count + 1)))


def list_all_instances(
    text: str, ports: Mapping[str, int], instances: Sequence[str], source: str
) -> str:
    """The target `"127.0.0.1:<first>"` (rewritten from the committed single address) →
    `"127.0.0.1:<first>", "127.0.0.1:<second>", ...`: one static target per instance, in every
    list that named the first (alerting, and the scrape job). It must be there, quoted, as a
    flow-list item."""
    first, *more = (f'"127.0.0.1:{ports[name]}"' for name in instances)
    if not more:
        return text
    if first not in text:
        raise StackError(
            f"{source}: the {instances[0]} target is not a quoted list item; "
            "has the file changed shape?"
        )
    return text.replace(first, ", ".join((first, *more)))


def prometheus_config(
    ports: Mapping[str, int],
    fast: bool,
    alertmanagers: Sequence[str] = ("alertmanager",),
    rules: bool = True,
) -> str:
    """`alertmanagers`: the stack's Alertmanager instances, each a target of the alerting
    config (Prometheus sends every alert to each of them, as to an HA pair). `rules=False`: no
    rule files, for the stack's start (Stack.up)."""
    text = rewrite_addresses(PROMETHEUS_CONFIG.read_text(), ports, PROMETHEUS_CONFIG.name)
    text = list_all_instances(text, ports, alertmanagers, PROMETHEUS_CONFIG.name)
    if not rules:
        text, count = _RULE_FILES.subn(
            "rule_files: []  # until the API is scraped (Stack.up)\n", text
        )
        if count != 1:
            raise StackError(f"{PROMETHEUS_CONFIG.name}: no rule_files list; has it changed shape?")
    if fast:
        text = _set_durations(
            text, ("scrape_interval", "evaluation_interval"), FAST, PROMETHEUS_CONFIG.name
        )
    return header(PROMETHEUS_CONFIG, fast) + text


def alert_rules(fast: bool) -> str:
    text = ALERTS.read_text()
    if fast:
        text = _set_durations(text, ("for",), FAST, ALERTS.name)
    return header(ALERTS, fast) + text


def _window(match: re.Match[str]) -> str:
    """A range `[5m]` or an offset's `5m` → the fast window."""
    return f"[{FAST_WINDOW}]" if match.group(0).startswith("[") else FAST_WINDOW


def pipeline_alert_rules(fast: bool) -> str:
    text = PIPELINE_ALERTS.read_text()
    if fast:
        text = _set_durations(text, ("for",), FAST, PIPELINE_ALERTS.name)
        text, count = re.subn(r"\[\d+[smh]\]|(?<=offset )\d+[smh]", _window, text)
        if count == 0:
            raise StackError(f"{PIPELINE_ALERTS.name}: no range to shorten; has it changed shape?")
    return header(PIPELINE_ALERTS, fast) + text


def slo_rules() -> str:
    """The SLO rules (Sloth's, docs/slo.md) as committed, fast mode included: they have no
    `for` to shorten, and their windows (5m to 30 days) are what the SLOs mean."""
    return header(SLO_RULES, False) + SLO_RULES.read_text()


def alertmanager_config(ports: Mapping[str, int], secrets_dir: Path, fast: bool) -> str:
    source = ALERTMANAGER_CONFIG.name
    text = rewrite_addresses(ALERTMANAGER_CONFIG.read_text(), ports, source)
    text = rewrite_secrets(text, secrets_dir, {API_KEY_SECRET}, source)
    if fast:
        # Resolved alerts wait for the next group_interval flush (5m as shipped).
        text = _set_durations(text, ("group_wait", "group_interval"), FAST, source)
    return header(ALERTMANAGER_CONFIG, fast) + text


def collector_scrape_config(ports: Mapping[str, int], source: Path = COLLECTOR_SCRAPE) -> str:
    text = rewrite_addresses(source.read_text(), ports, source.name)
    return header(source, False) + text


def write_configs(
    workdir: Path,
    ports: Mapping[str, int],
    api_key: str,
    fast: bool,
    scrape_collector: bool,
    alertmanagers: Sequence[str] = ("alertmanager",),
    collector: bool | None = None,
    rules: bool = True,
) -> None:
    """prometheus.yml, alerts.yml, pipeline-alerts.yml and slo-rules.yml (beside it: rule_files
    is relative), scrape.d/ with the collector's pushed-series job when Prometheus scrapes
    them (`scrape_collector`) and its own metrics' job whenever one runs (`collector`, by
    default the same), alertmanager.yml (every Alertmanager instance reads the same one) and
    the API key file into `workdir`. `rules=False`: prometheus.yml without its rule files."""
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = secrets_dir / API_KEY_SECRET
    key_file.touch(mode=0o600)
    key_file.write_text(api_key)
    (workdir / "prometheus.yml").write_text(prometheus_config(ports, fast, alertmanagers, rules))
    (workdir / "alerts.yml").write_text(alert_rules(fast))
    (workdir / "pipeline-alerts.yml").write_text(pipeline_alert_rules(fast))
    (workdir / "slo-rules.yml").write_text(slo_rules())
    scrape_dir = workdir / "scrape.d"
    scrape_dir.mkdir(exist_ok=True)
    wanted = {
        COLLECTOR_SCRAPE: scrape_collector,
        COLLECTOR_TELEMETRY_SCRAPE: scrape_collector if collector is None else collector,
    }
    for source, write in wanted.items():
        job = scrape_dir / source.name
        if write:
            job.write_text(collector_scrape_config(ports, source))
        else:
            job.unlink(missing_ok=True)
    (workdir / "alertmanager.yml").write_text(alertmanager_config(ports, secrets_dir, fast))
