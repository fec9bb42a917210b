#!/usr/bin/env bash
# The stand-in's /etc/kafka/docker/run (the official image's start): KAFKA_* variables ->
# server.properties, as the official apache/kafka image maps them (KAFKA_LOG_DIRS -> log.dirs;
# "__" -> "_", "___" -> "-"); format the KRaft storage once; run.
set -euo pipefail
umask 077 # a secure broker's properties carry its own login's password
conf=/opt/kafka/config/server.properties
: >"$conf"
for var in $(compgen -e); do
  case "$var" in
    KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_VERSION) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${var#KAFKA_}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "${key,,}" "${!var}" >>"$conf"
done
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "${CLUSTER_ID:?CLUSTER_ID is required}" -c "$conf"
common=(-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.xml -cp '/opt/kafka/libs/*')
# shellcheck disable=SC2086  # heap and extra options are word lists, as in the official image
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} "${common[@]}" ${KAFKA_OPTS:-} kafka.Kafka "$conf"
