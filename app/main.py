"""create_app(): settings → database → LLM → workflows → routes → telemetry.

`uvicorn app.main:app` serves the default app; tests build their own with `create_app(...)`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

import telemetry
from app.api.errors import add_error_handlers
from app.api.routes import alerts, health, sessions
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_gauge_engine, make_sessionmaker, migrate
from app.core.limits import BodySizeLimit
from app.core.redaction import redact_access_log
from app.core.redirects import RelativeRedirects
from app.core.security import LoopbackOnly, require_api_key
from app.llm.client import LLMClient, make_provider
from app.models import ACTIVE_STATUSES, Session
from app.schemas import PROTECTED
from app.workflows.definitions import SessionType
from app.workflows.engine import WorkflowEngine

log = logging.getLogger("app")
SHUTDOWN_GRACE_S = 10.0


def create_app(
    settings: Settings | None = None, telemetry_config: telemetry.TelemetryConfig | None = None
) -> FastAPI:
    settings = settings or get_settings()
    redact_access_log()
    engine = make_engine(settings)
    db_sessions = make_sessionmaker(engine)
    tel = telemetry.setup(telemetry_config)
    llm, workflows = _workflows(settings, db_sessions, tel)
    gauge_engine, count_active_sessions = _active_sessions_reader(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(engine, settings)
        if settings.api_key is None:
            log.warning("TESTBOOST_API_KEY is unset: only loopback clients are served")
        log.info("LLM provider: %s (model %s)", llm.provider.name, llm.provider.model)
        workflows.recover()
        yield
        workflows.shutdown(timeout=SHUTDOWN_GRACE_S)
        llm.close()
        tel.shutdown()
        engine.dispose()
        gauge_engine.dispose()

    # Swagger UI and ReDoc from the API itself (fastapi-offline ships their assets): /docs and
    # /redoc work without a CDN.
    app = FastAPIOffline(
        title="TestBoost API",
        version="0.1.0",
        description="LLM-driven workflows over sessions, and an inbox for Alertmanager.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = db_sessions
    app.state.workflows = workflows
    app.state.telemetry = tel
    _add_routes(app)
    _add_middleware(app, settings)
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    tel.instrument_app(app, metrics_token)
    tel.observe_db_pool(engine)
    tel.observe_active_sessions(count_active_sessions)
    tel.prime(llm.provider.name, llm.provider.model, [t.value for t in SessionType], app.routes)
    return app


def _workflows(
    settings: Settings, sessions: sessionmaker[DbSession], tel: telemetry.Telemetry
) -> tuple[LLMClient, WorkflowEngine]:
    """The LLM client and the engine that runs workflows with it, both reporting to `tel`."""
    stop = threading.Event()
    llm = LLMClient(
        make_provider(settings),
        max_attempts=settings.llm_max_attempts,
        max_retry_wait=settings.llm_max_retry_wait,
        on_attempt=tel.record_llm_attempt,
        tracer=tel.tracer,
        stop=stop,
    )
    workflows = WorkflowEngine(
        sessions,
        llm,
        max_concurrent=settings.max_concurrent_workflows,
        on_finished=tel.record_workflow_finished,
        tracer=tel.tracer,
        stop=stop,
        lease_ttl=settings.workflow_lease_ttl,
    )
    return llm, workflows


def _active_sessions_reader(settings: Settings) -> tuple[Engine, Callable[[], float | None]]:
    """The active-sessions gauge's reading, on an engine of its own (make_gauge_engine says
    why), and that engine to dispose of."""
    gauge_engine = make_gauge_engine(settings)
    gauge_sessions = make_sessionmaker(gauge_engine)
    active = [s.value for s in ACTIVE_STATUSES]

    def count_active_sessions() -> float | None:
        try:
            with gauge_sessions() as db:
                query = select(func.count()).select_from(Session).where(Session.status.in_(active))
                return float(db.scalar(query) or 0)
        except SQLAlchemyError:
            return None  # database down: no point rather than a wrong one

    return gauge_engine, count_active_sessions


def _add_routes(app: FastAPI) -> None:
    app.include_router(health.router)
    protected = [Depends(require_api_key)]
    app.include_router(sessions.router, dependencies=protected, responses=PROTECTED)
    app.include_router(alerts.router, dependencies=protected, responses=PROTECTED)
    # A browser opening the bare address (README prints it) lands on the interactive docs;
    # relative, so it holds behind a path prefix too. Last: routes are tried in order, and
    # first it cost every API request a match (~48 k instructions, callgrind).
    app.add_api_route("/", lambda: RedirectResponse("docs"), include_in_schema=False)
    add_error_handlers(app)


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # Middleware runs outermost-last-added: telemetry (added after these) sees every request,
    # refused ones too.
    app.add_middleware(RelativeRedirects)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    if settings.api_key is None:
        app.add_middleware(LoopbackOnly)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the app on first access, not at import time.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
