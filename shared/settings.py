"""The settings every service shares; each service subclasses it with its own env prefix."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka_security import KafkaProtocol, KafkaSecurity


class ServiceSettings(BaseSettings):
    """Addresses and identity of one service, read from `LLMFLEET_<SERVICE>_*` variables."""

    model_config = SettingsConfigDict(env_prefix="LLMFLEET_", extra="ignore", frozen=True)

    service_name: str = Field(min_length=1)
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    kafka_security_protocol: KafkaProtocol = Field(
        default=KafkaProtocol.PLAINTEXT, description="PLAINTEXT (local dev) or SASL_SSL (SCRAM-SHA-512 over TLS)"
    )
    kafka_sasl_username: str = Field(default="", description="SASL_SSL: the service's Kafka principal (its ACLs)")
    kafka_sasl_password: SecretStr = Field(default=SecretStr(""), description="SASL_SSL: the principal's password")
    kafka_ssl_cafile: str = Field(default="", description="SASL_SSL: PEM file of the CA that signed the broker")
    database_url: str = Field(
        default="postgresql+asyncpg://service:service@127.0.0.1:5432/llmfleet",
        description="SQLAlchemy URL of the service's own role; its schema is the service name",
    )
    consumer_group: str = Field(
        default="",
        description="Kafka group of the service (llmfleet-<service> when empty); a topic is read in <group>.<topic>",
    )
    db_pool_size: int = Field(default=5, description="database connections the service keeps open")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus /metrics and the /health, /ready probes port; 0: not served"
    )
    metrics_host: str = Field(default="127.0.0.1", description="address /metrics binds (0.0.0.0 in containers)")
    migrate_on_start: bool = Field(
        default=False,
        description="migrate the schema at start (under an advisory lock); off: the deploy's migrate job does it",
    )
    # Retention (shared/retention.py): the inbox outlasts any redelivery Kafka can still make
    # (its log retention, 7 days by default); sent outbox rows only serve debugging.
    inbox_retention_s: float = Field(default=7 * 86400.0, gt=0, description="inbox rows kept (outlast redelivery)")
    outbox_retention_s: float = Field(default=86400.0, gt=0, description="sent outbox rows kept (unsent stay)")
    history_retention_s: float = Field(
        default=30 * 86400.0, gt=0, description="history rows kept (alert history, reports, signals, resolved actions)"
    )
    retention_interval_s: float = Field(default=600.0, gt=0, description="how often old rows are pruned (one replica)")
    retention_batch_rows: int = Field(default=10_000, ge=1, description="rows one pruning statement deletes at most")

    @property
    def kafka_security(self) -> KafkaSecurity:
        """How this service's Kafka clients authenticate (every producer, consumer and admin client)."""
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password.get_secret_value(),
            cafile=self.kafka_ssl_cafile,
        )

    @property
    def group_id(self) -> str:
        """The consumer group all replicas of this service share."""
        return self.consumer_group or f"llmfleet-{self.service_name}"

    @property
    def db_schema(self) -> str:
        """Each service owns exactly one Postgres schema, named after it."""
        return self.service_name
