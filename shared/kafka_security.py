"""How a Kafka client authenticates: PLAINTEXT (the local dev stack) or SASL_SSL with SCRAM-SHA-512.

One frozen value that every producer, consumer and admin client in the project spreads into its
constructor (`**security.client_options()`), and FastStream's broker takes as `security=`. The
TLS context is made when a client is made, never at import time.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from faststream.security import BaseSecurity, SASLScram512

SCRAM_MECHANISM = "SCRAM-SHA-512"


class KafkaProtocol(StrEnum):
    """The listener protocols the project speaks."""

    PLAINTEXT = "PLAINTEXT"
    SASL_SSL = "SASL_SSL"


@dataclass(frozen=True)
class KafkaSecurity:
    """A principal's credentials and the CA that signed the broker's certificate (SASL_SSL only)."""

    protocol: KafkaProtocol = KafkaProtocol.PLAINTEXT
    username: str = ""
    password: str = ""
    cafile: str = ""  # empty: the system's trusted CAs

    def __post_init__(self) -> None:
        if self.protocol is KafkaProtocol.SASL_SSL and not (self.username and self.password):
            raise ValueError("SASL_SSL needs a SASL username and password")

    @property
    def secure(self) -> bool:
        """True when the client authenticates and encrypts."""
        return self.protocol is KafkaProtocol.SASL_SSL

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that verifies the broker's certificate and host name against the CA."""
        return ssl.create_default_context(cafile=self.cafile or None)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        if not self.secure:
            return {}
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
            "ssl_context": self.ssl_context(),
        }

    def faststream(self) -> BaseSecurity | None:
        """The same, as FastStream's KafkaBroker takes it (`security=`)."""
        if not self.secure:
            return None
        return SASLScram512(username=self.username, password=self.password, ssl_context=self.ssl_context())

    def __repr__(self) -> str:  # never print the password
        return f"KafkaSecurity(protocol={self.protocol.value}, username={self.username!r}, cafile={self.cafile!r})"


PLAINTEXT = KafkaSecurity()


def kafka_security_from_env(prefix: str = "LLMFLEET_KAFKA_") -> KafkaSecurity:
    """The CLI's and the client's: LLMFLEET_KAFKA_SECURITY_PROTOCOL, _SASL_USERNAME, _SASL_PASSWORD, _SSL_CAFILE."""
    protocol = KafkaProtocol(os.environ.get(prefix + "SECURITY_PROTOCOL", "PLAINTEXT").upper())
    return KafkaSecurity(
        protocol=protocol,
        username=os.environ.get(prefix + "SASL_USERNAME", ""),
        password=os.environ.get(prefix + "SASL_PASSWORD", ""),
        cafile=os.environ.get(prefix + "SSL_CAFILE", ""),
    )
