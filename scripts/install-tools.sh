#!/usr/bin/env bash
# Install the real monitoring binaries the tests run into the project-local .tools/ (gitignored):
#   prometheus, promtool          Debian 13 "trixie" packages `prometheus`, `promtool` (2.53.x)
#   prometheus3, promtool3        Debian sid packages `prometheus`, `promtool` (3.5.x, the current
#                                 long-term release): the end-to-end tests run on both majors
#   chromium                      Debian 12 package, installed system-wide: /docs and the local
#                                 stack's pages in a real browser (tests)
#   valgrind                      Debian 12 package: callgrind counts instructions (make bench)
#   jq                            Debian 12 package: docs/api.md's walkthrough (docs tests)
#   alertmanager, amtool          built from source by scripts/build-go-tools.sh (Go module proxy)
#   otelcol, jaeger, thanos       the same
#   helm, k8s-validate            the same (tools/k8s): the chart's checks in tests/kubernetes
#   sloth                         the same (tools/sloth): the SLO rules from monitoring/slo/
# Debian 12 cannot run apt against trixie or sid without changing the system's sources, so apt
# gets a private sources dir, lists and cache per suite under .tools/apt/ and only *downloads*;
# the .debs are unpacked with dpkg-deb into .tools/root (trixie) or .tools/root-sid and never
# installed. The binaries are Go programs. The Docker engine, `docker compose` and the images
# the compose tests run come from scripts/docker.sh (`make docker`).
# Idempotent: a tool whose .tools/bin entry already runs is not fetched again.
# Arguments name the tools to install (`make stack`: prometheus alertmanager; each name brings
# its companion: promtool, promtool3, amtool); none: everything `make test` uses.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

runs() { "$BIN/$1" --version >/dev/null 2>&1; }
KNOWN=(prometheus prometheus3 alertmanager chromium valgrind jq otelcol jaeger thanos helm
  k8s-validate sloth)
for name in "$@"; do
  if [[ " ${KNOWN[*]} " != *" $name "* ]]; then
    echo "install-tools: unknown tool $name (known: ${KNOWN[*]})" >&2
    exit 2
  fi
done
WANTED=" $* "
# wanted NAME: NAME was asked for, or nothing was (everything is).
wanted() { [ "$WANTED" = "  " ] || [[ $WANTED == *" $1 "* ]]; }

source scripts/debian.sh

if wanted prometheus && { ! runs prometheus || ! runs promtool; }; then
  ROOT="$TOOLS/root"
  fetch trixie "$ROOT" prometheus promtool
  ln -sf "$ROOT/usr/bin/prometheus" "$BIN/prometheus"
  ln -sf "$ROOT/usr/bin/promtool" "$BIN/promtool"
fi

if wanted prometheus3 && { ! runs prometheus3 || ! runs promtool3; }; then
  fetch sid "$TOOLS/root-sid" prometheus promtool
  ln -sf "$TOOLS/root-sid/usr/bin/prometheus" "$BIN/prometheus3"
  ln -sf "$TOOLS/root-sid/usr/bin/promtool" "$BIN/promtool3"
fi

# Debian 12 packages, installed system-wide when missing: chromium (the /docs page in a real
# headless browser, tests/integration/test_docs_page.py), valgrind (callgrind's instruction
# counts, `make bench` and its smoke test), jq (docs/api.md's curl walkthrough, run by the docs
# tests).
for pkg in chromium valgrind jq; do
  if wanted "$pkg" && ! command -v "$pkg" >/dev/null 2>&1; then
    echo "installing $pkg (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }
  fi
done

# Alertmanager, our own OpenTelemetry Collector, Jaeger v2, Thanos, Helm, k8s-validate and
# Sloth, built from pinned manifests with Go; each is rebuilt only when its manifest changed.
scripts/build-go-tools.sh "$@"

# One line per tool; any tool that does not run fails the script (and so `make test`).
version_of() {
  case $1 in
    jaeger) "$BIN/jaeger" --version 2>/dev/null ;; # its version on stdout, a log line on stderr
    helm) "$BIN/helm" version --short 2>&1 ;; # no --version flag
    # No --version flag either; stderr carries a log line of a library it links.
    sloth) "$BIN/sloth" version 2>/dev/null ;;
    *) "$BIN/$1" --version 2>&1 ;;
  esac
}
for tool in prometheus promtool prometheus3 promtool3 alertmanager amtool otelcol jaeger thanos \
  helm k8s-validate sloth; do
  case $tool in # a companion is installed with its tool
    promtool*) owner=${tool/promtool/prometheus} ;;
    amtool) owner=alertmanager ;;
    *) owner=$tool ;;
  esac
  wanted "$owner" || continue
  if ! out=$(version_of "$tool"); then
    echo "$tool: does not run from $BIN/$tool" >&2
    printf '%s\n' "$out" >&2
    exit 1
  fi
  line=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | head -n1 || true)
  printf '%-15s %s\n' "$tool" "$line"
done
