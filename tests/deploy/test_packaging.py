"""What the wheel and the Docker image carry beyond Python packages: `testboost doctor` finds
the dashboards it checks without a source checkout, the API its migrations; devstack, a
checkout's tool, is left out."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.deploy.conftest import REPO

DASHBOARDS = sorted(p.name for p in (REPO / "monitoring/grafana/dashboards").glob("*.json"))


def test_the_wheel_carries_the_dashboards_and_migrations_not_devstack(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n.split("/")[-1] for n in names if n.startswith("doctor/dashboards/")) == (
        DASHBOARDS
    )
    assert not [n for n in names if n.startswith("devstack/")]
    assert "cli/__init__.py" in names
    migrations = sorted(p.name for p in (REPO / "app/migrations/versions").glob("*.py"))
    assert migrations
    assert (
        sorted(n.split("/")[-1] for n in names if n.startswith("app/migrations/versions/"))
        == migrations
    )
    assert {"app/migrations/env.py", "app/migrations/script.py.mako"} <= set(names)


def test_the_image_keeps_the_dashboards_and_leaves_devstack_out() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "devstack" in rules
    # Docker applies the last matching rule: the exception comes after `monitoring`.
    assert rules.index("!monitoring/grafana/dashboards") > rules.index("monitoring")


def test_an_installed_doctor_reads_its_own_copy(tmp_path: Path, monkeypatch) -> None:
    from doctor import shipped

    copy = tmp_path / "dashboards"
    copy.mkdir()
    for name in DASHBOARDS:
        (copy / name).write_text((REPO / "monitoring/grafana/dashboards" / name).read_text())
    monkeypatch.setattr(shipped, "INSTALLED_DASHBOARDS", copy)
    assert shipped.dashboards_dir(None) == copy
    assert len(shipped.load_dashboards()) == len(DASHBOARDS)
    other = tmp_path / "elsewhere"
    assert shipped.dashboards_dir(other) == other / "grafana" / "dashboards"
