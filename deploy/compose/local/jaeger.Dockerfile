# Stands in for jaegertracing/jaeger (v2) where no registry is reachable: the same binary, built
# from the Go module proxy on the host (`go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.75.0`,
# which is Jaeger v2) into .cache/bin, with a wget for the health check. Build from the repo root.
FROM llmfleet-base:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/*
COPY .cache/bin/jaeger /usr/local/bin/jaeger
USER 10001
EXPOSE 4317 4318 16686 13133
ENTRYPOINT ["/usr/local/bin/jaeger"]
