#!/usr/bin/env bash
# make test-compose: deploy/compose.yaml for real. Starts the private Docker engine if it is not
# running (and stops it again at the end), builds the images (cached after the first run), runs the
# Kafka request-path integration tests on the testcontainers path with the local Kafka image, then benchmarks/compose.py:
# up with the local override, wait healthy, requests from the host through Kafka's external
# listener, router scaled to 3, requests again, down -v; then the same with the secure overlay
# (deploy/compose.secure.yaml), its requests as the `client` principal and its refusals. Last line: JSON.
#   deploy/compose/test_compose.sh [--requests N] [--external-port P] [--mode plaintext|secure|both] ...
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOCKER_HOST=${LLMFLEET_COMPOSE_DOCKER_HOST:-unix:///run/llmfleet-docker.sock}
started_engine=0
if ! deploy/compose/engine.sh status >/dev/null 2>&1; then
  deploy/compose/engine.sh start
  started_engine=1
fi
trap '[[ $started_engine == 1 ]] && deploy/compose/engine.sh stop' EXIT
deploy/compose/compose_cli.sh
t0=$SECONDS
deploy/compose/build_images.sh
build_s=$((SECONDS - t0))
echo "images ready in $build_s s"
# The fixtures' testcontainers path, for real: Kafka in the locally built image (Ryuk, the reaper,
# has no local image; the fixture stops its container itself). LLMFLEET_TEST_COMPOSE_SKIP_FIXTURES=1 skips it.
if [[ -z ${LLMFLEET_TEST_COMPOSE_SKIP_FIXTURES:-} ]]; then
  t1=$SECONDS
  LLMFLEET_TEST_KAFKA_IMAGE=llmfleet-kafka:local TESTCONTAINERS_RYUK_DISABLED=true LLMFLEET_TEST_REQUIRE_DOCKER=1 \
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_requests_through_kafka.py
  echo "testcontainers fixtures on the local Kafka image: passed in $((SECONDS - t1)) s"
fi
.venv/bin/python -m benchmarks.compose --build-seconds "$build_s" "$@"
