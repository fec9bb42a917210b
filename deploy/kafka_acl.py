"""The secure broker's SCRAM users and ACLs, made from the topic ownership table, applied with Kafka's Admin API.

`acl_bindings()` is pure: one binding per thing a principal may do (shared/events/ownership.py).
`apply()` upserts each principal's SCRAM-SHA-512 password and creates the bindings through
confluent-kafka's AdminClient, as a super user; both are idempotent, so it may run again. Used by
the local secure stack (deploy/local/kafka.py) and by the deployment job `python -m deploy.init acls`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AclBinding as KafkaAclBinding
from confluent_kafka.admin import (
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from shared.events.ownership import GROUP_PREFIX, TOPIC_ACCESS, TopicAccess
from shared.kafka_security import SCRAM_MECHANISM, KafkaSecurity

# librdkafka's own log lines (connection failures, retries) through Python's logging, not raw stderr.
_LIBRDKAFKA_LOG = logging.getLogger("deploy.kafka_acl.librdkafka")

SCRAM_ITERATIONS = 8192  # twice Kafka's minimum for SCRAM-SHA-512 (4096)


@dataclass(frozen=True)
class AclBinding:
    """Allow `principal` to do `operation` on a resource named (LITERAL) or starting with (PREFIXED) `name`."""

    principal: str
    resource: str  # TOPIC, GROUP
    pattern: str  # LITERAL, PREFIXED
    name: str
    operation: str  # READ, WRITE, CREATE, DELETE, DESCRIBE (READ and WRITE imply DESCRIBE)


def principal_bindings(principal: str, access: TopicAccess) -> list[AclBinding]:
    """Everything one principal is allowed; Kafka denies the rest."""

    def allow(resource: str, pattern: str, name: str, operation: str) -> AclBinding:
        return AclBinding(f"User:{principal}", resource, pattern, name, operation)

    found = [allow("TOPIC", "LITERAL", topic, "WRITE") for topic in access.writes]
    found += [allow("TOPIC", "LITERAL", topic, "READ") for topic in access.reads]
    found += [allow("TOPIC", "PREFIXED", prefix, "WRITE") for prefix in access.write_prefixes]
    found += [allow("TOPIC", "PREFIXED", prefix, "READ") for prefix in access.read_prefixes]
    found += [allow("TOPIC", "PREFIXED", prefix, op) for prefix in access.own_prefixes for op in ("CREATE", "DELETE")]
    if access.reads or access.read_prefixes:
        groups = (access.group_prefix(principal), *access.groups)
        found += [allow("GROUP", "PREFIXED", group, "READ") for group in groups]
    if access.describes_all_groups:  # consumer lag: every platform group's offsets, every topic's end offsets
        found += [allow("GROUP", "PREFIXED", GROUP_PREFIX, "DESCRIBE"), allow("TOPIC", "LITERAL", "*", "DESCRIBE")]
    return found


def acl_bindings(table: dict[str, TopicAccess] = TOPIC_ACCESS) -> list[AclBinding]:
    """Every principal's bindings."""
    return [binding for principal, access in table.items() for binding in principal_bindings(principal, access)]


def admin_client_properties(admin: KafkaSecurity, bootstrap: str) -> str:
    """A Java client's configuration as the super user over SASL_SSL (for Kafka's own tools: kafka-acls.sh...)."""
    return (
        f"bootstrap.servers={bootstrap}\n"
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={SCRAM_MECHANISM}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{admin.username}" password="{admin.password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={admin.cafile}\n"
    )


def apply(
    bootstrap: str,
    admin: KafkaSecurity,
    passwords: Mapping[str, str],
    bindings: list[AclBinding],
    timeout: float = 60,
) -> tuple[int, int]:
    """Upsert each principal's SCRAM-SHA-512 password and create every binding, as `admin`; (users, ACLs).

    Both are idempotent on the broker: an upsert replaces the credential, and creating a binding
    that exists already succeeds without a duplicate. Raises RuntimeError naming whatever failed.
    """
    if not admin.secure:
        raise ValueError("SCRAM users and ACLs are applied over SASL_SSL, as a super user")
    client = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": admin.username,
            "sasl.password": admin.password,
            # librdkafka has its own OpenSSL: "probe" finds the system's CAs where KafkaSecurity means those.
            "ssl.ca.location": admin.cafile or "probe",
        },
        logger=_LIBRDKAFKA_LOG,
    )
    credential = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, credential, password.encode()) for user, password in passwords.items()
    ]
    acls = [
        KafkaAclBinding(
            ResourceType[b.resource],
            b.name,
            ResourcePatternType[b.pattern],
            b.principal,
            "*",
            AclOperation[b.operation],
            AclPermissionType.ALLOW,
        )
        for b in bindings
    ]
    # Both calls refuse an empty list; each returns one future per user or binding.
    pending: dict[str, Future[None]] = {}
    if upserts:
        users = client.alter_user_scram_credentials(upserts, request_timeout=timeout)
        pending |= {f"SCRAM user {user}": future for user, future in users.items()}
    if acls:
        created = client.create_acls(acls, request_timeout=timeout)
        pending |= {f"ACL {binding}": future for binding, future in created.items()}
    failed = []
    deadline = time.monotonic() + timeout + 10  # librdkafka fails each request after `timeout`; this guards a hang
    for what, future in pending.items():
        try:
            future.result(timeout=max(deadline - time.monotonic(), 0))
        except KafkaException as error:
            failed.append(f"{what}: {error}")
        except TimeoutError:
            failed.append(f"{what}: no answer in {timeout + 10:g} s")
    # Drop it before raising, so the error's traceback does not hold it. (librdkafka's client may still
    # outlive its last reference and reconnect in the background: hence its log goes to logging.)
    del client
    if failed:
        raise RuntimeError(f"applying Kafka's SCRAM users and ACLs failed ({len(failed)}):\n" + "\n".join(failed))
    return len(upserts), len(acls)


def kafka_acls_commands(bindings: list[AclBinding], command_config: str = "admin-client.properties") -> list[str]:
    """The same bindings as Kafka's own `kafka-acls.sh` command lines (for a broker run elsewhere)."""
    flags = {"TOPIC": "--topic", "GROUP": "--group"}
    return [
        f"kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config {command_config} --add "
        f"--allow-principal {b.principal} --operation {b.operation.capitalize()} "
        f"--resource-pattern-type {b.pattern.lower()} {flags[b.resource]} '{b.name}'"
        for b in bindings
    ]


if __name__ == "__main__":  # python -m deploy.kafka_acl: print the ACLs as kafka-acls.sh commands
    print("\n".join(kafka_acls_commands(acl_bindings())))
