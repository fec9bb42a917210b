# Stands in for apache/kafka where no registry is reachable: Kafka 4.1's jars from Maven Central
# (resolved on the host by `llmfleet install` into .cache/kafka-<version>/libs) on Debian's Java 17.
# It reads the same KAFKA_* variables as the official image and has its start (/etc/kafka/docker/run),
# kafka-storage.sh and the health check's script at the same paths, so deploy/compose.yaml runs unchanged. Build from the repo root.
FROM llmfleet-base:bookworm
ARG KAFKA_VERSION=4.1.2
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 1000 --home-dir /opt/kafka appuser
COPY .cache/kafka-${KAFKA_VERSION}/libs /opt/kafka/libs
COPY deploy/local/kafka/log4j2.xml /opt/kafka/config/log4j2.xml
COPY deploy/compose/local/kafka-run.sh /etc/kafka/docker/run
COPY deploy/compose/local/kafka-storage.sh /opt/kafka/bin/kafka-storage.sh
COPY deploy/compose/local/kafka-broker-api-versions.sh /opt/kafka/bin/kafka-broker-api-versions.sh
RUN mkdir -p /var/lib/kafka/data && chown -R appuser /var/lib/kafka /opt/kafka/config
USER appuser
EXPOSE 9092 9093
CMD ["/etc/kafka/docker/run"]
