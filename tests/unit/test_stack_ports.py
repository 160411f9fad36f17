"""devstack/ports.py: each component's ports at fixed offsets from its flag's, and the one-line
errors that name the port in the way and the flag that moves it."""

from __future__ import annotations

import socket

import pytest

from devstack import StackError
from devstack.ports import check, choose, component_ports
from devstack.processes import free_port
from devstack.stack import new_api_key


@pytest.mark.parametrize(
    ("component", "port", "expected"),
    [
        ("api", 8000, {"api": 8000}),
        (
            "otel-collector",
            4318,
            {
                "otel-collector": 4318,
                "otel-collector-grpc": 4317,
                "otel-collector-metrics": 4319,
                "otel-collector-telemetry": 4320,
                "otel-collector-health": 4321,
            },
        ),
        (
            "jaeger",
            16686,
            {
                "jaeger": 16686,
                "jaeger-query-grpc": 16685,
                "jaeger-otlp": 16687,
                "jaeger-otlp-http": 16688,
                "jaeger-health": 16689,
            },
        ),
        ("alertmanager", 9093, {"alertmanager": 9093}),  # one instance: no gossip port
    ],
)
def test_ports_follow_the_components_port(
    component: str, port: int, expected: dict[str, int]
) -> None:
    assert component_ports(component, port) == expected


def test_a_cluster_takes_alertmanagers_ports_in_pairs() -> None:
    assert component_ports("alertmanager", 9093, ("alertmanager", "alertmanager-2")) == {
        "alertmanager": 9093,
        "alertmanager-cluster": 9094,
        "alertmanager-2": 9095,
        "alertmanager-2-cluster": 9096,
    }


def test_a_taken_port_names_its_flag() -> None:
    collector = free_port()
    ports = component_ports("otel-collector", collector)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", collector + 3))
        listener.listen()
        with pytest.raises(StackError) as error:
            check(ports)
    assert str(error.value) == (
        f"port {collector + 3} (otel-collector-health = --otel-collector-port +3) is already in "
        f"use on 127.0.0.1: stop what listens there (`ss -ltnp 'sport = :{collector + 3}'`) or "
        "move it with --otel-collector-port"
    )


def test_ports_that_overlap_name_both_flags() -> None:
    prometheus = free_port()
    ports = {"prometheus": prometheus, **component_ports("otel-collector", prometheus + 1)}
    with pytest.raises(StackError, match=r"^port \d+ is both prometheus and otel-collector-grpc"):
        check(ports)
    with pytest.raises(StackError) as error:
        check(component_ports("otel-collector", 65535))
    assert str(error.value) == (
        "port 65536 (otel-collector-metrics = --otel-collector-port +1) is out of range: "
        "move it with --otel-collector-port"
    )


def test_ports_chosen_for_port_0_are_free_and_never_handed_out_twice() -> None:
    first = choose("jaeger", taken=())
    second = choose("jaeger", taken=first.values())
    check({**first, **{f"{name}-2": port for name, port in second.items()}})
    assert not set(first.values()) & set(second.values())


def test_generated_keys_never_look_like_an_option() -> None:
    """token_urlsafe keys began with '-' once in 64, and `doctor --api-key KEY` failed on them."""
    keys = {new_api_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(len(key) == 48 and not key.startswith("-") for key in keys)
