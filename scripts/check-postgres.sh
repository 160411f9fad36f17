#!/usr/bin/env bash
# Say whether the DB tests will also run on PostgreSQL. On CI it must be there: start it if it
# stopped (this machine kind installs it), and fail rather than quietly test SQLite alone.
set -uo pipefail
url=${TESTBOOST_TEST_POSTGRES_URL:-}
if [ -z "$url" ]; then
  echo "PostgreSQL tests: disabled (TESTBOOST_TEST_POSTGRES_URL is empty)"
  exit 0
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "PostgreSQL tests: on, against $url"
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "PostgreSQL not answering; starting the local cluster"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "PostgreSQL tests: on, against $url"
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL at 127.0.0.1:5432 is unreachable on CI: the DB tests must run on it" >&2
  exit 1
else
  echo "PostgreSQL tests: OFF — nothing answers at 127.0.0.1:5432 (set TESTBOOST_TEST_POSTGRES_URL= to silence)"
fi
