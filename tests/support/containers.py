"""Whether the test fixtures can use testcontainers: an engine that answers AND has the images.

An engine that answers is not enough: with no registry reachable, `docker pull` fails and every
integration test would error in its fixture. So the fixtures ask for each image first (present,
or pulled now) and otherwise fall back to the local stack with one warning line, or, when
LLMFLEET_TEST_REQUIRE_DOCKER is set (CI proving the container path), fail with one clear line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# The broker image testcontainers starts; a locally built one can stand in (same tag scheme).
DEFAULT_KAFKA_IMAGE = "apache/kafka:4.0.0"
PULL_TIMEOUT_S = 120


class Images(Protocol):
    """The part of docker-py's ImageCollection the fixtures use."""

    def get(self, name: str) -> Any: ...

    def pull(self, repository: str, tag: str | None = None, **kwargs: Any) -> Any: ...


class DockerClient(Protocol):
    """The part of docker-py's DockerClient the fixtures use."""

    images: Images

    def ping(self) -> bool: ...


@dataclass(frozen=True)
class ContainerChoice:
    """Use testcontainers (`use`), or not and why (`reason`, empty when no engine answered)."""

    use: bool
    reason: str = ""


def kafka_image(env: Mapping[str, str]) -> str:
    """The Kafka image the container path runs (LLMFLEET_TEST_KAFKA_IMAGE overrides)."""
    return env.get("LLMFLEET_TEST_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)


def images_needed(env: Mapping[str, str], ryuk_image: str, ryuk_disabled: bool) -> list[str]:
    """The broker image, and testcontainers' reaper (Ryuk) unless it is disabled."""
    return [kafka_image(env)] + ([] if ryuk_disabled else [ryuk_image])


def _missing(client: DockerClient, image: str) -> str | None:
    """None when the engine has the image (already, or after pulling it); else why not, in one line."""
    try:
        client.images.get(image)
        return None
    except Exception:
        pass
    repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    try:
        client.images.pull(repository, tag=tag)
        return None
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"{image} is not on the engine and cannot be pulled ({first_line[:200]})"


def choose(env: Mapping[str, str], connect: Callable[[], DockerClient], images: Sequence[str]) -> ContainerChoice:
    """Decide between testcontainers and the local stack; never raises."""
    if env.get("LLMFLEET_TEST_NO_DOCKER"):
        return ContainerChoice(False)
    try:
        client = connect()
        client.ping()
    except Exception:
        return ContainerChoice(False)  # no engine: the local stack, as designed, nothing to say
    for image in images:
        if reason := _missing(client, image):
            return ContainerChoice(False, reason)
    return ContainerChoice(True)


def docker_client() -> DockerClient:
    """docker-py's client from DOCKER_HOST & co., with room for a pull."""
    import docker

    client: DockerClient = docker.from_env(timeout=PULL_TIMEOUT_S)
    return client


def decide_for_session(env: Mapping[str, str] | None = None) -> ContainerChoice:
    """The fixtures' decision with the real engine and testcontainers' own Ryuk settings."""
    env = os.environ if env is None else env
    if env.get("LLMFLEET_TEST_NO_DOCKER"):
        return ContainerChoice(False)
    from testcontainers.core.config import testcontainers_config

    needed = images_needed(env, testcontainers_config.ryuk_image, testcontainers_config.ryuk_disabled)
    return choose(env, docker_client, needed)


def kafka_environment(port: int) -> dict[str, str]:
    """A one-node KRaft broker in the official apache/kafka image's variables, on host port `port`.

    The listener is published on the same port number it listens on, so the address the broker
    advertises (127.0.0.1:port) is the one the tests reach. deploy/compose/local/kafka.Dockerfile
    reads the same variables, so a locally built image stands in for the official one.
    """
    return {
        "CLUSTER_ID": "bGxtZmxlZXQtdGVzdHMtMQ",
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
    }


@contextlib.contextmanager
def kafka_container(image: str, startup_timeout_s: float = 180) -> Iterator[str]:
    """Run Kafka in a container (testcontainers) for the session; yield its host:port."""
    # testcontainers' KafkaContainer drives Confluent's image scripts (and refuses tags below 7.0
    # in KRaft mode), so the official apache/kafka image is started as a plain container.
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    from deploy.local.common import free_port

    port = free_port(39092)
    started = LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(int(startup_timeout_s))
    container = DockerContainer(image).waiting_for(started)
    # Published on 127.0.0.1 only; with_bind_ports takes no address, docker-py's `ports` does.
    container.ports[f"{port}/tcp"] = ("127.0.0.1", port)  # type: ignore[assignment]
    for key, value in kafka_environment(port).items():
        container.with_env(key, value)
    with container:  # starts, and returns once the broker logged that it started
        yield f"127.0.0.1:{port}"
