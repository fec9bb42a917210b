#!/usr/bin/env bash
# The stand-in's docker-entrypoint.sh, as the official image's: `docker-entrypoint.sh postgres [-c ...]`.
# First start: initdb with the superuser and password from the environment (none: refuse), allow
# password logins from the network, create POSTGRES_DB. Every start: run postgres in the foreground,
# with the arguments after `postgres` (deploy/compose.secure.yaml passes its TLS settings so).
set -euo pipefail
if [[ ${1:-postgres} != postgres ]]; then exec "$@"; fi
shift || true
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user=${POSTGRES_USER:-postgres} db=${POSTGRES_DB:-$user}
if [[ ! -s $PGDATA/PG_VERSION ]]; then
  pwfile=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  [[ $db == postgres ]] || createdb -U "$user" "$db"
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
