"""The secure stack: Kafka with SASL_SSL, SCRAM-SHA-512 and ACLs per service; PostgreSQL without trust.

A secure broker of this module's own (a scratch run folder, its own ports, CA and passwords) is
started once and stopped after; the session's shared plaintext broker is never touched. The
request path runs the real router against it and the shared Triton server `pytest-0`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from asyncpg.exceptions import InvalidAuthorizationSpecificationError
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from deploy import init, kafka_acl
from deploy.local import kafka, postgres
from deploy.local.common import StackPaths, stack_paths
from llmfleet.client import FleetClient
from services.router.app import create_app, migrate
from services.router.settings import RouterSettings, StaticServer
from shared import triton
from shared.broker import ensure_topics
from shared.events import ALLOCATIONS, INFERENCE_REQUESTS, INFERENCE_RESULTS
from shared.events.ownership import PRINCIPALS, TOPIC_ACCESS
from shared.kafka_security import PLAINTEXT, KafkaProtocol, KafkaSecurity

pytestmark = pytest.mark.integration


def _scratch(tag: str) -> StackPaths:
    # Under the repo's cache, not /tmp: PostgreSQL runs as `postgres` and must reach its folder.
    shared = stack_paths()
    run = shared.run / f"scratch-{tag}-{uuid.uuid4().hex[:8]}"
    (run / "logs").mkdir(parents=True)
    return StackPaths(cache=shared.cache, run=run)


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[dict[str, Any]]:
    """A SASL_SSL broker of this module's own, with the platform's topics and ACLs."""
    paths = _scratch("secure-kafka")
    try:
        info = kafka.start(paths, secure=True)
        asyncio.run(ensure_topics(info["bootstrap"], security=kafka.security_for(info, "admin")))
        yield info
    finally:
        kafka.stop(paths)
        shutil.rmtree(paths.run, ignore_errors=True)


async def _produce(bootstrap: str, security: KafkaSecurity, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **security.client_options())
    try:
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait(topic, b"{}", key=b"probe"), 20)
    finally:
        await producer.stop()


async def test_a_plaintext_client_is_refused(secure_kafka):
    with pytest.raises(KafkaConnectionError):
        await _produce(secure_kafka["bootstrap"], PLAINTEXT, INFERENCE_RESULTS.name)


async def test_a_wrong_password_is_refused(secure_kafka):
    router = kafka.security_for(secure_kafka, "router")
    wrong = KafkaSecurity(KafkaProtocol.SASL_SSL, "router", router.password + "x", router.cafile)
    with pytest.raises(KafkaConnectionError):
        await _produce(secure_kafka["bootstrap"], wrong, INFERENCE_RESULTS.name)


async def test_a_service_writes_its_own_topics_and_no_other(secure_kafka):
    """The injection the issue names: the router may not announce a server (ServerAllocated)."""
    router = kafka.security_for(secure_kafka, "router")
    await _produce(secure_kafka["bootstrap"], router, INFERENCE_RESULTS.name)  # its own: accepted
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(secure_kafka["bootstrap"], router, ALLOCATIONS.name)
    with pytest.raises(TopicAuthorizationFailedError):  # nor may a client forge results
        await _produce(secure_kafka["bootstrap"], kafka.security_for(secure_kafka, "client"), INFERENCE_RESULTS.name)


async def test_only_the_router_reads_the_prompts(secure_kafka):
    """What the issue names first: anyone could read every prompt. Here the monitor may not, by name or by group."""
    monitor = kafka.security_for(secure_kafka, "monitor")
    consumer = AIOKafkaConsumer(
        INFERENCE_REQUESTS.name,
        bootstrap_servers=secure_kafka["bootstrap"],
        group_id=f"llmfleet-monitor-test-{uuid.uuid4().hex[:6]}",  # a group it may use
        **monitor.client_options(),
    )
    await consumer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(consumer.getmany(timeout_ms=5000), 30)
    finally:
        await consumer.stop()


def test_the_acls_job_applies_again_as_the_admin(secure_kafka):
    """`python -m deploy.init acls` on a broker that has its users and ACLs already (kafka.start applied them):
    it succeeds twice, adds no ACL twice, and the principals still log in with their passwords."""
    bootstrap, admin = secure_kafka["bootstrap"], kafka.security_for(secure_kafka, "admin")
    env = kafka.security_env(secure_kafka, "admin", "LLMFLEET_") | {"LLMFLEET_KAFKA_BOOTSTRAP": bootstrap}
    env |= {f"LLMFLEET_{p.upper()}_KAFKA_PASSWORD": kafka.security_for(secure_kafka, p).password for p in PRINCIPALS}
    expected = f"kafka users and ACLs applied: {len(PRINCIPALS)} users, {len(kafka_acl.acl_bindings())} ACLs"
    for _ in range(2):
        result = CliRunner().invoke(init.app, ["acls"], env=env)
        assert result.exit_code == 0, (result.output, result.exception)
        assert expected in result.output
    client = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": admin.username,
            "sasl.password": admin.password,
            "ssl.ca.location": admin.cafile,
        },
        # librdkafka's client outlives its last reference and goes on reconnecting after the broker
        # stops: its lines go to logging, not into later tests' stderr.
        logger=logging.getLogger("tests.librdkafka"),
    )
    any_name: Any = None  # a filter's None matches any name, principal and host (the annotations say str)
    every = AclBindingFilter(
        ResourceType.ANY, any_name, ResourcePatternType.ANY, any_name, any_name, AclOperation.ANY, AclPermissionType.ANY
    )
    assert len(client.describe_acls(every).result(timeout=30)) == len(kafka_acl.acl_bindings())
    asyncio.run(_produce(bootstrap, kafka.security_for(secure_kafka, "router"), INFERENCE_RESULTS.name))


def test_a_service_may_not_apply_users_or_acls(secure_kafka):
    """Only a super user alters SCRAM users and ACLs; apply says which of them failed."""
    router, client = kafka.security_for(secure_kafka, "router"), kafka.security_for(secure_kafka, "client")
    bindings = kafka_acl.principal_bindings("client", TOPIC_ACCESS["client"])[:1]
    with pytest.raises(RuntimeError, match="SCRAM user client: ") as failed:  # its own password, were it allowed
        kafka_acl.apply(secure_kafka["bootstrap"], router, {"client": client.password}, bindings, timeout=20)
    assert "ACL AclBinding(" in str(failed.value) and "AUTHORIZATION_FAILED" in str(failed.value)


@pytest.fixture
def router_url(database_url: Any) -> str:
    """The router's database URL, its schema migrated (synchronously: migrate runs its own event loop)."""
    url = str(database_url("router"))
    migrate(RouterSettings(database_url=url))
    return url


async def test_a_request_flows_through_the_router_on_the_secure_broker(secure_kafka, router_url, triton_http):
    """The router as its own principal (requests, allocations, results, its groups) serves a client's request."""
    url = router_url
    await asyncio.to_thread(triton.load_model, triton_http, "tinylm")  # the session's server starts empty
    router = kafka.security_for(secure_kafka, "router")
    settings = RouterSettings(
        kafka_bootstrap=secure_kafka["bootstrap"],
        kafka_security_protocol=router.protocol,
        kafka_sasl_username=router.username,
        kafka_sasl_password=router.password,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
        kafka_ssl_cafile=router.cafile,
        database_url=url,
        consumer_group=f"llmfleet-router-test-{uuid.uuid4().hex[:8]}",  # under the router's group prefix
        instance_id=uuid.uuid4().hex[:6],
        health_interval_s=0.3,
        cold_start_models=[],
        static_servers=[
            StaticServer(server_id="pytest-0", endpoint=triton_http, gpu_type="a100_80gb", models={"tinylm": "tinylm"})
        ],
    )
    app, _ = create_app(settings)
    await app.start()
    try:
        client = kafka.security_for(secure_kafka, "client")
        async with FleetClient(secure_kafka["bootstrap"], source="security-test", security=client) as fleet:
            result = await fleet.complete("tinylm", "Hello", max_tokens=4, timeout=90)
    finally:
        await app.stop()
    assert result.status == "ok", result
    assert result.server_id == "pytest-0"


@pytest.fixture(scope="module")
def scratch_postgres() -> Iterator[tuple[StackPaths, dict[str, Any]]]:
    """A PostgreSQL of this module's own, with TLS, started once (the shared one is never restarted)."""
    paths = _scratch("secure-pg")
    try:
        yield paths, postgres.start(paths, secure=True)
    finally:
        postgres.stop(paths)
        postgres.remove_data(paths)
        shutil.rmtree(paths.run, ignore_errors=True)


def _psql_without_password(
    info: dict[str, Any], host: str, user: str, run_as: str | None
) -> subprocess.CompletedProcess[str]:
    cmd = [str(postgres.PG_BIN / "psql"), "-w", "-h", host, "-p", str(info["port"]), "-U", user, "-d", "llmfleet"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if not host.startswith("/"):
        env["PGSSLMODE"] = "require"  # the server takes TCP with TLS only: reach its password check
    return subprocess.run([*cmd, "-c", "select 1"], capture_output=True, text=True, env=env, user=run_as, check=False)


def test_postgres_refuses_a_connection_without_a_password(scratch_postgres):
    _, info = scratch_postgres
    socket_user = "postgres" if os.geteuid() == 0 else None  # the socket folder admits only PostgreSQL's user
    for host, user, run_as in (("127.0.0.1", "monitor", None), (info["socket_dir"], postgres.SUPERUSER, socket_user)):
        refused = _psql_without_password(info, host, user, run_as)
        assert refused.returncode != 0 and "no password supplied" in refused.stderr, (host, refused.stderr)


def test_postgres_socket_folder_admits_only_its_owner(scratch_postgres):
    _, info = scratch_postgres
    folder = Path(info["socket_dir"]).stat()
    assert stat.S_IMODE(folder.st_mode) == 0o700
    # PostgreSQL runs as `postgres` when the stack is started by root, else as the user who starts it.
    owner = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert folder.st_uid == owner


async def test_postgres_takes_scram_over_tls_and_refuses_tcp_without_it(scratch_postgres, monkeypatch):
    _, info = scratch_postgres
    monkeypatch.setenv("PGSSLROOTCERT", info["ssl_rootcert"])  # how services get it: postgres.ssl_env
    url = postgres.database_url("monitor", info)
    assert url.endswith("?ssl=verify-full")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            query = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
            assert (await connection.execute(sa.text(query))).scalar_one() is True
    finally:
        await engine.dispose()
    plain = create_async_engine(url.replace("ssl=verify-full", "ssl=disable"))
    try:
        with pytest.raises((DBAPIError, InvalidAuthorizationSpecificationError), match="no encryption"):
            async with plain.connect():
                pass
    finally:
        await plain.dispose()


def test_a_data_folder_made_with_trust_is_upgraded_on_start(scratch_postgres):
    """A folder initialised before (pg_hba.conf with `trust`) gets SCRAM everywhere at its next start."""
    paths, info = scratch_postgres
    postgres.stop(paths)
    hba = Path(info["socket_dir"]) / "data" / "pg_hba.conf"
    hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    restarted = postgres.start(paths, secure=True)
    assert "trust" not in hba.read_text()
    refused = _psql_without_password(restarted, "127.0.0.1", "monitor", None)
    assert refused.returncode != 0 and "no password supplied" in refused.stderr
