"""Settings: defaults, normalisation, and start-up refused with the variable named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.core.config import Settings, SettingsError, load_settings


def test_defaults_serve_offline() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///./var/testboost.db"
    assert settings.resolved_llm_provider == "simulated"
    assert settings.api_key is None


def test_base_url_selects_an_openai_compatible_provider() -> None:
    settings = Settings(llm_base_url="http://127.0.0.1:11434/v1/")
    assert settings.resolved_llm_provider == "openai"
    assert settings.llm_base_url == "http://127.0.0.1:11434/v1"
    assert (
        Settings(llm_base_url="http://x/v1", llm_provider="ollama").resolved_llm_provider
        == "ollama"
    )


def test_plain_postgresql_url_uses_psycopg3() -> None:
    assert (
        Settings(database_url="postgresql://u@h/db").database_url == "postgresql+psycopg://u@h/db"
    )


@pytest.mark.parametrize(
    "env,variable",
    [
        ({"TESTBOOST_DB_POOL_SIZE": "0"}, "TESTBOOST_DB_POOL_SIZE"),
        ({"TESTBOOST_DB_POOL_SIZE": "many"}, "TESTBOOST_DB_POOL_SIZE"),
        ({"TESTBOOST_DB_MAX_OVERFLOW": "-1"}, "TESTBOOST_DB_MAX_OVERFLOW"),
        ({"TESTBOOST_LLM_TIMEOUT": "0"}, "TESTBOOST_LLM_TIMEOUT"),
        ({"TESTBOOST_MAX_CONCURRENT_WORKFLOWS": "0"}, "TESTBOOST_MAX_CONCURRENT_WORKFLOWS"),
        ({"TESTBOOST_DATABASE_URL": "mysql://x"}, "TESTBOOST_DATABASE_URL"),
        ({"TESTBOOST_LLM_BASE_URL": "ftp://x"}, "TESTBOOST_LLM_BASE_URL"),
        ({"TESTBOOST_LLM_SIM_ERROR_RATIO": "1.5"}, "TESTBOOST_LLM_SIM_ERROR_RATIO"),
        (
            {"TESTBOOST_LLM_PROVIDER": "simulated", "TESTBOOST_LLM_BASE_URL": "http://x/v1"},
            "TESTBOOST_LLM_BASE_URL",
        ),
        ({"TESTBOOST_LLM_PROVIDER": "vllm"}, "TESTBOOST_LLM_BASE_URL"),
        # A blank key would be accepted and then match nothing; surrounding whitespace never
        # reaches us in a header.
        ({"TESTBOOST_API_KEY": "   "}, "TESTBOOST_API_KEY"),
        ({"TESTBOOST_API_KEY": "\t"}, "TESTBOOST_API_KEY"),
        ({"TESTBOOST_API_KEY": " key-with-a-space "}, "TESTBOOST_API_KEY"),
        ({"TESTBOOST_METRICS_TOKEN": "  "}, "TESTBOOST_METRICS_TOKEN"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert variable in str(refused.value)


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "serve", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_a_public_bind_without_a_key() -> None:
    result = _serve({}, "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "without TESTBOOST_API_KEY" in result.stderr


def test_serve_refuses_invalid_settings_with_a_message() -> None:
    result = _serve({"TESTBOOST_DB_POOL_SIZE": "zero"})
    assert result.returncode == 2
    assert "TESTBOOST_DB_POOL_SIZE" in result.stderr and "Traceback" not in result.stderr
    result = _serve({"OTEL_METRICS_EXPORTER": "statsd"})
    assert result.returncode == 2 and "OTEL_METRICS_EXPORTER" in result.stderr
    result = _serve({"TESTBOOST_API_KEY": "   "})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "TESTBOOST_API_KEY" in line]
    assert "blank" in line


def test_an_empty_key_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBOOST_API_KEY", "")
    assert load_settings().api_key is None


@pytest.mark.parametrize(
    "value,origins",
    [
        ("https://a.example", ["https://a.example"]),
        ("https://a.example, https://b.example", ["https://a.example", "https://b.example"]),
        ('["https://a.example"]', ["https://a.example"]),
        ("", []),
    ],
)
def test_cors_origins_from_env(
    monkeypatch: pytest.MonkeyPatch, value: str, origins: list[str]
) -> None:
    monkeypatch.setenv("TESTBOOST_CORS_ORIGINS", value)
    assert load_settings().cors_origins == origins


def test_undecodable_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBOOST_CORS_ORIGINS", "[not json")
    with pytest.raises(SettingsError, match=r"TESTBOOST_CORS_ORIGINS"):
        load_settings()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://bob:s3cret-pw@127.0.0.1:abc/testboost",  # a port that is no number
        "postgresql+nodriver://bob:s3cret-pw@127.0.0.1/testboost",  # a driver not shipped
        "mysql://bob:s3cret-pw@127.0.0.1/testboost",
        "postgresql://bob:s3cret-pw@127.0.0.1:70000/testboost",
        "bob:s3cret-pw@nowhere",
    ],
)
def test_every_bad_database_url_is_refused_without_its_password(url: str) -> None:
    result = _serve({"TESTBOOST_DATABASE_URL": url})
    assert result.returncode == 2
    assert "TESTBOOST_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_credentials_in_the_llm_url_are_refused_without_being_shown() -> None:
    result = _serve({"TESTBOOST_LLM_BASE_URL": "http://user:s3cret-pw@127.0.0.1:9/v1"})
    assert result.returncode == 2
    assert "TESTBOOST_LLM_BASE_URL" in result.stderr and "TESTBOOST_LLM_API_KEY" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    # An @ in the path is not userinfo.
    assert Settings(llm_base_url="http://127.0.0.1:9/v1/@team").llm_base_url == (
        "http://127.0.0.1:9/v1/@team"
    )


def test_the_worker_health_check_timeout_reaches_uvicorn() -> None:
    """uvicorn kills a worker that does not answer its parent's health check in time, a
    starting one too; its 5 s default killed workers on a loaded machine."""
    import uvicorn

    from app.core.server import uvicorn_options

    assert Settings().worker_healthcheck_timeout == 30
    options = uvicorn_options(Settings(worker_healthcheck_timeout=45))
    config = uvicorn.Config("app.main:app", workers=2, **options)
    assert config.timeout_worker_healthcheck == 45
