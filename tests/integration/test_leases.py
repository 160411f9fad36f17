"""Session leases on each backend: the conditional UPDATEs, the database's clock, and the
runner's checks (a lost lease costs no LLM call; pause, resume and cancel hand it over)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker
from starlette.testclient import TestClient

from app.core.db import make_engine, make_sessionmaker, migrate
from app.models import Session, Step
from app.workflows import leases
from app.workflows.definitions import SessionType
from app.workflows.engine import new_steps
from tests.conftest import AppFactory, settings_for
from tests.support.fake_llm import FakeLLM, Reply
from tests.support.waiting import session_in, until


@pytest.fixture
def db(database_url: str) -> Iterator[sessionmaker[DbSession]]:
    settings = settings_for(database_url)
    engine: Engine = make_engine(settings)
    migrate(engine, settings)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def add_session(db: sessionmaker[DbSession], status: str = "pending") -> str:
    with db.begin() as s:
        row = Session(
            session_type="test_generation",
            project_path="/p",
            mode="autonomous",
            status=status,
            steps=new_steps(SessionType.TEST_GENERATION),
        )
        s.add(row)
        s.flush()
        return row.id


def lease_of(db: sessionmaker[DbSession], session_id: str) -> tuple[str | None, datetime | None]:
    with db() as s:
        row = s.execute(
            select(Session.claimed_by, Session.lease_expires_at).where(Session.id == session_id)
        ).one()
        return row.claimed_by, row.lease_expires_at


def test_a_live_lease_is_exclusive_and_an_expired_one_is_taken(
    db: sessionmaker[DbSession],
) -> None:
    sid = add_session(db)
    with db.begin() as s:
        assert leases.claim(s, sid, "a", ttl=30)
    owner, expires = lease_of(db, sid)
    assert owner == "a" and expires is not None
    # The database's clock, in UTC, read back as an aware UTC datetime.
    assert timedelta(seconds=25) < expires - datetime.now(UTC) < timedelta(seconds=35)
    with db.begin() as s:
        assert not leases.claim(s, sid, "b", ttl=30)  # a live lease is a's alone
        assert leases.claim(s, sid, "a", ttl=30)  # its owner extends it
        assert leases.orphans(s, limit=10) == []
        assert leases.claim(s, sid, "a", ttl=-1)  # as if a had stopped renewing a second ago
    with db.begin() as s:
        assert leases.orphans(s, limit=10) == [(sid, "a")]
        assert leases.claim(s, sid, "b", ttl=30)  # expired: b takes it
        assert not leases.claim(s, sid, "a", ttl=30)
    assert lease_of(db, sid)[0] == "b"


def test_renew_only_touches_leases_still_held_and_release_hands_them_back(
    db: sessionmaker[DbSession],
) -> None:
    mine, lost, paused = add_session(db), add_session(db), add_session(db, "paused")
    with db.begin() as s:
        assert leases.claim(s, mine, "a", ttl=-1) and leases.claim(s, lost, "b", ttl=30)
        assert not leases.claim(s, paused, "a", ttl=30)  # paused: nobody runs it
        assert leases.renew(s, [mine, lost], "a", ttl=30) == 1
        assert leases.orphans(s, limit=10) == []
    assert lease_of(db, mine)[0] == "a" and lease_of(db, lost)[0] == "b"
    with db.begin() as s:
        updated_before = s.scalar(select(Session.updated_at).where(Session.id == mine))
        assert leases.release(s, "a") == 1
    assert lease_of(db, mine) == (None, None)
    with db() as s:  # lease bookkeeping is not a change of the session
        assert s.scalar(select(Session.updated_at).where(Session.id == mine)) == updated_before
        assert leases.orphans(s, limit=10) == [(mine, None)]


def test_claims_racing_from_many_threads_have_one_winner(db: sessionmaker[DbSession]) -> None:
    sid = add_session(db)
    start = threading.Barrier(8)
    winners: list[str] = []

    def contend(owner: str) -> None:
        start.wait()
        with db.begin() as s:
            if leases.claim(s, sid, owner, ttl=30):
                winners.append(owner)

    threads = [threading.Thread(target=contend, args=(f"e{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(winners) == 1 and lease_of(db, sid)[0] == winners[0]


def steal(client: TestClient, session_id: str) -> None:
    """Another engine's live lease, as after our own ran out during a long outage."""
    with client.app.state.sessions.begin() as s:  # type: ignore[attr-defined]
        s.execute(
            update(Session)
            .where(Session.id == session_id)
            .values(
                claimed_by="another-engine",
                lease_expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )


def test_a_runner_that_lost_its_lease_makes_no_further_llm_call(
    make_client: AppFactory, fake: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake.default = Reply(delay=0.3)
    client = make_client(llm_base_url=fake.base_url)
    sid = client.post(
        "/api/v2/sessions", json={"session_type": "impact_analysis", "project_path": "/p"}
    ).json()["id"]
    until(lambda: fake.count == 1, message="the first step's call")
    steal(client, sid)
    assert client.app.state.workflows.wait_idle(10)  # type: ignore[attr-defined]
    assert fake.count == 1
    steps = client.get(f"/api/v2/sessions/{sid}/steps").json()
    # Its answer is left to the new owner, who runs that step again.
    assert [s["status"] for s in steps] == ["running", "pending", "pending", "pending"]
    assert "taken over by engine another-engine" in caplog.text
    assert client.get(f"/api/v2/sessions/{sid}").json()["status"] == "in_progress"


def test_pause_gives_the_lease_back_once_the_step_ends_and_resume_claims_it(
    make_client: AppFactory, fake: FakeLLM
) -> None:
    fake.default = Reply(delay=0.3)
    client = make_client(llm_base_url=fake.base_url)
    engine = client.app.state.workflows  # type: ignore[attr-defined]
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    sid = client.post(
        "/api/v2/sessions", json={"session_type": "test_generation", "project_path": "/p"}
    ).json()["id"]
    until(lambda: fake.count == 1, message="the first step's call")
    assert lease_of(sessions, sid)[0] == engine.owner_id
    assert client.post(f"/api/v2/sessions/{sid}/pause").json()["status"] == "paused"
    # The step in flight keeps its owner until it ends: no other engine may start it again.
    assert lease_of(sessions, sid)[0] == engine.owner_id
    assert engine.wait_idle(10)
    assert lease_of(sessions, sid) == (None, None)
    with sessions() as s:
        done = s.scalars(select(Step.status).where(Step.session_id == sid)).all()
    assert sorted(done) == ["completed", "pending", "pending", "pending"]

    assert client.post(f"/api/v2/sessions/{sid}/resume").json()["status"] in (
        "pending",
        "in_progress",
    )
    assert lease_of(sessions, sid)[0] == engine.owner_id
    assert session_in(client, sid, "completed")["status"] == "completed"
    assert lease_of(sessions, sid) == (None, None)
    assert fake.count == 4  # each step once


def test_cancel_ends_the_lease(make_client: AppFactory, fake: FakeLLM) -> None:
    fake.default = Reply(delay=0.3)
    client = make_client(llm_base_url=fake.base_url)
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    sid = client.post(
        "/api/v2/sessions", json={"session_type": "test_generation", "project_path": "/p"}
    ).json()["id"]
    until(lambda: fake.count == 1, message="the first step's call")
    assert client.post(f"/api/v2/sessions/{sid}/cancel").json()["status"] == "cancelled"
    assert lease_of(sessions, sid) == (None, None)
    assert client.app.state.workflows.wait_idle(10)  # type: ignore[attr-defined]
    assert fake.count == 1
