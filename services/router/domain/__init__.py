"""The router's functional core: batching, scoring, registry, admission, cold start, offsets, demand."""
