#!/usr/bin/env bash
# The stand-in's /opt/kafka/bin/kafka-storage.sh: Kafka's storage tool on the image's jars, as the
# official script runs it (`kafka-storage.sh format --cluster-id ... --config ...`).
exec java -Xmx256m -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.xml -cp '/opt/kafka/libs/*' \
  kafka.tools.StorageTool "$@"
