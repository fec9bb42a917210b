"""The local stack: real Kafka, PostgreSQL and Triton started as processes on 127.0.0.1."""
