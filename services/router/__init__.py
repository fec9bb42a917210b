"""The router: Kafka ingress, batching, scored routing and Triton dispatch."""
