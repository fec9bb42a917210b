#!/usr/bin/env bash
# The health check's probe, without a JVM: send Kafka an ApiVersions request (v0) and require an
# answer to it (correlation id 1) with error code 0. Usage as the official script:
#   kafka-broker-api-versions.sh --bootstrap-server host:port
set -euo pipefail
[[ ${1:-} == --bootstrap-server && -n ${2:-} ]] || { echo "usage: $0 --bootstrap-server host:port" >&2; exit 2; }
host=${2%:*} port=${2##*:}
exec 3<>"/dev/tcp/$host/$port"
# size 12 | api_key 18 | api_version 0 | correlation_id 1 | client_id "hc"
printf '\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x02hc' >&3
reply=$(timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
exec 3>&-
[[ ${reply:8:12} == 000000010000 ]] || { echo "no ApiVersions answer from $2 (got '$reply')" >&2; exit 1; }
echo "$2 answers ApiVersions"
