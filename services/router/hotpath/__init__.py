"""The router's hot path: raw aiokafka in, admission and batches, Triton, results out, offsets committed."""
