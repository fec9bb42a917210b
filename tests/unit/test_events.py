"""The event contract: validation, round trips and topic dispatch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.events import (
    ALL_TOPICS,
    ALLOCATIONS,
    INFERENCE_REQUESTS,
    AllocationFailed,
    InferenceCompleted,
    InferenceRequested,
    ModelLoaded,
    RoutingStrategy,
    ServerAllocated,
)


def test_topic_names_are_versioned_and_unique():
    names = [topic.name for topic in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(name.endswith(".v1") for name in names)
    assert all(topic.partitions >= 1 for topic in ALL_TOPICS)


def test_every_event_type_tag_is_unique():
    tags = [event.model_fields["type"].default for topic in ALL_TOPICS for event in topic.events]
    assert len(tags) == len(set(tags))


def test_request_defaults_follow_the_contract():
    request = InferenceRequested(source="t", request_id="r1", model_id="m", prompt="hi")
    assert request.routing_strategy is RoutingStrategy.BALANCED
    assert request.max_tokens == 64 and request.temperature == 0.0 and request.top_p == 1.0
    assert request.occurred_at.tzinfo is not None
    assert isinstance(request.event_id, uuid.UUID)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", 0), ("temperature", -0.1), ("top_p", 0.0), ("priority", 10), ("request_id", "")],
)
def test_request_rejects_out_of_range_fields(field, value):
    with pytest.raises(ValidationError) as error:
        InferenceRequested(**{"source": "t", "request_id": "r", "model_id": "m", "prompt": "p", field: value})
    assert field in str(error.value)


def test_events_are_frozen_and_reject_unknown_fields_but_requests_ignore_them():
    request = InferenceRequested(source="t", request_id="r", model_id="m", prompt="p")
    with pytest.raises(ValidationError):
        request.prompt = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        InferenceCompleted(source="t", request_id="r", model_id="m", status="ok", colour="blue")
    # Producers may be newer than the router: a request's unknown fields are ignored (forward compatible).
    newer = InferenceRequested.model_validate(
        {"source": "t", "request_id": "r", "model_id": "m", "prompt": "p", "x": 1}
    )
    assert newer.request_id == "r" and not hasattr(newer, "x")


def test_a_topic_with_several_events_returns_the_right_class():
    adapter = ALLOCATIONS.adapter()
    events = [
        ServerAllocated(
            source="a",
            server_id="s1",
            endpoint="127.0.0.1:8000",
            metrics_url="http://x/metrics",
            region="us-east-1",
            gpu_type="a100_80gb",
            cost_per_hour=4.1,
        ),
        ModelLoaded(source="a", server_id="s1", model_id="m", region="us-east-1"),
        AllocationFailed(source="a", model_id="m", region="eu-west-1", reason="insufficient resources"),
    ]
    for event in events:
        assert adapter.validate_json(event.model_dump_json()) == event


def test_an_event_on_the_wrong_topic_does_not_validate():
    loaded = ModelLoaded(source="a", server_id="s1", model_id="m", region="us-east-1")
    with pytest.raises(ValidationError):
        INFERENCE_REQUESTS.adapter().validate_json(loaded.model_dump_json())


@given(
    prompt=st.text(max_size=200),
    max_tokens=st.integers(1, 8192),
    temperature=st.floats(0.0, 2.0),
    top_p=st.floats(0.001, 1.0),
    priority=st.integers(0, 9),
    strategy=st.sampled_from(list(RoutingStrategy)),
    deadline=st.none() | st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1)),
)
def test_requests_round_trip_through_json(prompt, max_tokens, temperature, top_p, priority, strategy, deadline):
    request = InferenceRequested(
        source="t",
        request_id="r",
        model_id="m",
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        priority=priority,
        routing_strategy=strategy,
        deadline=deadline,
    )
    assert INFERENCE_REQUESTS.adapter().validate_json(request.model_dump_json()) == request


def test_the_package_re_exports_every_event_of_its_modules():
    import importlib
    import inspect

    import shared.events as package

    for module_name in ("envelope", "inference", "fleet", "scaling", "allocation", "cost", "topics"):
        module = importlib.import_module(f"shared.events.{module_name}")
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__ and not name.startswith("_"):
                assert getattr(package, name) is value and name in package.__all__, name


def test_every_topic_event_is_carried_by_exactly_one_topic():
    carried = [event for topic in ALL_TOPICS for event in topic.events]
    assert len(carried) == len(set(carried))
