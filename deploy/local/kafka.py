"""Apache Kafka 4 in KRaft mode (one combined broker+controller) as a local process on 127.0.0.1.

The jars are resolved once from Maven Central into the cache (`deploy/local/kafka/pom.xml`); the
data folder lives in the run dir and is formatted only once, so topics and committed offsets
survive a stop, a restart and a SIGKILL. Installing and formatting live in `kafka_install`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deploy import kafka_acl
from deploy.local.common import (
    StackPaths,
    free_port,
    kill_pid,
    locked_state,
    pid_alive,
    read_state,
    spawn,
    stack_paths,
    stop_pid,
    tcp_open,
    wait_released,
    wait_until,
)
from deploy.local.kafka_install import KAFKA_VERSION, STATIC, ensure_installed, format_storage, java_binary
from deploy.local.secure import ADMIN, BROKER_SUBJECT, SecureMaterial, ensure_material
from shared.kafka_security import PLAINTEXT, KafkaProtocol, KafkaSecurity

__all__ = ["KAFKA_VERSION", "ensure_installed", "kill", "security_env", "security_for", "start", "status", "stop"]

NODE_ID = 1
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
# The secure broker (SASL_SSL) has its own data folder and ports, so it never takes the plaintext one's.
DEFAULT_SECURE_PORT = 19093
DEFAULT_SECURE_CONTROLLER_PORT = 19094
READY_TIMEOUT = 120.0
READY_LINE = "Kafka Server started"  # logged by KafkaRaftServer once broker and controller are up
JVM_OPTS = ("-Xms512m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true")


def start(paths: StackPaths | None = None, secure: bool = False) -> dict[str, Any]:
    """Start the broker (idempotent), wait until it answers metadata requests; return its address.

    `secure`: SASL_SSL with SCRAM-SHA-512 and ACLs per service (see `deploy/local/secure.py`), in a
    data folder of its own; a running broker of the other kind must be stopped first.
    """
    paths = paths or stack_paths()
    with locked_state(paths) as state:
        current = state.get("kafka")
        if current and _ours(current) and bool(current.get("secure")) != secure:
            raise RuntimeError(f"a {'secure' if current.get('secure') else 'plaintext'} broker runs; stop it first")
        material = ensure_material(paths) if secure else None
        if current and _ours(current) and tcp_open(current["port"]):
            return dict(current)
        if current and _ours(current):
            stop_pid(current["pid"])  # alive but not answering: a hung broker holds the data dir lock
            _wait_released(current)
        libs = ensure_installed(paths)
        home = paths.run / ("kafka-secure" if secure else "kafka")
        home.mkdir(parents=True, exist_ok=True)
        config, data = home / "server.properties", home / "data"
        preferred, preferred_controller = _preferred_ports(current, config, secure)
        port = free_port(preferred)
        controller_port = free_port(preferred_controller, taken=[port])
        config.touch(mode=0o600)  # the secure one holds the admin's password (inter-broker login)
        config.write_text(_server_properties(port, controller_port, data, material))
        format_storage(libs, config, data, _scram_users(material))
        log = paths.logs / "kafka.log"
        offset = log.stat().st_size if log.exists() else 0
        cmd = [
            java_binary(),
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={STATIC / 'log4j2.xml'}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(config),
        ]
        pid = spawn(cmd, log, cwd=home)
        bootstrap = f"127.0.0.1:{port}"
        admin = material.kafka_security(ADMIN) if material else PLAINTEXT
        try:
            _wait_ready(pid, port, bootstrap, log, offset, admin)
            if material is not None:
                _apply_acls(material, bootstrap)
        except BaseException:
            stop_pid(pid)
            raise
        info = {
            "pid": pid,
            "bootstrap": bootstrap,
            "port": port,
            "controller_port": controller_port,
            "log": str(log),
            "version": KAFKA_VERSION,
            "config": str(config),
            "secure": secure,
            "security_protocol": "SASL_SSL" if secure else "PLAINTEXT",
        }
        if material is not None:
            info |= {"ssl_cafile": str(material.ca), "credentials": str(material.folder / "credentials.json")}
        state["kafka"] = info
        return dict(info)


def stop(paths: StackPaths | None = None) -> None:
    """Stop the broker (controlled shutdown on SIGTERM) and forget it; the data folder stays."""
    paths = paths or stack_paths()
    with locked_state(paths) as state:
        info = state.pop("kafka", None)
        if info and _ours(info):
            stop_pid(info["pid"], timeout=60)
            _wait_released(info)


def kill(paths: StackPaths | None = None) -> None:
    """SIGKILL the broker (for failure tests); the state stays, so `start` restarts it on the same port."""
    info = read_state(paths or stack_paths()).get("kafka")
    if not info or not _ours(info):
        return
    kill_pid(info["pid"])
    _wait_released(info)


def status(paths: StackPaths | None = None) -> dict[str, Any]:
    """What is recorded for the broker, and whether it is running and accepts connections."""
    info = dict(read_state(paths or stack_paths()).get("kafka") or {})
    info["running"] = bool(info) and _ours(info) and tcp_open(info["port"])
    return info


def security_for(info: Mapping[str, Any], principal: str) -> KafkaSecurity:
    """How `principal` (a service, `client` or `admin`) authenticates to the recorded broker."""
    if not info.get("secure"):
        return PLAINTEXT
    passwords = json.loads(Path(info["credentials"]).read_text())
    return KafkaSecurity(KafkaProtocol.SASL_SSL, principal, passwords[principal], str(info["ssl_cafile"]))


def security_env(info: Mapping[str, Any], principal: str, prefix: str) -> dict[str, str]:
    """A principal's `<prefix>KAFKA_SECURITY_PROTOCOL`, `_SASL_USERNAME`, `_SASL_PASSWORD`, `_SSL_CAFILE`."""
    security = security_for(info, principal)
    if not security.secure:
        return {}
    return {
        prefix + "KAFKA_SECURITY_PROTOCOL": security.protocol.value,
        prefix + "KAFKA_SASL_USERNAME": security.username,
        prefix + "KAFKA_SASL_PASSWORD": security.password,
        prefix + "KAFKA_SSL_CAFILE": security.cafile,
    }


def _scram_users(material: SecureMaterial | None) -> dict[str, str]:
    """The SCRAM users written at format time: the admin (without whom nothing could add the others)."""
    return {ADMIN: material.passwords[ADMIN]} if material else {}


def _apply_acls(material: SecureMaterial, bootstrap: str) -> None:
    """Every principal's SCRAM password and the ACLs, as the admin; and the admin's file for Kafka's Java tools."""
    admin = material.kafka_security(ADMIN)
    properties = material.folder / "admin-client.properties"
    properties.touch(mode=0o600)  # it holds the admin's password
    properties.write_text(kafka_acl.admin_client_properties(admin, bootstrap))
    kafka_acl.apply(bootstrap, admin, material.passwords, kafka_acl.acl_bindings())


def _server_properties(port: int, controller_port: int, data: Path, material: SecureMaterial | None = None) -> str:
    settings: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dir": str(data),
        "num.partitions": 3,
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        # After a SIGKILL the controller refuses the broker's re-registration until the old
        # session expires (default 9 s of a 2 s heartbeat); shorter keeps crash tests quick.
        "broker.session.timeout.ms": 6000,
        "broker.heartbeat.interval.ms": 1000,
    }
    if material is not None:
        settings |= _secure_properties(port, controller_port, material)
    header = "# Written by deploy/local/kafka.py on every start; edit that file, not this one.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def _secure_properties(port: int, controller_port: int, material: SecureMaterial) -> dict[str, object]:
    """SASL_SSL (SCRAM-SHA-512) for clients, mutual TLS for the controller, ACLs with deny by default."""
    admin_login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{material.passwords[ADMIN]}";'
    )
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        # KRaft's controller listener cannot use SCRAM (its users live in the metadata it serves),
        # so it takes only clients with a certificate from our CA: the broker itself.
        "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        "listener.name.controller.ssl.client.auth": "required",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": admin_login,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(material.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN};User:{BROKER_SUBJECT}",
    }


def _preferred_ports(recorded: dict[str, Any] | None, config: Path, secure: bool = False) -> tuple[int, int]:
    """The ports of the last run (state, else the last server.properties), so a restart keeps its address."""
    if recorded:
        return int(recorded["port"]), int(recorded["controller_port"])
    client = "SASL_SSL" if secure else "PLAINTEXT"
    ports = {client: DEFAULT_SECURE_PORT if secure else DEFAULT_PORT}
    ports["CONTROLLER"] = DEFAULT_SECURE_CONTROLLER_PORT if secure else DEFAULT_CONTROLLER_PORT
    if config.exists():
        for line in config.read_text().splitlines():
            if line.startswith("listeners="):
                for listener in line.removeprefix("listeners=").split(","):
                    name, _, address = listener.partition("://")
                    if name in ports and address.rpartition(":")[2].isdigit():
                        ports[name] = int(address.rpartition(":")[2])
    return ports[client], ports["CONTROLLER"]


def _wait_ready(pid: int, port: int, bootstrap: str, log: Path, offset: int, security: KafkaSecurity) -> None:
    """Wait for the "Kafka Server started" line and an open port, then for a real metadata answer."""
    deadline = time.monotonic() + READY_TIMEOUT

    def started() -> bool:
        if not pid_alive(pid):
            raise RuntimeError(f"Kafka exited during startup; see {log}:\n{_log_since(log, offset)[-3000:]}")
        return tcp_open(port) and READY_LINE in _log_since(log, offset)

    wait_until(started, READY_TIMEOUT, "Kafka broker", log)
    wait_until(
        lambda: _broker_answers(bootstrap, security), max(deadline - time.monotonic(), 15.0), "Kafka metadata", log
    )


def _log_since(log: Path, offset: int) -> str:
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def _broker_answers(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> bool:
    """One metadata round trip through aiokafka's admin client, in which the broker lists itself."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **security.client_options())
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return any(broker["node_id"] == NODE_ID for broker in cluster["brokers"])
        finally:
            await admin.close()

    try:  # a thread of its own, so that this works when called from inside a running event loop
        with ThreadPoolExecutor(max_workers=1) as pool:
            return bool(pool.submit(asyncio.run, probe()).result(timeout=20))
    except (KafkaError, OSError, TimeoutError):  # not ready yet: the caller retries
        return False


def _ours(info: dict[str, Any]) -> bool:
    """True while the recorded pid is alive and still runs this stack's broker (not a reused pid)."""
    pid = int(info["pid"])
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(info.get("config", "")).encode() in cmdline


def _wait_released(info: dict[str, Any]) -> None:
    wait_released(int(info["pid"]), (int(info["port"]), int(info["controller_port"])))


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "status"
    actions: dict[str, Callable[[], object]] = {"up": start, "down": stop, "status": status, "kill": kill}
    print(actions[action]())
