#!/usr/bin/env bash
# Build every image the local Compose test runs, without a registry: a debootstrap base, then
# Debian, PyPI, Maven Central (Kafka's jars, via `llmfleet install`) and the Go proxy (Jaeger).
# Layers are cached by the engine (/var/lib/llmfleet-docker), so a second run takes seconds.
#   DOCKER_HOST=unix:///run/llmfleet-docker.sock deploy/compose/build_images.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
LOCAL=deploy/compose/local
JAEGER_VERSION=v1.75.0 # the module's v1 tag that ships Jaeger v2 (cmd/jaeger)

step() { local t0=$SECONDS; "$@"; echo "  ($((SECONDS - t0)) s)"; }
build() { # tag dockerfile [build args...]
  local tag=$1 file=$2 log; shift 2
  echo "image $tag <- $file"
  log=$(mktemp)
  # The classic builder (no buildx here); its deprecation notice is noise, its errors are not.
  if ! docker build -f "$file" -t "$tag" "$@" . >"$log" 2>&1; then
    tail -30 "$log" >&2; rm -f "$log"; return 1
  fi
  rm -f "$log"
}

step deploy/compose/base_image.sh llmfleet-base:bookworm
build_jaeger() {
  # `go install pkg@version` refuses a module with replace directives: build in a copy of it.
  local go=${GO:-/usr/local/go/bin/go} src
  src=$("$go" mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf .cache/jaeger-src && cp -r "$src" .cache/jaeger-src && chmod -R u+w .cache/jaeger-src
  (cd .cache/jaeger-src && CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w" -o ../bin/jaeger ./cmd/jaeger)
  rm -rf .cache/jaeger-src
}
# The Go build is the one slow step (~10 min of 2 CPUs; 35 min on a busy machine): skip it when
# the engine already holds the image, e.g. a clean clone on a machine that ran this before.
jaeger_image=llmfleet-jaeger:local
if [[ ! -x .cache/bin/jaeger ]] && docker image inspect "$jaeger_image" >/dev/null 2>&1; then
  echo "image $jaeger_image: present (no .cache/bin/jaeger: kept as is)"
  jaeger_image=
elif [[ ! -x .cache/bin/jaeger ]]; then
  echo "jaeger $JAEGER_VERSION: go build from the Go module proxy"
  step build_jaeger
fi
step build llmfleet-python:3.11 $LOCAL/python.Dockerfile
step build llmfleet:local deploy/docker/Dockerfile --build-arg PYTHON_IMAGE=llmfleet-python:3.11
step build llmfleet-triton:local $LOCAL/triton.Dockerfile
step build llmfleet-kafka:local $LOCAL/kafka.Dockerfile
step build llmfleet-postgres:local $LOCAL/postgres.Dockerfile
step build llmfleet-prometheus:local $LOCAL/prometheus.Dockerfile
[[ -z $jaeger_image ]] || step build "$jaeger_image" $LOCAL/jaeger.Dockerfile
# Images a rebuild replaced (dangling) only take disk: drop them, keep the build cache's layers.
docker image prune -f >/dev/null
