#!/usr/bin/env bash
# A private Docker engine for `make test-compose`, on its own socket and data root, so that
# nothing else on the host (other test sessions look for /var/run/docker.sock) sees it.
#   deploy/compose/engine.sh start|stop|status      (root; Debian's docker.io provides dockerd)
# Use it with DOCKER_HOST=unix:///run/llmfleet-docker.sock. Images and build cache live in
# /var/lib/llmfleet-docker and are reused by the next start.
set -euo pipefail
SOCK=${LLMFLEET_DOCKER_SOCK:-/run/llmfleet-docker.sock}
ROOT=${LLMFLEET_DOCKER_ROOT:-/var/lib/llmfleet-docker}
PIDFILE=${LLMFLEET_DOCKER_PIDFILE:-/run/llmfleet-docker.pid}
EXEC_ROOT=${LLMFLEET_DOCKER_EXEC_ROOT:-/run/llmfleet-docker}
LOG=${LLMFLEET_DOCKER_LOG:-/var/log/llmfleet-dockerd.log}
export DOCKER_HOST="unix://$SOCK"

running() { [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-status}" in
start)
  if running; then echo "engine already running (pid $(cat "$PIDFILE"), $DOCKER_HOST)"; exit 0; fi
  command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io" >&2; exit 1; }
  mkdir -p "$ROOT" "$EXEC_ROOT"
  # Its own exec root and bridge name keep it apart from a system engine, if one is ever started.
  setsid dockerd -H "unix://$SOCK" --data-root "$ROOT" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
    ${LLMFLEET_DOCKERD_ARGS:-} >>"$LOG" 2>&1 </dev/null &
  for _ in $(seq 60); do
    if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
      echo "engine up: $DOCKER_HOST (pid $(cat "$PIDFILE"), log $LOG)"; exit 0
    fi
    sleep 1
  done
  echo "dockerd did not answer within 60 s; last lines of $LOG:" >&2; tail -20 "$LOG" >&2; exit 1
  ;;
stop)
  if running; then
    pid=$(cat "$PIDFILE"); kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    echo "engine stopped (pid $pid)"
  else
    echo "engine not running"
  fi
  ;;
status)
  if running; then echo "running (pid $(cat "$PIDFILE"), $DOCKER_HOST)"; else echo "not running"; exit 1; fi
  ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
