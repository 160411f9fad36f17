#!/usr/bin/env bash
# The PostgreSQL server the DB tests run on, made ready by `make test`:
#   - the URL in TESTBOOST_TEST_POSTGRES_URL already answers: use it as it is;
#   - otherwise (a loopback URL): install Debian's `postgresql` when its server binaries are
#     missing, then run a cluster of the project's own (initdb with trust auth on 127.0.0.1,
#     data in .tools/postgres/, the URL's port) so the machine's own server and its pg_hba
#     are never touched.
# `scripts/test-postgres.sh stop` stops that cluster. An empty URL turns the DB tests on
# PostgreSQL off (never on CI: there they must run).
set -euo pipefail
cd "$(dirname "$0")/.."

url=${TESTBOOST_TEST_POSTGRES_URL:-}
if [ -z "$url" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "TESTBOOST_TEST_POSTGRES_URL is empty on CI: the DB tests must run on PostgreSQL" >&2
    exit 1
  fi
  echo "PostgreSQL tests: disabled (TESTBOOST_TEST_POSTGRES_URL is empty)"
  exit 0
fi

# host and port of postgresql+driver://user[:password]@host[:port]/db
hostport=${url#*://}
hostport=${hostport#*@}
hostport=${hostport%%/*}
host=${hostport%%:*}
port=5432
[ "$hostport" != "$host" ] && port=${hostport##*:}

data_dir=${TESTBOOST_TEST_POSTGRES_DIR:-$PWD/.tools/postgres}
log_file=$data_dir.log

answers() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }

server_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$found" ] && [ -x "$found/postgres" ] && printf '%s' "$found"
}

# initdb and postgres refuse to run as root: run them as Debian's `postgres` user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-start}" = stop ]; then
  bin=$(server_bin) || exit 0
  [ -f "$data_dir/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$data_dir" -m fast -w stop
  exit 0
fi

if answers; then
  echo "PostgreSQL tests: on, against $url"
  exit 0
fi
case "$host" in
  127.0.0.1 | localhost) ;;
  *)
    echo "PostgreSQL at $host:$port does not answer (TESTBOOST_TEST_POSTGRES_URL=$url)" >&2
    exit 1
    ;;
esac

if ! bin=$(server_bin); then
  echo "installing PostgreSQL (Debian package postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  bin=$(server_bin) || { echo "postgresql installed, but no server binaries" >&2; exit 1; }
fi
command -v pg_isready >/dev/null || PATH=$bin:$PATH

if [ ! -f "$data_dir/PG_VERSION" ]; then
  echo "creating the test cluster in $data_dir"
  mkdir -p "$data_dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data_dir" && chmod 700 "$data_dir"
  if ! as_owner test -w "$data_dir"; then
    echo "the postgres user cannot write $data_dir (a parent folder it cannot enter?);" \
      "set TESTBOOST_TEST_POSTGRES_DIR to a folder it can" >&2
    exit 1
  fi
  as_owner "$bin/initdb" -D "$data_dir" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
fi
: >"$log_file"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$log_file"
# fsync off: a test database is thrown away, and the suite creates hundreds of them.
as_owner "$bin/pg_ctl" -D "$data_dir" -l "$log_file" -w -t 60 \
  -o "-h 127.0.0.1 -p $port -k $data_dir -F -c max_connections=200" start >/dev/null
if ! answers; then
  echo "the test cluster did not start; its log ($log_file):" >&2
  tail -n 20 "$log_file" >&2
  exit 1
fi
echo "PostgreSQL tests: on, against $url (cluster in $data_dir, $("$bin/postgres" --version))"
