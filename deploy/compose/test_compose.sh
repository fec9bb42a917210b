#!/usr/bin/env bash
# make test-compose: deploy/compose.yaml for real. Starts the private Docker engine if it is not
# running (and stops it again at the end), builds the images (cached after the first run), then
# benchmarks/compose.py: up with the local override, wait healthy, requests from the host through
# Kafka's external listener, router scaled to 3, requests again, down -v. Last line: JSON.
#   deploy/compose/test_compose.sh [--requests N] [--external-port P] ...
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOCKER_HOST=${LLMFLEET_COMPOSE_DOCKER_HOST:-unix:///run/llmfleet-docker.sock}
started_engine=0
if ! deploy/compose/engine.sh status >/dev/null 2>&1; then
  deploy/compose/engine.sh start
  started_engine=1
fi
trap '[[ $started_engine == 1 ]] && deploy/compose/engine.sh stop' EXIT
t0=$SECONDS
deploy/compose/build_images.sh
echo "images ready in $((SECONDS - t0)) s"
.venv/bin/python -m benchmarks.compose --build-seconds "$((SECONDS - t0))" "$@"
