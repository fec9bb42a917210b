"""Fixtures that give the tests real Kafka, PostgreSQL and Triton.

Where each comes from, in order: an environment variable naming a running one
(LLMFLEET_TEST_KAFKA, LLMFLEET_TEST_POSTGRES_ADMIN_URL, LLMFLEET_TEST_TRITON_HTTP); testcontainers
when a Docker engine answers and has (or can pull) the images (Kafka; LLMFLEET_TEST_KAFKA_IMAGE
names another image); otherwise the project's own local stack, started once per test session and
stopped at its end if this session started it. An engine without the images means the local
stack and one warning, or with LLMFLEET_TEST_REQUIRE_DOCKER set, one clear failure
(tests/support/containers.py).
"""

from __future__ import annotations

import asyncio
import functools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from deploy.local import postgres
from shared.broker import ensure_topics
from tests.support import containers

# Property tests search the same examples on every run, so CI is reproducible; set
# LLMFLEET_HYPOTHESIS_EXPLORE=1 to search new ones (and keep any failure as a worked example).
settings.register_profile("reproducible", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("explore" if os.environ.get("LLMFLEET_HYPOTHESIS_EXPLORE") else "reproducible")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so `-m unit` and `-m integration` select them."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in ("unit", "integration"):
            if kind in parts:
                item.add_marker(getattr(pytest.mark, kind))


@functools.cache
def _docker_answers() -> bool:
    """True when testcontainers can run here: an engine answers and has the images."""
    choice = containers.decide_for_session()
    if choice.reason:
        line = f"testcontainers not used: {choice.reason}"
        if os.environ.get("LLMFLEET_TEST_REQUIRE_DOCKER"):
            pytest.fail(line, pytrace=False)
        warnings.warn(f"{line}; using the local stack", stacklevel=1)
    return choice.use


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a real Kafka broker with the platform's topics created."""
    if address := os.environ.get("LLMFLEET_TEST_KAFKA"):
        asyncio.run(ensure_topics(address))
        yield address
        return
    if _docker_answers():
        with containers.kafka_container(containers.kafka_image(os.environ)) as address:
            asyncio.run(ensure_topics(address))
            yield address
        return
    from deploy.local import kafka

    was_running = kafka.status().get("running", False)
    info = kafka.start()
    asyncio.run(ensure_topics(info["bootstrap"]))
    yield info["bootstrap"]
    if not was_running:
        kafka.stop()


@pytest.fixture(scope="session")
def postgres_info() -> Iterator[dict[str, Any]]:
    """host, port and database of a real PostgreSQL with the per-service roles and schemas."""
    if admin_url := os.environ.get("LLMFLEET_TEST_POSTGRES_ADMIN_URL"):
        yield _provision_external(admin_url)
        return
    was_running = postgres.status().get("running", False)
    info = postgres.start()
    yield info
    if not was_running:
        postgres.stop()


def _provision_external(admin_url: str) -> dict[str, Any]:
    """Create the roles and schemas on a server given by URL (e.g. a CI service container)."""
    from sqlalchemy.engine import make_url

    from deploy.init import provision

    url = make_url(admin_url).set(drivername="postgresql+asyncpg")
    asyncio.run(provision(url.render_as_string(hide_password=False), postgres.role_password))
    return {"host": url.host, "port": url.port, "database": url.database}


@pytest.fixture(scope="session")
def triton_http() -> Iterator[str]:
    """host:port (HTTP) of a real Triton server in explicit model-control mode."""
    if address := os.environ.get("LLMFLEET_TEST_TRITON_HTTP"):
        yield address
        return
    from deploy.local import triton
    from deploy.local.common import read_state, stack_paths

    name = "pytest-0"
    was_running = name in read_state(stack_paths()).get("triton", {})
    info = triton.start_server(name, triton.PROFILES["a100_80gb"])
    yield info["http_url"]
    if not was_running:
        triton.stop_server(name)


@pytest.fixture(scope="session")
def database_url(postgres_info: dict[str, Any]) -> Any:
    """A function service -> the SQLAlchemy URL of that service's own role."""

    def url_for(service: str) -> str:
        return postgres.database_url(service, postgres_info)

    return url_for
