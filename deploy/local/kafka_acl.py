"""The secure broker's ACLs, made from the topic ownership table, and applied with Kafka's Admin API.

`acl_bindings()` is pure: one binding per thing a principal may do (shared/events/ownership.py).
`apply()` writes them with the SCRAM users into a spec file and runs `kafka/SecureSetup.java`
(Kafka's own Admin client, as the super user) once; both are idempotent.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.local.kafka_install import STATIC, java_binary
from deploy.local.secure import ADMIN, SecureMaterial
from shared.events.ownership import GROUP_PREFIX, TOPIC_ACCESS, TopicAccess


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


def admin_client_properties(material: SecureMaterial, bootstrap: str) -> str:
    """A Java client's configuration as the super user over SASL_SSL (also handy for Kafka's own tools)."""
    password = material.passwords[ADMIN]
    return (
        f"bootstrap.servers={bootstrap}\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={material.ca}\n"
    )


def spec(material: SecureMaterial, bindings: list[AclBinding]) -> str:
    """The lines SecureSetup.java reads: the SCRAM users, then the ACLs (tab-separated)."""
    lines = [f"SCRAM\t{user}\t{password}" for user, password in sorted(material.passwords.items())]
    lines += [f"ACL\t{b.resource}\t{b.pattern}\t{b.name}\t{b.principal}\t{b.operation}" for b in bindings]
    return "\n".join(lines) + "\n"


def apply(libs: Path, material: SecureMaterial, bootstrap: str, log: Path) -> None:
    """Upsert every principal's SCRAM password and create every ACL, as the super user."""
    properties, spec_file = material.folder / "admin-client.properties", material.folder / "acl-spec.tsv"
    for path, text in (
        (properties, admin_client_properties(material, bootstrap)),
        (spec_file, spec(material, acl_bindings())),
    ):
        path.touch(mode=0o600)
        path.write_text(text)
    classes = _compiled(libs)
    cmd = [
        java_binary(),
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={STATIC / 'log4j2.xml'}",
        "-cp",
        f"{classes}:{libs}/*",
        "SecureSetup",
        str(properties),
        str(spec_file),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=180)
    with log.open("a") as out:
        out.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"applying Kafka's SCRAM users and ACLs failed:\n{result.stdout}{result.stderr}"[-3000:])


def _compiled(libs: Path) -> Path:
    """SecureSetup.class, compiled once next to the jars (and again when the source changes)."""
    source, classes = STATIC / "SecureSetup.java", libs.parent / "secure-setup"
    target = classes / "SecureSetup.class"
    if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return classes
    javac = shutil.which("javac")
    if javac is None:
        raise RuntimeError("the secure broker's setup needs a JDK (javac): apt-get install openjdk-17-jdk-headless")
    classes.mkdir(exist_ok=True)
    result = subprocess.run(
        [javac, "-cp", f"{libs}/*", "-d", str(classes), str(source)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"compiling {source.name} failed:\n{result.stdout}{result.stderr}")
    return classes


def kafka_acls_commands(bindings: list[AclBinding], command_config: str = "admin-client.properties") -> list[str]:
    """The same bindings as Kafka's own `kafka-acls.sh` command lines (for a broker run elsewhere)."""
    flags = {"TOPIC": "--topic", "GROUP": "--group"}
    return [
        f"kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config {command_config} --add "
        f"--allow-principal {b.principal} --operation {b.operation.capitalize()} "
        f"--resource-pattern-type {b.pattern.lower()} {flags[b.resource]} '{b.name}'"
        for b in bindings
    ]


if __name__ == "__main__":  # python -m deploy.local.kafka_acl: print the ACLs as kafka-acls.sh commands
    print("\n".join(kafka_acls_commands(acl_bindings())))
