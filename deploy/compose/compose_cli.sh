#!/usr/bin/env bash
# Compose v2 as a Docker CLI plugin, built once from the Go module proxy when `docker compose` is
# missing (Debian's docker.io ships without it): github.com/docker/compose/v5 v5.6.0 -> .cache/bin,
# copied into ~/.docker/cli-plugins. Needs Go (GO, default /usr/local/go/bin/go).
set -euo pipefail
cd "$(dirname "$0")/../.."
COMPOSE_VERSION=v5.6.0
if docker compose version >/dev/null 2>&1; then exit 0; fi
go=${GO:-/usr/local/go/bin/go}
if [[ ! -x .cache/bin/docker-compose ]]; then
  echo "docker compose $COMPOSE_VERSION: go build from the Go module proxy"
  # `go install pkg@version` refuses a module with exclude directives: build in a copy of it.
  src=$("$go" mod download -json "github.com/docker/compose/v5@$COMPOSE_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf .cache/compose-src && mkdir -p .cache/bin && cp -r "$src" .cache/compose-src && chmod -R u+w .cache/compose-src
  (cd .cache/compose-src && CGO_ENABLED=0 "$go" build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$COMPOSE_VERSION" -o ../bin/docker-compose ./cmd)
  rm -rf .cache/compose-src
fi
mkdir -p ~/.docker/cli-plugins
install -m 755 .cache/bin/docker-compose ~/.docker/cli-plugins/docker-compose  # a copy: outlives this checkout
docker compose version
