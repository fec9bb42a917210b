"""Kafka and PostgreSQL for a benchmark: used if running, else started for the run and stopped after it.

A benchmark on a fresh clone must not fail for lack of a running stack (`make bench-*` starts
what it needs), and must not stop a stack someone else is using.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deploy.local import kafka, postgres
from shared.broker import ensure_topics


@contextmanager
def kafka_and_postgres() -> Iterator[dict[str, Any]]:
    """The local Kafka and PostgreSQL (their status), started here only if they were not running."""
    kafka_was_running = bool(kafka.status().get("running"))
    postgres_was_running = bool(postgres.status().get("running"))
    started: list[Any] = []
    try:
        info = kafka.start()
        if not kafka_was_running:
            started.append(kafka.stop)
        asyncio.run(ensure_topics(info["bootstrap"]))
        pg = postgres.start()
        if not postgres_was_running:
            started.append(postgres.stop)
        yield {"kafka": info, "postgres": pg}
    finally:
        for stop in reversed(started):
            stop()
