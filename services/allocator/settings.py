"""The allocator's settings (`LLMFLEET_ALLOCATOR_*`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

DEFAULT_FLEET = Path(__file__).parent / "fleet.yaml"


class ProvisionerKind(StrEnum):
    LOCAL = "local"  # one local Triton process per server (an emulated GPU)
    POOL = "pool"  # Triton servers run by the deployment (Compose, Kubernetes), listed in triton_pool


class PoolServer(BaseModel):
    """One Triton server of a deployment's pool."""

    endpoint: str = Field(description="host:port of Triton's HTTP API")
    metrics_url: str
    region: str
    gpu_type: str


class AllocatorSettings(ServiceSettings):
    """Settings of the allocator service."""

    model_config = SettingsConfigDict(env_prefix="LLMFLEET_ALLOCATOR_", extra="ignore", frozen=True)

    service_name: str = Field(
        default="allocator", description="the service's name: its schema, role and default consumer group"
    )
    fleet_config: Path = Field(default=DEFAULT_FLEET, description="YAML seed of pools, prices and model requirements")
    provisioner: ProvisionerKind = Field(
        default=ProvisionerKind.LOCAL,
        description="local (Triton processes here, emulated GPUs) or pool (servers a deployment runs: triton_pool)",
    )
    server_prefix: str = Field(default="allocator", description="name prefix of the servers this deployment starts")
    max_servers: int = Field(default=4, ge=1, description="servers the provisioner may run at once (local processes)")
    max_gpus_per_server: int = Field(
        default=8, ge=1, description="GPUs one server may span (tensor / pipeline parallel plans)"
    )
    triton_base_port: int = Field(default=8100, description="local Triton servers take free ports from here up")
    relay_poll_interval_s: float = Field(
        default=1.0, description="how often the outbox relay looks for unsent allocation events"
    )
    worker_poll_interval_s: float = Field(
        default=1.0, gt=0, description="how often the provisioning worker looks for actions when not woken"
    )
    action_lease_s: float = Field(
        default=60.0, gt=0, description="a worker's hold on the action it carries out, renewed while it works"
    )
    step_timeout_s: float = Field(
        default=300.0, gt=0, description="longest one provisioning step may take (start and load, load, unload, stop)"
    )
    max_action_attempts: int = Field(
        default=3, ge=1, description="workers that may take an action on before it is rolled back as failed"
    )
    action_timeout_s: float = Field(
        default=900.0, gt=0, description="an action in progress this long, with no worker on it, is rolled back"
    )
    reconcile_interval_s: float = Field(
        default=15.0, gt=0, description="how often the reconciler compares the records with the running fleet"
    )
    dead_after_s: float = Field(
        default=30.0, ge=0, description="a running server not answering this long is marked gone and replaced"
    )
    orphan_grace_s: float = Field(
        default=60.0, ge=0, description="a server process no record owns is stopped after this long"
    )
    retire_after_s: float = Field(
        default=300.0,
        ge=0,
        description="a server others registered on the allocations topic is released after not answering this long",
    )
    spot_reclaims_per_hour: float = Field(
        default=0.0, ge=0, description="local spot market: reclaims per spot server-hour it injects (0: none)"
    )
    spot_notice_s: float = Field(
        default=120.0, gt=0, description="local spot market: notice before a reclaim (AWS gives 120 s)"
    )
    spot_replace_attempts: int = Field(
        default=3, ge=1, description="tries at replacing a reclaimed spot server's instances (the pool grows between)"
    )
    spot_market_interval_s: float = Field(default=10.0, gt=0, description="how often the local spot market draws")
    replan_interval_s: float = Field(
        default=600.0, ge=0, description="how often the fleet MILP re-plans what runs, moving instances (0: never)"
    )
    replan_min_saving_pct: float = Field(
        default=10.0, ge=0, description="a move must save at least this share of its server's $/h"
    )
    replan_max_moves: int = Field(default=1, ge=0, description="moves one re-plan round may start")
    replan_time_limit_s: float = Field(default=1.0, gt=0, description="the MILP's time budget (then greedy)")
    load_stream_variants: bool = Field(
        default=True, description="local provisioner: load each model's streaming variant (<name>_stream) with it"
    )
    cluster_interval_s: float = Field(
        default=0.0,
        ge=0,
        description="how often the cluster autoscaler grows or shrinks GPU pools by the seed's rules (0: fixed pools)",
    )
    cluster_provision_delay_s: float = Field(
        default=5.0, ge=0, description="local capacity provider: seconds before GPUs asked for arrive"
    )
    cluster_min_gpus: int = Field(default=0, ge=0, description="quota: the fewest GPUs a pool shrinks to")
    cluster_max_gpus: int = Field(default=64, ge=1, description="quota: the most GPUs a pool grows to")
    cluster_scale_down_after_s: float = Field(
        default=600.0, gt=0, description="a pool below 30% utilisation this long releases free GPUs"
    )
    triton_pool: list[PoolServer] = Field(
        default_factory=list, description="the servers a `pool` provisioner hands out (JSON list)"
    )
