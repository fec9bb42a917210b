"""A real router and Triton (echo, tinylm) and two gateway replicas, on an event loop in a thread of their own.

The official `openai` SDK drives the gateways from the test's thread: its sync client blocks that
thread, so the services cannot share the test's loop. Requests go through a request topic of
these tests' own, so other engineers' routers never see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from deploy.init import provision
from deploy.local import postgres, triton
from deploy.local.common import free_port
from services.gateway.app import create_app, migrate
from services.gateway.domain.chat import ChatTemplate
from services.gateway.domain.keys import ApiKey
from services.gateway.domain.limits import Limits
from services.gateway.jobs import GatewayApp
from services.gateway.settings import GatewaySettings, ModelEntry
from services.gateway.use_cases import keys as admin
from services.router.app import migrate as migrate_router
from services.router.settings import RouterSettings
from tests.integration.helpers import running
from tests.integration.router.conftest import private_topic, router_app, static
from tests.support.databases import admin_url

T = TypeVar("T")
TRITON = "gateway-t1"
UNLIMITED = Limits()


class Host:
    """An event loop running in a thread: the services live there, tests hand it coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-tests", daemon=True)
        self.thread.start()
        self.stack = contextlib.AsyncExitStack()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        """Run `coroutine` on the host's loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.call(self.stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Replica:
    """One running gateway: its app, and the base URL the SDK uses."""

    app: GatewayApp
    base_url: str


@contextlib.asynccontextmanager
async def gateway_app(settings: GatewaySettings) -> AsyncIterator[GatewayApp]:
    """A gateway app started for the block (HTTP serving), stopped after it."""
    _app, gateway = create_app(settings)
    async with running(gateway.runtime.broker):
        await gateway.start()
        gateway.runtime.started = True
        await asyncio.wait_for(gateway.serving_http.wait(), 30)
        try:
            yield gateway
        finally:
            await gateway.stop()
    await gateway.runtime.close()


def gateway_settings(kafka_bootstrap: str, url: str, requests_topic: str, **overrides: Any) -> GatewaySettings:
    """A replica of its own (instance id, port) on the tests' request topic."""
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": url,
        "instance_id": f"test-{uuid.uuid4().hex[:8]}",
        "http_port": free_port(18080),
        "requests_topic": requests_topic,
        "follow_allocations": False,
        "models": {"echo": ModelEntry(), "tinylm": ModelEntry(template=ChatTemplate.CHATML, tier="hot")},
        "key_cache_s": 0.0,
        "request_timeout_s": 30.0,
        "reap_interval_s": 3600.0,  # the tests reap themselves
    }
    return GatewaySettings(**(values | overrides))


@pytest.fixture(scope="session")
def gateway_database(postgres_info: dict[str, Any]) -> str:
    """The gateway role's URL, its role and schema provisioned (idempotent) and migrated."""
    asyncio.run(provision(admin_url(postgres_info, postgres_info["database"]), postgres.role_password))
    url = postgres.database_url("gateway", postgres_info)
    migrate(GatewaySettings(database_url=url))
    return url


@pytest.fixture(scope="session")
def gateway_triton() -> Iterator[str]:
    """A Triton server of these tests' own with echo, tinylm and its streaming variant."""
    models = ["echo", "tinylm", "tinylm_stream"]
    info = triton.start_server(TRITON, triton.PROFILES["h100_80gb"], models=models, region="us-east-1")
    try:
        yield str(info["http_url"])
    finally:
        triton.stop_server(TRITON)


@pytest.fixture(scope="session")
def host() -> Iterator[Host]:
    running_host = Host()
    try:
        yield running_host
    finally:
        running_host.close()


@pytest.fixture(scope="session")
def replicas(
    host: Host, kafka_bootstrap: str, database_url: Any, gateway_database: str, gateway_triton: str
) -> Iterator[list[Replica]]:
    """A router on a private request topic, and two gateway replicas in front of it."""
    with private_topic(kafka_bootstrap, "test.gateway.requests") as topic:
        router_url = database_url("router")
        migrate_router(RouterSettings(database_url=router_url))
        router = RouterSettings(
            kafka_bootstrap=kafka_bootstrap,
            database_url=router_url,
            consumer_group=f"test-gateway-router-{uuid.uuid4().hex[:8]}",
            instance_id=uuid.uuid4().hex[:6],
            requests_topic=topic,
            static_servers=static({"router-t1": gateway_triton}, ("router-t1",)),
            follow_allocations=False,
            cold_start_models=[],
            reply_topic_prefixes=["inference.replies."],
        )
        host.call(host.stack.enter_async_context(router_app(router)))
        started = []
        for _ in range(2):
            settings = gateway_settings(kafka_bootstrap, gateway_database, topic)
            app = host.call(host.stack.enter_async_context(gateway_app(settings)))
            started.append(Replica(app, f"http://127.0.0.1:{settings.http_port}/v1"))
        yield started
        host.call(host.stack.aclose())


@dataclass
class Keys:
    """Makes tenants and keys through the gateway's own use cases (as `llmfleet keys create` does)."""

    host: Host
    app: GatewayApp

    def new(
        self, tenant_limits: Limits = UNLIMITED, key_limits: Limits = UNLIMITED, scopes: tuple[str, ...] = ()
    ) -> str:
        """A fresh tenant with one key; the key's secret."""
        name = f"test-{uuid.uuid4().hex[:10]}"
        self.host.call(admin.create_tenant(self.app.store, name, tenant_limits))
        created = self.host.call(admin.create_key(self.app.store, name, "test", scopes, key_limits))
        return created.secret

    def list(self) -> list[ApiKey]:
        """Every key."""
        return self.host.call(admin.list_keys(self.app.store))

    def another(self, tenant: str) -> str:
        """A second key of `tenant`; its secret."""
        return self.host.call(admin.create_key(self.app.store, tenant, "another")).secret

    def revoke(self, secret: str) -> None:
        """Revoke the key whose secret this is."""
        listed = self.host.call(admin.list_keys(self.app.store))
        key_id = next(k.key_id for k in listed if secret.startswith(k.prefix) and k.revoked_at is None)
        assert self.host.call(admin.revoke_key(self.app.store, key_id)) == 1


@pytest.fixture(scope="session")
def keys(host: Host, replicas: list[Replica]) -> Keys:
    return Keys(host, replicas[0].app)


@pytest.fixture
def same_minute() -> None:
    """Start a limits test early in a minute: limits count per minute, and a boundary mid-test resets them."""
    now = datetime.now(UTC)
    if now.second >= 50:
        time.sleep(60 - now.second - now.microsecond / 1e6 + 0.1)
