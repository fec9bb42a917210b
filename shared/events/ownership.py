"""Which principal writes and reads which topic: the one table the broker's ACLs are made from.

Each service authenticates as its own Kafka principal (its name). It may write only the topics
it owns (publishes) and read only the topics it consumes, with consumer groups under its own
prefix (`llmfleet-<service>`). `deploy/kafka_acl.py` turns this table into ACLs; a unit
test checks it against the flows in docs/architecture.md. Everything else (creating the
platform's topics, the CLI's operator tools) is the admin's, a super user.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.topics import (
    ALERTS,
    ALLOCATIONS,
    COST_RECOMMENDATIONS,
    COST_REPORTS,
    DEADLETTER,
    DEMAND,
    FORECASTS,
    INFERENCE_REQUESTS,
    INFERENCE_RESULTS,
    MODEL_REQUESTS,
    PRICES,
    SCALING_ACTIONS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    Topic,
)

REPLY_PREFIX = "inference.replies."  # a request's own reply topic (the router accepts these only)
GATEWAY_REPLY_PREFIX = "inference.replies.gateway-"  # one per gateway replica, made and deleted by it
CLIENT_REPLY_PREFIX = "inference.replies.client-"  # one per FleetClient (llmfleet.client), made and deleted by it
GROUP_PREFIX = "llmfleet-"  # the platform's consumer groups: llmfleet-<service>[.<topic>]
# The gateway's metering (UsageMetered), read by the cost service and the monitor; by name, so that
# this table can grant it before and after the topic's constant lands in topics.py.
USAGE_TOPIC = "fleet.usage.v1"


@dataclass(frozen=True)
class TopicAccess:
    """What one principal may do: topics by exact name, reply topics by prefix, and its groups."""

    writes: tuple[str, ...] = ()  # topic names
    reads: tuple[str, ...] = ()
    write_prefixes: tuple[str, ...] = ()
    read_prefixes: tuple[str, ...] = ()
    own_prefixes: tuple[str, ...] = ()  # topics it creates and deletes itself (the gateway's reply topic)
    describes_all_groups: bool = False  # the monitor reads every platform group's lag
    groups: tuple[str, ...] = ()  # consumer-group prefixes besides `llmfleet-<principal>`

    def group_prefix(self, principal: str) -> str:
        """Its consumer groups' prefix: `llmfleet-<principal>` (and `llmfleet-<principal>.<topic>`)."""
        return f"{GROUP_PREFIX}{principal}"


# Every service may dead-letter what it cannot read (shared.subscribe), so each writes DEADLETTER.
TOPIC_ACCESS: dict[str, TopicAccess] = {
    "router": TopicAccess(
        writes=(INFERENCE_RESULTS.name, DEMAND.name, MODEL_REQUESTS.name, DEADLETTER.name),
        # results: read back after a partition was taken over without a handover (adapters/answered.py)
        reads=(INFERENCE_REQUESTS.name, ALLOCATIONS.name, INFERENCE_RESULTS.name),
        write_prefixes=(REPLY_PREFIX,),
        read_prefixes=(REPLY_PREFIX,),
    ),
    "scaler": TopicAccess(
        writes=(FORECASTS.name, SCALING_ACTIONS.name, ALERTS.name, DEADLETTER.name),
        reads=(DEMAND.name, SERVER_METRICS.name, SCALING_SIGNALS.name, MODEL_REQUESTS.name, ALLOCATIONS.name),
    ),
    "allocator": TopicAccess(
        writes=(ALLOCATIONS.name, ALERTS.name, DEADLETTER.name),
        reads=(SCALING_ACTIONS.name, PRICES.name, ALLOCATIONS.name),
    ),
    "monitor": TopicAccess(
        writes=(SERVER_METRICS.name, ALERTS.name, SCALING_SIGNALS.name, DEADLETTER.name),
        reads=(ALLOCATIONS.name, DEMAND.name, PRICES.name, SCALING_ACTIONS.name, USAGE_TOPIC),
        describes_all_groups=True,
    ),
    "cost": TopicAccess(
        # scaling actions: CapacityChangeRequested, when an operator applies a recommendation
        writes=(PRICES.name, COST_REPORTS.name, COST_RECOMMENDATIONS.name, SCALING_ACTIONS.name, DEADLETTER.name),
        reads=(ALLOCATIONS.name, SERVER_METRICS.name, DEMAND.name, FORECASTS.name, COST_REPORTS.name, USAGE_TOPIC),
    ),
    "gateway": TopicAccess(
        writes=(INFERENCE_REQUESTS.name, USAGE_TOPIC, DEADLETTER.name),  # unreadable batch results
        reads=(ALLOCATIONS.name,),
        # its replica's reply topic, and the batch reply topic (inference.replies.gateway-batch)
        read_prefixes=(GATEWAY_REPLY_PREFIX,),
        own_prefixes=(GATEWAY_REPLY_PREFIX,),
        groups=("gateway-batch",),  # the batch reply topic's group (GatewaySettings.batch_consumer_group)
    ),
    # A producer of inference requests (llmfleet.client.FleetClient): each client reads only its own
    # reply topic, which it creates at start and deletes on close.
    "client": TopicAccess(
        writes=(INFERENCE_REQUESTS.name,),
        read_prefixes=(CLIENT_REPLY_PREFIX,),
        own_prefixes=(CLIENT_REPLY_PREFIX,),
    ),
}

PRINCIPALS: tuple[str, ...] = tuple(TOPIC_ACCESS)


def writers(topic: Topic | str) -> set[str]:
    """The principals that may write `topic` (a Topic or its name) by name."""
    name = topic if isinstance(topic, str) else topic.name
    return {principal for principal, access in TOPIC_ACCESS.items() if name in access.writes}


def readers(topic: Topic | str) -> set[str]:
    """The principals that may read `topic` (a Topic or its name) by name."""
    name = topic if isinstance(topic, str) else topic.name
    return {principal for principal, access in TOPIC_ACCESS.items() if name in access.reads}
