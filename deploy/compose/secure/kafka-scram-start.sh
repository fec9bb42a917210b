#!/usr/bin/env bash
# deploy/compose.secure.yaml's Kafka start: format the KRaft storage once WITH the admin's
# SCRAM-SHA-512 credential, then start the way the image does (/etc/kafka/docker/run).
# Why: the broker logs in to its own SASL_SSL listener as `admin`, and in KRaft the SCRAM users live
# in the metadata log, so the first one must be written when the storage is formatted
# (`kafka-storage format --add-scram`); the image's own start formats without it. The `acls` job
# then adds every service's user and ACLs through the Admin API, as this admin.
# Runs in apache/kafka and in make test-compose's stand-in (deploy/compose/local/kafka.Dockerfile).
set -euo pipefail
: "${CLUSTER_ID:?CLUSTER_ID is required}"
: "${LLMFLEET_KAFKA_ADMIN_PASSWORD:?LLMFLEET_KAFKA_ADMIN_PASSWORD is required}"
umask 077 # the properties carry the admin's password
props=$(mktemp)
trap 'rm -f "$props"' EXIT
# KAFKA_* -> properties, as the image maps them ("___" -> "-", "__" -> "_", "_" -> ".").
for var in $(compgen -e); do
  case "$var" in
    KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_JMX_* | KAFKA_LOG4J_* | KAFKA_JVM_PERFORMANCE_OPTS | \
      KAFKA_GC_LOG_OPTS | KAFKA_TOOLS_LOG4J_LOGLEVEL) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${var#KAFKA_}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "${key,,}" "${!var}" >>"$props"
done
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" --config "$props" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=$LLMFLEET_KAFKA_ADMIN_PASSWORD]"
rm -f "$props"
trap - EXIT
exec /etc/kafka/docker/run
