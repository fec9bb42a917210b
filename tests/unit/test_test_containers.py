"""The fixtures' choice between testcontainers and the local stack (tests/support/containers.py)."""

from __future__ import annotations

from typing import Any

from tests.support.containers import ContainerChoice, choose, images_needed, kafka_image


class NotFound(Exception):
    """Stands for docker.errors.ImageNotFound / APIError, whose first line is the reason."""


class FakeImages:
    """Images an engine has, and whether it can pull more (like a registry-less host: no)."""

    def __init__(self, present: set[str], pullable: bool) -> None:
        self.present, self.pullable = set(present), pullable
        self.pulled: list[str] = []

    def get(self, name: str) -> Any:
        if name not in self.present:
            raise NotFound(f"No such image: {name}")
        return name

    def pull(self, repository: str, tag: str | None = None, **kwargs: Any) -> Any:
        if not self.pullable:
            raise NotFound('Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io\nmore')
        self.pulled.append(f"{repository}:{tag}")
        self.present.add(f"{repository}:{tag}")
        return repository


class FakeDocker:
    """The part of docker-py's client the fixtures use."""

    def __init__(self, images: FakeImages) -> None:
        self.images = images

    def ping(self) -> bool:
        return True


def no_engine() -> FakeDocker:
    raise ConnectionError("Error while fetching server API version: ('Connection aborted.'")


KAFKA = "apache/kafka:4.0.0"
RYUK = "testcontainers/ryuk:0.8.1"


def test_no_engine_means_the_local_stack_without_a_word() -> None:
    assert choose({}, no_engine, [KAFKA]) == ContainerChoice(False, "")


def test_an_engine_with_the_images_means_testcontainers() -> None:
    images = FakeImages({KAFKA, RYUK}, pullable=False)
    assert choose({}, lambda: FakeDocker(images), [KAFKA, RYUK]) == ContainerChoice(True)


def test_an_engine_that_can_pull_gets_the_missing_image_first() -> None:
    images = FakeImages(set(), pullable=True)
    assert choose({}, lambda: FakeDocker(images), [KAFKA]).use
    assert images.pulled == [KAFKA]


def test_an_engine_without_the_image_and_no_registry_means_the_local_stack_and_one_line_why() -> None:
    images = FakeImages({KAFKA}, pullable=False)  # the broker is there, the reaper is not
    choice = choose({}, lambda: FakeDocker(images), [KAFKA, RYUK])
    assert not choice.use
    assert choice.reason.startswith(f"{RYUK} is not on the engine and cannot be pulled (")
    assert "registry-1.docker.io" in choice.reason and "\n" not in choice.reason


def test_the_opt_out_wins_over_an_engine() -> None:
    images = FakeImages({KAFKA}, pullable=True)
    assert choose({"LLMFLEET_TEST_NO_DOCKER": "1"}, lambda: FakeDocker(images), [KAFKA]) == ContainerChoice(False)


def test_a_locally_built_broker_image_can_stand_in_and_the_reaper_is_needed_only_when_enabled() -> None:
    env = {"LLMFLEET_TEST_KAFKA_IMAGE": "llmfleet-kafka:local"}
    assert kafka_image(env) == "llmfleet-kafka:local" and kafka_image({}) == KAFKA
    assert images_needed(env, RYUK, ryuk_disabled=True) == ["llmfleet-kafka:local"]
    assert images_needed({}, RYUK, ryuk_disabled=False) == [KAFKA, RYUK]


def test_an_image_without_a_tag_is_pulled_as_latest_and_a_registry_port_is_not_a_tag() -> None:
    images = FakeImages(set(), pullable=True)
    assert choose({}, lambda: FakeDocker(images), ["localhost:5000/kafka", "redpanda"]).use
    assert images.pulled == ["localhost:5000/kafka:latest", "redpanda:latest"]


def test_the_container_broker_advertises_the_published_host_port_with_the_official_images_variables() -> None:
    from tests.support.containers import kafka_environment

    env = kafka_environment(39093)
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:39093"
    assert env["KAFKA_LISTENERS"].startswith("PLAINTEXT://:39093,")
    assert all(key == "CLUSTER_ID" or key.startswith("KAFKA_") for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # the fixture creates the topics
