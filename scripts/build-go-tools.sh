#!/usr/bin/env bash
# Build our own OpenTelemetry Collector, Jaeger v2 and the other Go tools from source into
# .tools/bin (gitignored):
#   otelcol   otel-collector/builder-config.yaml, built by the OpenTelemetry Collector Builder
#             (go.opentelemetry.io/collector/cmd/builder, installed into .tools/go/bin)
#   jaeger    tools/jaeger/go.mod + go.sum (a `tool` directive for jaeger's cmd/jaeger)
#   thanos    tools/thanos/go.mod + go.sum (the same, plus Thanos' own replace directives)
#   helm      tools/k8s/go.mod + go.sum (a `tool` directive for Helm v4's cmd/helm)
#   k8s-validate  tools/k8s/k8s-validate, our strict decoder of rendered Kubernetes objects, from
#             the same module (k8s.io/api and the Prometheus Operator's types, Helm's k8s.io)
#   sloth     tools/sloth/go.mod + go.sum (a `tool` directive for Sloth's cmd/sloth): the SLO
#             specs in monitoring/slo/ to monitoring/prometheus/slo-rules.yml
#   alertmanager, amtool  tools/alertmanager/go.mod + go.sum: upstream's build, its web UI and
#             default templates embedded (Debian's has no UI and reads them from /usr/share)
# Arguments name the tools to build (`make stack` needs only alertmanager); none: all of them.
# Modules come from the Go module proxy into the default GOMODCACHE/GOCACHE, so a rebuild
# after `make clean` downloads nothing. A binary is rebuilt only when the sha256 of its
# manifest (plus the Go version and build flags), kept beside it as NAME.manifest-sha256,
# changed or when it does not run. Called by scripts/install-tools.sh (`make tools`).
# Progress and timings go to stderr: install-tools.sh's stdout is its one-line-per-tool table.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 1>&2
TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
BUILD="$TOOLS/build"
OCB_VERSION=v0.165.0
OCB="$TOOLS/go/bin/builder"
mkdir -p "$BIN" "$BUILD" "$TOOLS/go/bin"

export CGO_ENABLED=0
LDFLAGS="-s -w"

command -v go >/dev/null || { echo "build-go-tools: go is not on PATH" >&2; exit 1; }
GO_VERSION=$(go env GOVERSION)

WANTED=" $* "
# wanted NAME: NAME was asked for, or nothing was (everything is).
wanted() { [ "$WANTED" = "  " ] || [[ $WANTED == *" $1 "* ]]; }

# sha256 over the manifest files' contents and the extra words that change the binary.
manifest_sha() {
  local extra=$1
  shift
  { printf '%s\n' "$extra" "$GO_VERSION" "CGO_ENABLED=$CGO_ENABLED" "$LDFLAGS"; cat "$@"; } |
    sha256sum | cut -d' ' -f1
}

# up_to_date NAME SHA VERSION_ARGS...: the stored sha matches and the binary runs.
up_to_date() {
  local name=$1 sha=$2
  shift 2
  [ -x "$BIN/$name" ] && [ "$(cat "$BIN/$name.manifest-sha256" 2>/dev/null)" = "$sha" ] &&
    "$BIN/$name" "$@" >/dev/null 2>&1
}

# Seconds since a `date +%s%N` stamp, one decimal.
elapsed() {
  local tenths=$((($(date +%s%N) - $1) / 100000000))
  printf '%d.%d' $((tenths / 10)) $((tenths % 10))
}

# go_build NAME DIR PACKAGE SHA START [GO BUILD FLAGS...]: build PACKAGE of the module in DIR
# into $BIN/NAME (log in $BUILD/NAME.log), then record SHA beside it. -mod=readonly: go.mod and
# go.sum are the pin; a missing sum fails instead of re-resolving.
go_build() {
  local name=$1 dir=$2 package=$3 sha=$4 start=$5
  shift 5
  echo "$name: building from $dir (a few minutes the first time)"
  if ! go build -C "$dir" -mod=readonly -trimpath "$@" -o "$BIN/$name.new" "$package" \
    >"$BUILD/$name.log" 2>&1; then
    tail -n 40 "$BUILD/$name.log" >&2
    echo "$name: build failed (whole log: $BUILD/$name.log)" >&2
    exit 1
  fi
  mv -f "$BIN/$name.new" "$BIN/$name"
  echo "$sha" >"$BIN/$name.manifest-sha256"
  echo "$name: built in $(elapsed "$start") s ($(du -h "$BIN/$name" | cut -f1))"
}

# --- otelcol --------------------------------------------------------------------------------
if wanted otelcol; then
  start=$(date +%s%N)
  otelcol_sha=$(manifest_sha "ocb $OCB_VERSION" otel-collector/builder-config.yaml)
  if up_to_date otelcol "$otelcol_sha" --version; then
    echo "otelcol: up to date ($(elapsed "$start") s)"
  else
    # `builder version` prints "ocb version vX.Y.Z" on stderr.
    if [[ "$("$OCB" version 2>&1 || true)" != *"ocb version $OCB_VERSION"* ]]; then
      echo "otelcol: installing the collector builder $OCB_VERSION"
      GOBIN="$TOOLS/go/bin" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
    fi
    echo "otelcol: building from otel-collector/builder-config.yaml (a few minutes the first time)"
    # output_path in the manifest is .tools/build/otelcol-testboost, relative to the repo root.
    rm -rf "$BUILD/otelcol-testboost"
    mkdir -p "$BUILD/otelcol-testboost"
    if ! "$OCB" --config=otel-collector/builder-config.yaml --ldflags="$LDFLAGS" \
      >"$BUILD/otelcol.log" 2>&1; then
      tail -n 40 "$BUILD/otelcol.log" >&2
      echo "otelcol: build failed (whole log: $BUILD/otelcol.log)" >&2
      exit 1
    fi
    cp "$BUILD/otelcol-testboost/otelcol-testboost" "$BIN/otelcol.new"
    mv -f "$BIN/otelcol.new" "$BIN/otelcol"
    echo "$otelcol_sha" >"$BIN/otelcol.manifest-sha256"
    echo "otelcol: built in $(elapsed "$start") s ($(du -h "$BIN/otelcol" | cut -f1))"
  fi
fi

# --- jaeger ---------------------------------------------------------------------------------
if wanted jaeger; then
  start=$(date +%s%N)
  jaeger_sha=$(manifest_sha "" tools/jaeger/go.mod tools/jaeger/go.sum)
  if up_to_date jaeger "$jaeger_sha" --version; then
    echo "jaeger: up to date ($(elapsed "$start") s)"
  else
    # The module version goes into `jaeger --version` as jaeger's own Makefile does with its tag.
    version=$(go list -C tools/jaeger -mod=readonly -m -f '{{.Version}}' github.com/jaegertracing/jaeger)
    go_build jaeger tools/jaeger github.com/jaegertracing/jaeger/cmd/jaeger "$jaeger_sha" "$start" \
      -ldflags="$LDFLAGS -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version"
  fi
fi

# --- thanos ---------------------------------------------------------------------------------
if wanted thanos; then
  start=$(date +%s%N)
  # Thanos' own build tags (its .promu.yml): its label encoding casts Prometheus' labels in
  # place, which holds only for the slicelabels layout; without it the sidecar and store panic
  # (thanos-io/thanos#8543).
  THANOS_TAGS=netgo,slicelabels
  thanos_sha=$(manifest_sha "tags $THANOS_TAGS" tools/thanos/go.mod tools/thanos/go.sum)
  if up_to_date thanos "$thanos_sha" --version; then
    echo "thanos: up to date ($(elapsed "$start") s)"
  else
    # Thanos' Makefile stamps its version through prometheus/common's version package.
    version=$(go list -C tools/thanos -mod=readonly -m -f '{{.Version}}' github.com/thanos-io/thanos)
    go_build thanos tools/thanos github.com/thanos-io/thanos/cmd/thanos "$thanos_sha" "$start" \
      -tags "$THANOS_TAGS" \
      -ldflags="$LDFLAGS -X github.com/prometheus/common/version.Version=${version#v}"
  fi
fi

# --- helm -----------------------------------------------------------------------------------
if wanted helm; then
  start=$(date +%s%N)
  helm_sha=$(manifest_sha "" tools/k8s/go.mod tools/k8s/go.sum)
  if up_to_date helm "$helm_sha" version --short; then
    echo "helm: up to date ($(elapsed "$start") s)"
  else
    # The version Helm's Makefile stamps from its tag; without it `helm version` says v4.3.
    version=$(go list -C tools/k8s -mod=readonly -m -f '{{.Version}}' helm.sh/helm/v4)
    go_build helm tools/k8s helm.sh/helm/v4/cmd/helm "$helm_sha" "$start" \
      -ldflags="$LDFLAGS -X helm.sh/helm/v4/internal/version.version=$version"
  fi
fi

# --- k8s-validate ---------------------------------------------------------------------------
if wanted k8s-validate; then
  # Our own program: its source is part of the manifest. It shares Helm's module and build cache.
  start=$(date +%s%N)
  validate_sha=$(manifest_sha "" tools/k8s/go.mod tools/k8s/go.sum tools/k8s/k8s-validate/*.go)
  if up_to_date k8s-validate "$validate_sha" --version; then
    echo "k8s-validate: up to date ($(elapsed "$start") s)"
  else
    go_build k8s-validate tools/k8s ./k8s-validate "$validate_sha" "$start" -ldflags="$LDFLAGS"
  fi
fi

# --- sloth ----------------------------------------------------------------------------------
if wanted sloth; then
  start=$(date +%s%N)
  sloth_sha=$(manifest_sha "" tools/sloth/go.mod tools/sloth/go.sum)
  if up_to_date sloth "$sloth_sha" version; then
    echo "sloth: up to date ($(elapsed "$start") s)"
  else
    # Sloth's own build script stamps its version here; built from a module that requires it, it
    # would find the same in the build info, but the stamp does not depend on that.
    version=$(go list -C tools/sloth -mod=readonly -m -f '{{.Version}}' github.com/slok/sloth)
    go_build sloth tools/sloth github.com/slok/sloth/cmd/sloth "$sloth_sha" "$start" \
      -ldflags="$LDFLAGS -X github.com/slok/sloth/internal/info.Version=$version"
  fi
fi

# --- alertmanager, amtool -------------------------------------------------------------------
if wanted alertmanager; then
  start=$(date +%s%N)
  am_sha=$(manifest_sha "" tools/alertmanager/go.mod tools/alertmanager/go.sum)
  if up_to_date alertmanager "$am_sha" --version && up_to_date amtool "$am_sha" --version; then
    echo "alertmanager: up to date ($(elapsed "$start") s)"
  else
    # The version Alertmanager's release build (promu) stamps through prometheus/common.
    version=$(go list -C tools/alertmanager -mod=readonly -m -f '{{.Version}}' \
      github.com/prometheus/alertmanager)
    stamp="$LDFLAGS -X github.com/prometheus/common/version.Version=${version#v}"
    go_build alertmanager tools/alertmanager github.com/prometheus/alertmanager/cmd/alertmanager \
      "$am_sha" "$start" -ldflags="$stamp"
    go_build amtool tools/alertmanager github.com/prometheus/alertmanager/cmd/amtool \
      "$am_sha" "$start" -ldflags="$stamp"
  fi
fi
