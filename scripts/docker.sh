#!/usr/bin/env bash
# A Docker engine and the images the compose tests run (tests/deploy), without Docker Hub:
#   engine      `docker info` answers, or Debian's docker.io is installed (when dockerd is
#               missing) and dockerd started in the background (log: .tools/docker/dockerd.log)
#   compose     the `docker compose` v2 plugin (and buildx, which its builds use): Debian 13
#               packages docker-compose and docker-buildx, unpacked into .tools/root-docker and
#               linked into .tools/docker/cli-plugins (tests run docker with
#               DOCKER_CONFIG=.tools/docker; nothing is installed system-wide)
#   base        testboost-base:bookworm: `mmdebstrap --variant=minbase` of Debian 12 from the
#               machine's own apt mirror, with ca-certificates, wget and the machine's CA bundle
#               (the registries' TLS is signed by a CA only that bundle holds); the tarball is
#               cached in .tools/images/ and remade only when its inputs change
#   registry    Debian 12's docker-registry, unpacked into .tools/root-registry (the tests run one
#               on loopback to pull images from, as from a mirror)
#   stand-ins   testboost-standin/*: the third-party images compose names, at the same
#               versions, made from that base and what `make tools` installed (Prometheus from
#               Debian, our Alertmanager, Collector, Jaeger and Thanos builds, PostgreSQL,
#               Python and HAProxy from Debian 12); tests/deploy/standins/*/Dockerfile.
#               Docker's layer cache rebuilds one only when its Dockerfile or binary changed.
# The compose files keep the upstream images as defaults; tests choose the stand-ins through
# the image variables (TESTBOOST_*_IMAGE, docs/setup.md). Needs `make tools` first.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
source scripts/debian.sh
mkdir -p "$TOOLS/docker/cli-plugins" "$TOOLS/images"

# --- engine ---------------------------------------------------------------------------------
# Probed with the user's own configuration first: an engine reached through a Docker context
# is used as it is, never doubled by a second dockerd.
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing docker.io (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq docker.io >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq docker.io >/dev/null; }
  fi
  echo "starting dockerd (log: .tools/docker/dockerd.log)"
  # setsid: the engine outlives this script and make; CI's run ends it with the session.
  setsid dockerd >"$TOOLS/docker/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { tail -20 "$TOOLS/docker/dockerd.log" >&2; exit 1; }
fi
# The tests run docker with DOCKER_CONFIG=.tools/docker (the plugins below), which knows no
# context of the user's: their engine must then be named by DOCKER_HOST.
export DOCKER_CONFIG="$TOOLS/docker"
if ! docker info >/dev/null 2>&1; then
  echo "the Docker engine answers through a context of yours; set DOCKER_HOST to its address" \
    "(docker context inspect --format '{{.Endpoints.docker.Host}}') and run again" >&2
  exit 1
fi

# --- compose v2 and buildx plugins ----------------------------------------------------------
# The compose files need 2.24.4 or later (secrets from the environment, `!override`).
compose_ok() {
  local version
  version=$(docker compose version --short 2>/dev/null) || return 1
  [ "$(printf '2.24.4\n%s\n' "${version#v}" | sort -V | head -n1)" = 2.24.4 ]
}
if ! compose_ok || ! docker buildx version >/dev/null 2>&1; then
  fetch trixie "$TOOLS/root-docker" docker-compose docker-buildx
  for plugin in docker-compose docker-buildx; do
    ln -sf "$TOOLS/root-docker/usr/libexec/docker/cli-plugins/$plugin" \
      "$DOCKER_CONFIG/cli-plugins/$plugin"
  done
fi

# --- a registry ----------------------------------------------------------------------------
# Debian 12's docker-registry (distribution 2.8): the compose tests push the stand-ins to one
# on loopback and pull them as an operator pulls from a mirror (the guide's `pull`).
if ! "$TOOLS/root-registry/usr/bin/docker-registry" --version >/dev/null 2>&1; then
  fetch bookworm "$TOOLS/root-registry" docker-registry
fi

# --- base image -----------------------------------------------------------------------------
BASE=testboost-base:bookworm
base_packages=ca-certificates,wget
base_sha=$({
  printf '%s\n' bookworm minbase "$base_packages" "$(debian_mirror)"
  cat /etc/ssl/certs/ca-certificates.crt
} | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "org.testboost.inputs"}}' "$BASE" 2>/dev/null)" != "$base_sha" ]; then
  tarball="$TOOLS/images/base-bookworm-$base_sha.tar"
  if [ ! -s "$tarball" ]; then
    command -v mmdebstrap >/dev/null 2>&1 || {
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq mmdebstrap >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; }
    }
    echo "making $BASE with mmdebstrap (about a minute)"
    rm -rf "$TOOLS"/images/base-bookworm-*
    # The machine's bundle both as the bundle and as a local CA, so that a later
    # update-ca-certificates (a package install in a derived image) keeps it.
    mmdebstrap --quiet --variant=minbase --include="$base_packages" \
      --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"' \
      --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1/usr/local/share/ca-certificates/machine-bundle.crt"' \
      bookworm "${tarball%.tar}.partial.tar" "$(debian_mirror)"
    mv "${tarball%.tar}.partial.tar" "$tarball"
  fi
  docker import --change "LABEL org.testboost.inputs=$base_sha" \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["bash"]' "$tarball" "$BASE" >/dev/null
  echo "$BASE imported"
fi

# --- stand-ins ------------------------------------------------------------------------------
# build NAME:TAG DIR [PATH[:NAME]...]: tests/deploy/standins/DIR/ plus each PATH (from .tools,
# symlinks followed), named NAME in the context when given, as the build context.
build() {
  local image=$1 dir=$2 context
  shift 2
  context=$(mktemp -d)
  cp -r "tests/deploy/standins/$dir/." "$context/"
  local item
  for item in "$@"; do
    cp -rL "${item%%:*}" "$context/$(basename "${item#*:}")"
  done
  local start=$SECONDS
  if ! docker build -q -t "testboost-standin/$image" "$context" >"$TOOLS/images/$dir.log" 2>&1; then
    cat "$TOOLS/images/$dir.log" >&2
    rm -rf "$context"
    exit 1
  fi
  rm -rf "$context"
  printf '%-45s %3d s\n' "testboost-standin/$image" $((SECONDS - start))
}
build python:3.11-slim python
build postgres:15 postgres
build prometheus:v2.53.3 prometheus "$BIN/prometheus" "$BIN/promtool"
build alertmanager:v0.28.1 alertmanager "$BIN/alertmanager" "$BIN/amtool"
build opentelemetry-collector-contrib:0.165.1 otel-collector "$BIN/otelcol"
build jaeger:2.13.0 jaeger "$BIN/jaeger"
build thanos:v0.42.4 thanos "$BIN/thanos"
build haproxy:3.0 haproxy
