"""The chaos run's own stack: PostgreSQL, Kafka and one Triton server under the run folder.

Everything is started through deploy/local (free ports, its own data folders and state file),
so the run never touches a running platform or the tests' stack; every stop goes by the pid that
the run's state file recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.chaos import poison
from benchmarks.chaos.traffic import REPLY_PARTITIONS
from deploy.local import kafka, postgres, triton
from deploy.local.common import StackPaths, free_port, pid_alive, read_state, stack_paths, stop_pid

TRITON_NAME = "chaos-triton-0"
TRITON_PROFILE = "h100_80gb"
TRITON_MODELS = ("echo", "tinylm")
TRITON_BASE_PORT = 18100
KAFKA_BASE_PORT = 19092  # away from the default 8000s that the tests' and the demo's servers take


def chaos_paths(folder: Path) -> StackPaths:
    """The run's own stack under `folder/stack`, sharing the downloads cache."""
    (folder / "stack" / "logs").mkdir(parents=True, exist_ok=True)
    return StackPaths(cache=stack_paths().cache, run=(folder / "stack").resolve())


class ChaosStack:
    """Start, break and mend the run's PostgreSQL, Kafka and Triton server."""

    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths
        self.info: dict[str, Any] = {}
        self.triton: dict[str, Any] = {}

    @property
    def bootstrap(self) -> str:
        """Kafka's address."""
        return str(self.info["kafka"]["bootstrap"])

    def start(self) -> None:
        """PostgreSQL and Kafka (with the platform's topics), then the Triton server with its models."""
        from llmfleet import platform

        for attempt in (1, 2):  # a stack starting beside this one can take a port between check and bind
            self._seed_kafka_ports()
            try:
                self.info = platform.start_stack(self.paths)
                break
            except (RuntimeError, TimeoutError) as error:
                if attempt == 2:
                    raise
                print(f"stack start failed ({str(error)[:200]}...); trying again", flush=True)
                (self.paths.run / "kafka" / "server.properties").unlink(missing_ok=True)
        self.start_triton()

    def _seed_kafka_ports(self) -> None:
        """Make the broker's first start prefer free ports away from 9092/9093 (which other stacks take)."""
        config = self.paths.run / "kafka" / "server.properties"
        if config.exists():
            return
        config.parent.mkdir(parents=True, exist_ok=True)
        port = free_port(KAFKA_BASE_PORT)
        controller = free_port(port + 1, taken=[port])
        config.write_text(f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n")

    def start_triton(self) -> dict[str, Any]:
        """Start (or restart, at the same address) the Triton server and load its models."""
        profile = triton.PROFILES[TRITON_PROFILE]
        self.triton = triton.start_server(
            TRITON_NAME, profile, TRITON_MODELS, paths=self.paths, base_port=TRITON_BASE_PORT, region="us-east-1"
        )
        return self.triton

    async def create_reply_topics(self) -> None:
        """The reply topics that some requests name (the others name topics that do not exist)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            topics = [NewTopic(t, num_partitions=REPLY_PARTITIONS, replication_factor=1) for t in poison.REPLY_TOPICS]
            await admin.create_topics(topics)
        finally:
            await admin.close()

    def _recorded(self, part: str) -> dict[str, Any]:
        return dict(read_state(self.paths).get(part) or {})

    def kafka_down(self, crash: bool) -> None:
        """Stop the broker by its pid (SIGKILL, or SIGTERM for a controlled shutdown); its record and data stay."""
        if crash:
            kafka.kill(self.paths)
            return
        info = self._recorded("kafka")
        stop_pid(int(info["pid"]), timeout=60)

    def kafka_up(self) -> None:
        """Start the broker again on the same data and port."""
        kafka.start(self.paths)

    def postgres_down(self) -> None:
        """Stop PostgreSQL by its pid (fast shutdown); the record stays, so it comes back on the same port."""
        info = self._recorded("postgres")
        stop_pid(int(info["pid"]), timeout=30, sig=signal.SIGINT)

    def postgres_up(self) -> None:
        """Start PostgreSQL again on the same data and port."""
        postgres.start(self.paths)

    def triton_pid(self) -> int:
        """The Triton server's recorded pid."""
        return int(self._recorded("triton")[TRITON_NAME]["pid"])

    def triton_kill(self) -> None:
        """SIGKILL the Triton server (its process group), as a crash would."""
        triton.kill_server(TRITON_NAME, self.paths)

    def triton_signal(self, sig: signal.Signals) -> None:
        """SIGSTOP or SIGCONT the Triton server's process group (its Python-backend stubs too)."""
        pid = self.triton_pid()
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    def stop(self) -> None:
        """Stop Triton, Kafka and PostgreSQL by their recorded pids; remove their data, keep the logs."""
        from llmfleet import platform

        with contextlib.suppress(Exception):
            self.triton_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        for step in (triton.stop_all, kafka.stop):
            try:
                step(self.paths)
            except Exception as error:  # every part gets its stop, whatever the one before did
                print(f"teardown: {error!r}", flush=True)
        try:
            postgres.stop(self.paths)
        finally:
            platform.remove_data(self.paths)
