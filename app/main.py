"""create_app(): settings → database → LLM → workflows → routes → telemetry.

`uvicorn app.main:app` serves the default app; tests build their own with `create_app(...)`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

import telemetry
from app.api.errors import add_error_handlers
from app.api.routes import alerts, health, sessions
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_gauge_engine, make_sessionmaker, migrate
from app.core.limits import BodySizeLimit
from app.core.redaction import redact_access_log
from app.core.security import LoopbackOnly, require_api_key
from app.llm.client import LLMClient, make_provider
from app.models import Session
from app.workflows.definitions import ACTIVE_STATUSES, SessionType
from app.workflows.engine import WorkflowEngine

log = logging.getLogger("app")
SHUTDOWN_GRACE_S = 10.0


def create_app(
    settings: Settings | None = None, telemetry_config: telemetry.TelemetryConfig | None = None
) -> FastAPI:
    settings = settings or get_settings()
    redact_access_log()
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    tel = telemetry.setup(telemetry_config)
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
        sessionmaker,
        llm,
        max_concurrent=settings.max_concurrent_workflows,
        on_finished=tel.record_workflow_finished,
        tracer=tel.tracer,
        stop=stop,
        lease_ttl=settings.workflow_lease_ttl,
    )

    gauge_engine = make_gauge_engine(settings)
    gauge_sessions = make_sessionmaker(gauge_engine)

    def count_active_sessions() -> float | None:
        try:
            with gauge_sessions() as db:
                query = (
                    select(func.count())
                    .select_from(Session)
                    .where(Session.status.in_([s.value for s in ACTIVE_STATUSES]))
                )
                return float(db.scalar(query) or 0)
        except SQLAlchemyError:
            return None  # database down: no point rather than a wrong one

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
    app.state.sessions = sessionmaker
    app.state.workflows = workflows
    app.state.telemetry = tel

    app.include_router(health.router)
    protected = [Depends(require_api_key)]
    app.include_router(sessions.router, dependencies=protected)
    app.include_router(alerts.router, dependencies=protected)
    add_error_handlers(app)

    # Middleware runs outermost-last-added: telemetry sees every request, refused ones too.
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
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    tel.instrument_app(app, metrics_token)
    tel.observe_db_pool(engine)
    tel.observe_active_sessions(count_active_sessions)
    tel.prime(llm.provider.name, llm.provider.model, [t.value for t in SessionType], app.routes)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the app on first access, not at import time.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
