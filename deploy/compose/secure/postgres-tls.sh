#!/usr/bin/env bash
# deploy/compose.secure.yaml's PostgreSQL start: PostgreSQL refuses a private key that anyone but
# its owner can read, and Compose mounts the secret as the host file is (0644, see
# deploy/local/secure.py). So copy it 0600 for the server's user, then start as the image does.
set -euo pipefail
key=/tmp/llmfleet-postgres.key
install -m 0600 /run/secrets/postgres-key "$key"
if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$key"; fi # the image drops to `postgres`
exec docker-entrypoint.sh "$@"
