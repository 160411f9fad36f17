"""The one settings object: every ``TESTBOOST_*`` variable the API reads, validated at start-up."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as EnvParseError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

SIMULATED = "simulated"
DEFAULT_DATABASE_URL = "sqlite:///./var/testboost.db"


# The drivers the wheel ships (`postgresql` is taken as `postgresql+psycopg`).
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESTBOOST_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    api_key: SecretStr | None = None
    # Bearer token that /metrics requires when set (Prometheus: authorization.credentials_file).
    metrics_token: SecretStr | None = None
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    db_pool_timeout: float = Field(default=10.0, gt=0)

    # Unset: `simulated` without a base URL, `openai` (an OpenAI-compatible server) with one.
    llm_provider: str | None = Field(default=None, pattern=r"^[a-z0-9_.-]{1,40}$")
    llm_base_url: str | None = None
    llm_model: str = Field(default="gpt-4o-mini", min_length=1)
    llm_api_key: SecretStr | None = None
    llm_timeout: float = Field(default=60.0, gt=0, le=600)
    # Answers were stored whole, and `/steps` returns every step's: a few large ones made one
    # response too large for any client.
    llm_max_answer_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    llm_max_attempts: int = Field(default=4, ge=1, le=10)
    # Longest Retry-After we honour; a longer one is capped to this.
    llm_max_retry_wait: float = Field(default=30.0, ge=0, le=600)
    llm_sim_latency: float = Field(default=0.05, ge=0, le=60)
    llm_sim_error_ratio: float = Field(default=0.0, ge=0, le=1)
    llm_sim_rate_limit_ratio: float = Field(default=0.0, ge=0, le=1)

    max_concurrent_workflows: int = Field(default=8, ge=1, le=512)
    # Seconds a process owns a session's workflow unless it renews (every third of it); after
    # a crash another process takes the work over within about two of these.
    workflow_lease_ttl: float = Field(default=30.0, ge=1, le=3600)
    # Requests whose body is larger are refused with 413 before it is read.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Connection limits of `testboost serve` (app/core/server.py): request line and headers
    # larger than this are refused with 431 unread; a client has header_timeout seconds to
    # send them and body_timeout seconds for its body (408 or closed otherwise); an idle
    # kept-alive connection is closed after keep_alive_timeout seconds.
    max_header_bytes: int = Field(default=32_768, ge=1024, le=1_048_576)
    header_timeout: float = Field(default=10.0, gt=0, le=600)
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    keep_alive_timeout: int = Field(default=5, ge=1, le=600)
    send_timeout: float = Field(default=30.0, gt=0, le=3600)
    # uvicorn's default killed workers still importing the app on a loaded machine.
    worker_healthcheck_timeout: int = Field(default=30, ge=1, le=600)
    # Comma-separated (`https://a.example,https://b.example`) or a JSON list.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        """Parsed here, so that any bad URL is one line that never shows its password."""
        expected = "a sqlite:///path or postgresql+psycopg://user:password@host:port/db URL"
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):  # unparsable, or a port that is not a number
            raise ValueError(f"is not {expected}") from None
        if url.drivername not in DATABASE_DRIVERS:
            raise ValueError(f"driver {url.drivername!r} is not supported: use {expected}")
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError(f"port {url.port} is out of range")
        if url.drivername == "postgresql":
            # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

    @field_validator("llm_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "@" in value.split("://", 1)[1].split("/", 1)[0]:
            # They would reach every log line with the URL, and be sent as Basic auth.
            raise ValueError(
                "must not hold credentials (user:password@); the provider's key goes in "
                "TESTBOOST_LLM_API_KEY"
            )
        return value.rstrip("/")

    @field_validator("api_key", "metrics_token", "llm_api_key")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        """Empty means unset. A blank key would be accepted and then match nothing, and HTTP
        drops the whitespace around a header value, so a key starting or ending with it could
        never be presented: both are refused."""
        if value is None or value.get_secret_value() == "":
            return None
        text = value.get_secret_value()
        if not text.strip():
            raise ValueError("is blank; set a key, or leave it empty to unset it")
        if text != text.strip():
            raise ValueError("starts or ends with whitespace, which no HTTP header can carry")
        return value

    @model_validator(mode="after")
    def _provider_matches_url(self) -> Settings:
        if self.llm_provider == SIMULATED and self.llm_base_url:
            raise ValueError(
                "TESTBOOST_LLM_PROVIDER=simulated conflicts with TESTBOOST_LLM_BASE_URL: "
                "the simulated provider is never used with a real base URL"
            )
        if self.llm_provider not in (None, SIMULATED) and not self.llm_base_url:
            raise ValueError(
                f"TESTBOOST_LLM_PROVIDER={self.llm_provider} needs TESTBOOST_LLM_BASE_URL"
            )
        return self

    @property
    def resolved_llm_provider(self) -> str:
        if self.llm_provider:
            return self.llm_provider
        return "openai" if self.llm_base_url else SIMULATED

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file of a file-backed SQLite URL, else None."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split("///", 1)[-1]
        return None if path in ("", ":memory:") else Path(path)


class SettingsError(SystemExit):
    """Start-up refused: the message names each offending variable."""


def load_settings() -> Settings:
    try:
        return Settings()
    except EnvParseError as exc:  # a value pydantic-settings could not even decode
        raise SettingsError(_invalid([str(exc)])) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            variable = f"TESTBOOST_{field.upper()}" if field else "settings"
            problems.append(f"{variable}: {error['msg']}")
        raise SettingsError(_invalid(problems)) from None


def _invalid(problems: list[str]) -> str:
    """One line for one problem; a heading and a line each for several."""
    if len(problems) == 1:
        return f"Invalid TestBoost configuration: {problems[0]}"
    return "Invalid TestBoost configuration:\n" + "\n".join(f"  {p}" for p in problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
