"""Apache Kafka 4 in KRaft mode (one combined broker+controller) as a local process on 127.0.0.1.

The jars are resolved once from Maven Central into the cache (`deploy/local/kafka/pom.xml`); the
data folder lives in the run dir and is formatted only once, so topics and committed offsets
survive a stop, a restart and a SIGKILL. Installing and formatting live in `kafka_install`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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

__all__ = ["KAFKA_VERSION", "ensure_installed", "kill", "start", "status", "stop"]

NODE_ID = 1
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
READY_TIMEOUT = 120.0
READY_LINE = "Kafka Server started"  # logged by KafkaRaftServer once broker and controller are up
JVM_OPTS = ("-Xms512m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true")


def start(paths: StackPaths | None = None) -> dict[str, Any]:
    """Start the broker (idempotent), wait until it answers metadata requests; return its address."""
    paths = paths or stack_paths()
    with locked_state(paths) as state:
        current = state.get("kafka")
        if current and _ours(current) and tcp_open(current["port"]):
            return dict(current)
        if current and _ours(current):
            stop_pid(current["pid"])  # alive but not answering: a hung broker holds the data dir lock
            _wait_released(current)
        libs = ensure_installed(paths)
        home = paths.run / "kafka"
        home.mkdir(parents=True, exist_ok=True)
        config, data = home / "server.properties", home / "data"
        preferred, preferred_controller = _preferred_ports(current, config)
        port = free_port(preferred)
        controller_port = free_port(preferred_controller, taken=[port])
        config.write_text(_server_properties(port, controller_port, data))
        format_storage(libs, config, data)
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
        try:
            _wait_ready(pid, port, bootstrap, log, offset)
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
        }
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


def _server_properties(port: int, controller_port: int, data: Path) -> str:
    settings = {
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
    header = "# Written by deploy/local/kafka.py on every start; edit that file, not this one.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def _preferred_ports(recorded: dict[str, Any] | None, config: Path) -> tuple[int, int]:
    """The ports of the last run (state, else the last server.properties), so a restart keeps its address."""
    if recorded:
        return int(recorded["port"]), int(recorded["controller_port"])
    ports = {"PLAINTEXT": DEFAULT_PORT, "CONTROLLER": DEFAULT_CONTROLLER_PORT}
    if config.exists():
        for line in config.read_text().splitlines():
            if line.startswith("listeners="):
                for listener in line.removeprefix("listeners=").split(","):
                    name, _, address = listener.partition("://")
                    if name in ports and address.rpartition(":")[2].isdigit():
                        ports[name] = int(address.rpartition(":")[2])
    return ports["PLAINTEXT"], ports["CONTROLLER"]


def _wait_ready(pid: int, port: int, bootstrap: str, log: Path, offset: int) -> None:
    """Wait for the "Kafka Server started" line and an open port, then for a real metadata answer."""
    deadline = time.monotonic() + READY_TIMEOUT

    def started() -> bool:
        if not pid_alive(pid):
            raise RuntimeError(f"Kafka exited during startup; see {log}:\n{_log_since(log, offset)[-3000:]}")
        return tcp_open(port) and READY_LINE in _log_since(log, offset)

    wait_until(started, READY_TIMEOUT, "Kafka broker", log)
    wait_until(lambda: _broker_answers(bootstrap), max(deadline - time.monotonic(), 15.0), "Kafka metadata", log)


def _log_since(log: Path, offset: int) -> str:
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def _broker_answers(bootstrap: str) -> bool:
    """One metadata round trip through aiokafka's admin client, in which the broker lists itself."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
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
    print({"up": start, "down": stop, "status": status, "kill": kill}[action]())
