"""Alertmanager's routing tree, walked as Alertmanager walks it: table tests, then the shipped
configuration and the one a real Alertmanager 0.28 reported (fixtures/alertmanager-status.json,
recorded from the local stack)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from doctor.routing import integrations, parse_matcher, receivers_for, route_matches

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO / "monitoring" / "alertmanager" / "alertmanager.yml").read_text())
RECORDED = yaml.safe_load(
    json.loads((Path(__file__).parent / "fixtures" / "alertmanager-status.json").read_text())[
        "config"
    ]["original"]
)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ('severity="critical"', ("severity", "=", "critical")),
        ("severity=critical", ("severity", "=", "critical")),
        (' team =~ "db|api" ', ("team", "=~", "db|api")),
        ('env!="prod"', ("env", "!=", "prod")),
        ('path!~"/metrics/?"', ("path", "!~", "/metrics/?")),
        (r'msg="say \"hi\""', ("msg", "=", 'say "hi"')),
    ],
)
def test_parse_matcher(text: str, parsed: tuple[str, str, str]) -> None:
    assert parse_matcher(text) == parsed


def test_parse_matcher_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        parse_matcher("no operator here")


@pytest.mark.parametrize(
    ("route", "labels", "matches"),
    [
        ({"matchers": ['severity="critical"']}, {"severity": "critical"}, True),
        ({"matchers": ['severity="critical"']}, {"severity": "warning"}, False),
        ({"matchers": ['severity=~"crit.*"']}, {"severity": "critical"}, True),
        ({"matchers": ['severity=~"crit"']}, {"severity": "critical"}, False),  # anchored
        ({"matchers": ['team!="db"']}, {}, True),  # absent label is the empty string
        ({"match": {"severity": "warning"}}, {"severity": "warning"}, True),
        ({"match_re": {"severity": "warn|crit"}}, {"severity": "info"}, False),
        ({}, {"anything": "x"}, True),
    ],
)
def test_route_matches(route: dict, labels: dict[str, str], matches: bool) -> None:
    assert route_matches(route, labels) is matches


def test_first_match_wins_unless_continue() -> None:
    tree = {
        "receiver": "root",
        "routes": [
            {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
            {"matchers": ['severity="critical"'], "receiver": "chat"},
            {"matchers": ['severity="critical"'], "receiver": "never"},
        ],
    }
    assert receivers_for(tree, {"severity": "critical"}) == ["pager", "chat"]
    assert receivers_for(tree, {"severity": "info"}) == ["root"]


def test_nested_route_inherits_its_parents_receiver() -> None:
    tree = {
        "receiver": "root",
        "routes": [{"matchers": ['team="db"'], "receiver": "db", "routes": [{"matchers": []}]}],
    }
    assert receivers_for(tree, {"team": "db"}) == ["db"]


@pytest.mark.parametrize("config", [SHIPPED, RECORDED], ids=["shipped", "recorded"])
def test_shipped_routing_sends_each_severity_to_its_receiver(config: dict) -> None:
    receivers = {r["name"]: r for r in config["receivers"]}
    for severity in ("critical", "warning"):
        (name,) = receivers_for(config["route"], {"severity": severity})
        assert name == f"{severity}-receiver"
        assert integrations(receivers[name]) == ["webhook"]


def test_a_receiver_without_notifier_has_no_integrations() -> None:
    assert integrations({"name": "blackhole"}) == []
    assert integrations({"name": "x", "email_configs": [], "slack_configs": [{}]}) == ["slack"]
