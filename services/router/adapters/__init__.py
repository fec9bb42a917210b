"""The router's I/O: tables, repository, Kafka and Triton clients, metrics."""
