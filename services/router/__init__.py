"""The router: Kafka ingress, batching, scored routing, Triton dispatch, results and demand windows."""
