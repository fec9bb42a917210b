"""The secure broker's ACLs come from one ownership table, that table matches DESIGN and the code, and
`apply` says what it could not do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.kafka_acl import AclBinding, acl_bindings, apply, principal_bindings
from deploy.local.common import free_port
from shared.events import ALL_TOPICS
from shared.events.ownership import TOPIC_ACCESS, readers, writers
from shared.kafka_security import PLAINTEXT, KafkaProtocol, KafkaSecurity

REPO = Path(__file__).resolve().parents[3]
SERVICES = ("router", "scaler", "allocator", "monitor", "cost", "gateway")

# The flows of DESIGN.md's sketch and docs/architecture.md's table: writer, topic, readers.
DESIGN_FLOWS = [
    ("gateway", "inference.requests.v1", {"router"}),
    ("router", "inference.results.v1", set()),
    ("router", "fleet.demand.v1", {"scaler", "cost", "monitor"}),
    ("router", "fleet.model-requests.v1", {"scaler"}),
    ("monitor", "fleet.server-metrics.v1", {"scaler", "cost"}),
    ("monitor", "fleet.alerts.v1", set()),
    ("monitor", "fleet.scaling-signals.v1", {"scaler"}),
    ("scaler", "fleet.forecasts.v1", {"cost"}),
    ("scaler", "fleet.scaling-actions.v1", {"allocator", "monitor"}),
    ("cost", "fleet.scaling-actions.v1", {"allocator"}),
    ("allocator", "fleet.allocations.v1", {"router", "monitor", "cost", "scaler", "gateway"}),
    ("cost", "fleet.prices.v1", {"allocator", "monitor"}),
    ("cost", "fleet.cost-recommendations.v1", set()),
    ("gateway", "fleet.usage.v1", {"cost", "monitor"}),
]


def test_every_design_flow_is_allowed_and_nobody_else_writes() -> None:
    for writer, name, consumers in DESIGN_FLOWS:
        assert writer in writers(name), (writer, name)
        assert consumers <= readers(name), (name, consumers - readers(name))
    # The injection the issue names: only the allocator may announce servers.
    assert writers("fleet.allocations.v1") == {"allocator"}
    assert writers("inference.requests.v1") == {"gateway", "client"}
    assert writers("inference.results.v1") == {"router"}


def test_every_platform_topic_has_a_writer() -> None:
    unowned = [t.name for t in ALL_TOPICS if not writers(t)]
    assert unowned == [], "add the new topic's owner to shared/events/ownership.py"


def test_what_the_services_publish_and_subscribe_in_code_is_allowed() -> None:
    """A scan of each service's code: topics it announces (outbox, broker) and subscribes to."""
    by_constant = {name: value for name, value in vars(__import__("shared.events", fromlist=["x"])).items()}
    published = re.compile(r"(?:announce|add_to_outbox|publish_event)\([^)]*?\b([A-Z_]+)\s*,", re.S)
    subscribed = re.compile(r"\.subscribe\(\s*([A-Z_]+)\s*,")
    for service in SERVICES:
        access = TOPIC_ACCESS[service]
        for path in (REPO / "services" / service).rglob("*.py"):
            text = path.read_text()
            for constant in published.findall(text):
                if constant in by_constant and hasattr(by_constant[constant], "partitions"):
                    assert by_constant[constant].name in access.writes, (service, path.name, constant)
            for constant in subscribed.findall(text):
                if constant in by_constant:
                    assert by_constant[constant].name in access.reads, (service, path.name, constant)


def test_the_router_may_not_write_allocations_but_may_answer_reply_topics() -> None:
    router = principal_bindings("router", TOPIC_ACCESS["router"])
    assert AclBinding("User:router", "TOPIC", "LITERAL", "fleet.allocations.v1", "READ") in router
    assert not [b for b in router if b.name == "fleet.allocations.v1" and b.operation == "WRITE"]
    assert AclBinding("User:router", "TOPIC", "PREFIXED", "inference.replies.", "WRITE") in router
    assert AclBinding("User:router", "GROUP", "PREFIXED", "llmfleet-router", "READ") in router


def test_only_the_gateway_and_clients_create_topics_and_only_their_reply_topics() -> None:
    creates = [b for b in acl_bindings() if b.operation in ("CREATE", "DELETE")]
    assert {(b.principal, b.pattern, b.name) for b in creates} == {
        ("User:gateway", "PREFIXED", "inference.replies.gateway-"),
        ("User:client", "PREFIXED", "inference.replies.client-"),  # FleetClient's own reply topic
    }


def test_the_gateways_default_batch_group_and_reply_topic_are_allowed() -> None:
    from services.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    gateway = principal_bindings("gateway", TOPIC_ACCESS["gateway"])
    groups = [b.name for b in gateway if b.resource == "GROUP" and b.operation == "READ"]
    assert any(settings.batch_consumer_group.startswith(prefix) for prefix in groups)
    reads = [b.name for b in gateway if b.resource == "TOPIC" and b.operation == "READ"]
    assert any(settings.batch_reply_topic.startswith(prefix) for prefix in reads)


def test_no_binding_grants_everyone_or_a_wildcard_write() -> None:
    for binding in acl_bindings():
        assert binding.principal != "User:*"
        if binding.name == "*":
            assert binding.operation == "DESCRIBE", binding


def test_apply_names_what_failed_when_no_broker_answers() -> None:
    admin = KafkaSecurity(KafkaProtocol.SASL_SSL, "admin", "secret")
    bindings = principal_bindings("router", TOPIC_ACCESS["router"])[:1]
    with pytest.raises(RuntimeError) as failed:
        apply(f"127.0.0.1:{free_port(40_000)}", admin, {"router": "secret"}, bindings, timeout=1)
    message = str(failed.value)
    assert "SCRAM user router: " in message and "_TIMED_OUT" in message
    assert "ACL AclBinding(ResourceType.TOPIC,inference.results.v1," in message


def test_apply_needs_sasl_ssl() -> None:
    with pytest.raises(ValueError, match="SASL_SSL"):
        apply("127.0.0.1:9092", PLAINTEXT, {"router": "secret"}, acl_bindings())
