# The TestBoost API image used by compose/docker-compose.yaml: dependencies from uv.lock
# exactly (--frozen), no dev group, run as an unprivileged user on 0.0.0.0:8000 (which makes
# the API require TESTBOOST_API_KEY). Build context: the repo root, filtered by .dockerignore.
# PYTHON_IMAGE names another base with the same layout (compose: TESTBOOST_PYTHON_IMAGE).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/app/.venv/bin:$PATH

# Same uv as the Makefile's UV_VERSION, so the lock is read the same way.
RUN pip install --no-cache-dir uv==0.13.8

WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes, not on every edit.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev \
    && useradd --system --uid 10001 --home-dir /app testboost \
    && mkdir -p /app/var && chown testboost /app/var
USER testboost

EXPOSE 8000
# What `docker compose ps` shows as healthy: /health answers 200 (the database reachable).
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
# `testboost serve` is `uvicorn app.main:app` plus the start-up checks: it refuses to bind
# 0.0.0.0 without TESTBOOST_API_KEY instead of starting an API that answers 401 to everyone.
CMD ["testboost", "serve", "--host", "0.0.0.0", "--port", "8000"]
